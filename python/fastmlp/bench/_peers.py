"""The optional training peers: PyTorch eager and scikit-learn's MLPClassifier, each set up from the
same starting weights as fastmlp and timing one epoch, its shuffle included, never its setup.

torch and sklearn arrive as modules (imported by the caller, only when installed); deliberately no
import of either here, so the installed package never needs them.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ._backends import (
    ADAM_LEARNING_RATE,
    ADAMW_WEIGHT_DECAY,
    LEARNING_RATE,
    MOMENTUM,
    RMSPROP_LEARNING_RATE,
    WEIGHT_DECAY,
    TrainConfig,
    row_weights,
)
from ._machine import blas_threads

if TYPE_CHECKING:
    from ._machine import BlasLimits


def torch_model(torch: ModuleType, weights: list[NDArray[np.floating[Any]]], biases: list[NDArray[np.floating[Any]]],
                activation: str, dropout: float = 0.0) -> Any:
    """nn.Sequential(Linear, activation[, Dropout], ..., Linear) holding copies of the weights."""
    nn = torch.nn
    layer_for = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
                 "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus, "identity": nn.Identity}
    layers = []
    for k, (W, b) in enumerate(zip(weights, biases)):
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=torch.from_numpy(W).dtype)  # (OUT, IN), like ours
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if k < len(weights) - 1:
            layers.append(layer_for[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def torch_optimizer(torch: ModuleType, parameters: Any, optimizer: str) -> Any:
    """torch.optim's counterpart of fastmlp's optimizer of the same name (same hyperparameters)."""
    optim = torch.optim
    builders: dict[str, Any] = {
        "sgd": lambda: optim.SGD(parameters, lr=LEARNING_RATE),
        "momentum": lambda: optim.SGD(parameters, lr=LEARNING_RATE, momentum=MOMENTUM),
        "nesterov": lambda: optim.SGD(parameters, lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True),
        "weight_decay": lambda: optim.SGD(parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        "adam": lambda: optim.Adam(parameters, lr=ADAM_LEARNING_RATE),
        "adamw": lambda: optim.AdamW(parameters, lr=ADAM_LEARNING_RATE, weight_decay=ADAMW_WEIGHT_DECAY),
        "rmsprop": lambda: optim.RMSprop(parameters, lr=RMSPROP_LEARNING_RATE),
    }
    return builders[optimizer]()


@contextlib.contextmanager
def torch_threads(torch: ModuleType, n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchBackend:
    """PyTorch eager as its tutorials write it: nn.Sequential, CrossEntropyLoss, torch.optim, one
    zero_grad/forward/backward/step per batch over a randperm order (no DataLoader: its workers
    and collation would add cost that is not torch's arithmetic). Row weights: the weighted mean
    sum(w l) / sum(w), as fastmlp defines it."""

    name = "torch"

    def __init__(
        self,
        torch: ModuleType,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        X: NDArray[Any],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
        config: TrainConfig | None = None,
    ) -> None:
        config = config if config is not None else TrainConfig()
        self.torch = torch
        self.model = torch_model(torch, weights, biases, config.activation, config.dropout)
        self.model.train()
        self.optimizer = torch_optimizer(torch, self.model.parameters(), config.optimizer)
        self.weighted = config.sample_weights
        self.loss_fn = torch.nn.CrossEntropyLoss(reduction="none" if self.weighted else "mean")
        self.w = torch.from_numpy(row_weights(len(X), seed, config.dtype))
        self.X = torch.from_numpy(X)  # shares X's memory: no second copy of the data
        self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # the dropout masks
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[None]:
        return torch_threads(self.torch, n)

    def epoch(self) -> tuple[int, float]:
        n, batch_size, weighted = len(self.X), self.batch_size, self.weighted
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        started = time.perf_counter()
        order = self.torch.randperm(n, generator=self.generator)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(self.X[rows]), self.y[rows])
            if weighted:
                w = self.w[rows]
                loss = (loss * w).sum() / w.sum()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        self.last_loss = float(loss.item())  # the last batch's: reading every one would add syncs
        return n, seconds


class SklearnBackend:
    """scikit-learn's MLPClassifier as plain SGD (no momentum, no L2, constant step) or Adam; one
    partial_fit call is one shuffled epoch."""

    name = "sklearn"

    def __init__(
        self,
        neural_network: ModuleType,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        activation: str,
        X: NDArray[np.float32],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
        blas_limits: BlasLimits | None,
        optimizer: str = "sgd",
    ) -> None:
        n_classes = weights[-1].shape[0]
        solver = dict(solver="adam", learning_rate_init=ADAM_LEARNING_RATE) if optimizer == "adam" else \
            dict(solver="sgd", momentum=0.0, nesterovs_momentum=False, learning_rate_init=LEARNING_RATE)
        self.model = neural_network.MLPClassifier(
            hidden_layer_sizes=tuple(W.shape[0] for W in weights[:-1]),
            activation={"sigmoid": "logistic"}.get(activation, activation),
            alpha=0.0, learning_rate="constant", **solver,
            batch_size=batch_size, max_iter=1, shuffle=True, random_state=seed,
        )
        self.X, self.y = X, y
        self.blas_limits = blas_limits
        # The first partial_fit builds the float32 parameters (from float32 X); one batch keeps it cheap.
        self._partial_fit(X[:batch_size], y[:batch_size], classes=np.arange(n_classes))
        # Then the shared starting point, written in place: the solver keeps references to these arrays.
        for coef, intercept, W, b in zip(self.model.coefs_, self.model.intercepts_, weights, biases):
            coef[...] = W.T  # scikit-learn stores (IN, OUT)
            intercept[...] = b
        self.last_loss = float("nan")

    def _partial_fit(self, X: NDArray[np.float32], y: NDArray[np.int64], **kwargs: object) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # max_iter=1 is the point here, not a sign of poor convergence.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.partial_fit(X, y, **kwargs)

    def threads(self, n: int | None) -> AbstractContextManager[object]:
        return blas_threads(self.blas_limits, n)

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        self._partial_fit(self.X, self.y)
        seconds = time.perf_counter() - started
        self.last_loss = float(self.model.loss_)
        return len(self.X), seconds
