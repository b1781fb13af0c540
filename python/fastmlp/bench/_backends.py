"""The training configurations the bench times, and the backends that run one epoch of them in
fastmlp (native), the package's NumPy oracle and pure Python.

Each backend times one epoch, its shuffle included, never its setup; PyTorch and scikit-learn are in
``_peers``. Deliberately no timing loop here (``_timing``) and no report.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

import fastmlp
from fastmlp import reference
from fastmlp.reference import pure

from ._machine import blas_threads, native_threads

if TYPE_CHECKING:
    from typing import Protocol

    from ._machine import BlasLimits

    class Backend(Protocol):
        name: str
        last_loss: float

        def threads(self, n: int | None) -> AbstractContextManager[object]: ...

        def epoch(self) -> tuple[int, float]: ...

# Random labels never become learnable, so a large step only stirs the weights; 0.01 keeps the
# losses finite (NaN or denormal arithmetic would change the speed being measured).
LEARNING_RATE = 0.01
ADAM_LEARNING_RATE = 1e-3
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
ADAMW_WEIGHT_DECAY = 1e-2
RMSPROP_LEARNING_RATE = 1e-3

OPTIMIZERS = ("sgd", "momentum", "nesterov", "weight_decay", "adam", "adamw", "rmsprop")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus")


@dataclass(frozen=True)
class TrainConfig:
    """What one epoch computes: the hidden activation, the optimizer (a name of OPTIMIZERS, with the
    hyperparameters above), the dropout of every hidden layer, the dtype and whether rows carry
    weights (drawn uniformly in [0.5, 1.5))."""

    activation: str = "relu"
    optimizer: str = "sgd"
    dropout: float = 0.0
    dtype: str = "float32"
    sample_weights: bool = False

    @property
    def label(self) -> str:
        parts = [self.optimizer.replace("_", " "), self.activation]
        if self.dropout:
            parts.append(f"dropout {self.dropout:g}")
        if self.dtype != "float32":
            parts.append(self.dtype)
        if self.sample_weights:
            parts.append("sample weights")
        return " + ".join(parts)


def native_optimizer(optimizer: str) -> fastmlp.optim.Optimizer:
    """fastmlp's optimizer for a name of OPTIMIZERS."""
    optim = fastmlp.optim
    builders: dict[str, Any] = {
        "sgd": lambda: optim.SGD(LEARNING_RATE),
        "momentum": lambda: optim.SGD(LEARNING_RATE, momentum=MOMENTUM),
        "nesterov": lambda: optim.SGD(LEARNING_RATE, momentum=MOMENTUM, nesterov=True),
        "weight_decay": lambda: optim.SGD(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        "adam": lambda: optim.Adam(ADAM_LEARNING_RATE),
        "adamw": lambda: optim.AdamW(ADAM_LEARNING_RATE, weight_decay=ADAMW_WEIGHT_DECAY),
        "rmsprop": lambda: optim.RMSprop(RMSPROP_LEARNING_RATE),
    }
    built: fastmlp.optim.Optimizer = builders[optimizer]()
    return built


def row_weights(n_rows: int, seed: int, dtype: str) -> NDArray[np.floating[Any]]:
    weights: NDArray[np.floating[Any]] = np.random.default_rng(seed + 1).uniform(0.5, 1.5, n_rows).astype(dtype)
    return weights


class NativeBackend:
    name = "native"

    def __init__(self, net: fastmlp.Network, X: NDArray[Any], y: NDArray[np.int64], batch_size: int, seed: int,
                 config: TrainConfig = TrainConfig()) -> None:
        self.X, self.y = X, y
        self.sample_weight = row_weights(len(X), seed, config.dtype) if config.sample_weights else None
        # Built once: the benchmark is of training, not of workspace allocation.
        self.trainer = fastmlp.Trainer(net, batch_size=batch_size, shuffle=True, seed=seed,
                                       optimizer=native_optimizer(config.optimizer))
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[None]:
        if n is None:
            raise ValueError("native always runs at a thread count of its own")
        return native_threads(n)

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        history = self.trainer.fit(self.X, self.y, epochs=1, verbose=False, sample_weight=self.sample_weight)
        seconds = time.perf_counter() - started
        self.last_loss = float(history.loss[-1])
        return len(self.X), seconds


class NumpyBackend:
    """The package's NumPy oracle: the "plain NumPy MLP (OpenBLAS)" peer. It implements plain SGD
    (any activation, dropout, either dtype) and Adam; `supports` says which configurations."""

    name = "numpy"

    @staticmethod
    def supports(config: TrainConfig) -> bool:
        if config.sample_weights:
            return False
        return config.optimizer == "sgd" or (config.optimizer == "adam" and config.dropout == 0.0)

    def __init__(
        self,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        X: NDArray[Any],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
        blas_limits: BlasLimits | None,
        config: TrainConfig = TrainConfig(),
    ) -> None:
        if not self.supports(config):
            raise ValueError(f"the NumPy peer does not implement {config.label}")
        self.weights = [W.copy() for W in weights]
        self.biases = [b.copy() for b in biases]
        self.config = config
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.blas_limits = blas_limits
        # Adam's moments, one pair per parameter (W_1, b_1, W_2, ...), and its step count.
        params = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.adam_moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self.adam_steps = 0
        self.epochs_done = 0
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[object]:
        return blas_threads(self.blas_limits, n)

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        order = self.rng.permutation(len(self.X))
        self.epochs_done += 1
        if self.config.optimizer == "adam":
            loss = self._adam_epoch(order)
        else:
            dropout = self.config.dropout or None
            loss = reference.train_epoch(self.weights, self.biases, self.config.activation, self.X, self.y,
                                         self.batch_size, LEARNING_RATE, order=order, dropout=dropout,
                                         dropout_seed=self.seed if dropout else None, epoch=self.epochs_done)
        seconds = time.perf_counter() - started
        self.last_loss = float(loss)
        return len(self.X), seconds

    def _adam_epoch(self, order: NDArray[np.int64]) -> float:
        """The oracle's gradients and Adam written as a NumPy user would, in place (not
        reference.adam_step, whose emulation of PyTorch's rounding is slower than plain NumPy)."""
        total = 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        params = [p for pair in zip(self.weights, self.biases) for p in pair]
        for start in range(0, len(self.X), self.batch_size):
            rows = order[start:start + self.batch_size]
            loss, grads = reference.gradients(self.weights, self.biases, self.config.activation, self.X[rows],
                                              self.y[rows])
            self.adam_steps += 1
            step_size = ADAM_LEARNING_RATE / (1 - beta1 ** self.adam_steps)
            root_bc2 = np.sqrt(1 - beta2 ** self.adam_steps)
            for param, grad, (m, v) in zip(params, [g for pair in grads for g in pair], self.adam_moments):
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                param -= step_size * m / (np.sqrt(v) / root_bc2 + eps)
            total += loss * len(rows)
        return total / len(self.X)


class PureBackend:
    name = "pure"

    def __init__(
        self,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        activation: str,
        X: NDArray[Any],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
    ) -> None:
        # Converted once here so the timed epochs measure Python arithmetic, not NumPy-to-list copies.
        self.weights = [W.astype(np.float64).tolist() for W in weights]
        self.biases = [b.astype(np.float64).tolist() for b in biases]
        self.activation = activation
        self.X_all = X.astype(np.float64).tolist()
        self.y_all = y.tolist()
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.use_rows(len(self.X_all))
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def use_rows(self, n_rows: int) -> None:
        self.X, self.y = self.X_all[:n_rows], self.y_all[:n_rows]

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        order = self.rng.permutation(len(self.X)).tolist()
        loss = pure.train_epoch(self.weights, self.biases, self.activation, self.X, self.y,
                                self.batch_size, LEARNING_RATE, order=order)
        seconds = time.perf_counter() - started
        self.last_loss = float(loss)
        return len(self.X), seconds

    def calibrate(self, target_seconds: float) -> int:
        """Pick the number of rows that makes one epoch last about `target_seconds`; return it.

        A whole number of batches, at least one, so every timed epoch has the same batch shapes.
        """
        probe_rows = min(len(self.X_all), 4 * self.batch_size)
        self.use_rows(probe_rows)
        rows, seconds = self.epoch()
        per_row = seconds / rows
        batches = max(1, int(target_seconds / per_row) // self.batch_size)
        n_rows = min(len(self.X_all), batches * self.batch_size)
        self.use_rows(n_rows)
        return n_rows


def synthetic_data(layer_sizes: tuple[int, ...], n_samples: int, seed: int,
                   dtype: str = "float32") -> tuple[NDArray[Any], NDArray[np.int64]]:
    """Standard-normal X and uniform labels: the speed does not depend on what is learnt."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, layer_sizes[0]), dtype=np.float64 if dtype == "float64" else np.float32)
    y = rng.integers(0, layer_sizes[-1], size=n_samples, dtype=np.int64)
    return X, y
