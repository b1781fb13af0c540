"""NumPy oracle for whole networks: the layer loop, the loss and its gradients, and SGD's training
step and epoch, built from the layer functions of _numpy.py with the same names as the native
whole-network calls. Deliberately absent, as there: input normalisation, workspaces and speed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._dropout import dropout_mask
from ._numpy import (
    _check_activation,
    _check_targets,
    _mean_xent,
    activation_backward,
    activation_forward,
    output_forward,
    output_loss_backward,
    sgd_update,
)

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    _FloatArray: TypeAlias = NDArray[np.floating[Any]]
    # Integer labels (n_samples,) or target distributions (n_samples, n_classes).
    _Targets: TypeAlias = NDArray[Union[np.integer[Any], np.floating[Any]]]
    _Grads: TypeAlias = list[tuple[_FloatArray, _FloatArray]]

__all__ = ["forward", "predict_proba", "loss", "gradients", "train_step", "train_epoch"]


def _check_network(weights: Sequence[object], biases: Sequence[object]) -> None:
    if len(weights) == 0 or len(weights) != len(biases):
        raise ValueError(
            f"need one bias per weight matrix and at least one layer, "
            f"got {len(weights)} weight matrices and {len(biases)} bias vectors"
        )


def _per_hidden(value: Any, n_hidden: int, name: str) -> list[Any]:
    # One value for every hidden layer, or a list of one per hidden layer.
    if isinstance(value, (list, tuple)):
        if len(value) != n_hidden:
            raise ValueError(f"{name} lists {len(value)} entries for {n_hidden} hidden layer(s)")
        return list(value)
    return [value] * n_hidden


class _Trace:
    """Everything a forward pass keeps for the backward one: per layer k = 0..L, the layer's
    input to the next (after dropout), its pre-activation and output, and its dropout mask."""

    def __init__(self, X: _FloatArray) -> None:
        self.inputs: list[_FloatArray] = [X]            # [X, input of layer 2, ..., logits]
        self.a: list[_FloatArray | None] = [None]       # pre-activations a_k
        self.h: list[_FloatArray | None] = [None]       # h_k = g(a_k), before dropout
        self.masks: list[_FloatArray | None] = [None]   # dropout multipliers, or None


def _forward_trace(weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str | Sequence[str],
                   X: _FloatArray, dropout: float | Sequence[float] | None,
                   dropout_key: tuple[int, int, int] | None) -> tuple[_Trace, list[str]]:
    _check_network(weights, biases)
    n_layers = len(weights)
    if isinstance(activation, str):  # checked even when no hidden layer applies it
        _check_activation(activation)
    acts = _per_hidden(activation, n_layers - 1, "activation")
    for g in acts:
        _check_activation(g)
    ps = _per_hidden(0.0 if dropout is None else dropout, n_layers - 1, "dropout")
    trace = _Trace(np.asarray(X))
    for k, (W, b) in enumerate(zip(weights, biases), start=1):
        a = trace.inputs[-1] @ np.asarray(W).T + np.asarray(b)
        h = activation_forward(a, acts[k - 1]) if k < n_layers else a
        mask = None
        if k < n_layers and dropout_key is not None and ps[k - 1] > 0:
            mask = dropout_mask(h.shape, ps[k - 1], *dropout_key, layer=k, dtype=h.dtype)
        trace.a.append(a)
        trace.h.append(h)
        trace.masks.append(mask)
        trace.inputs.append(h * mask if mask is not None else h)
    return trace, acts


def forward(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str | Sequence[str], X: _FloatArray,
    *, dropout: float | Sequence[float] | None = None, dropout_key: tuple[int, int, int] | None = None,
) -> list[_FloatArray]:
    """Run the network forward and keep every layer's output.

    Parameters
    ----------
    weights : list of ndarray, the k-th of shape (n_outputs_k, n_inputs_k)
        Weight matrices, first layer first.
    biases : list of ndarray, the k-th of shape (n_outputs_k,)
        Bias vectors.
    activation : str or list of str
        Activation of the hidden layers (one name, or one per hidden layer); the output layer
        is always the identity here (its softmax or sigmoid belongs to the loss).
    X : ndarray of shape (n_samples, n_features)
        Input data.
    dropout : float or list of float, optional
        Dropout probability per hidden layer; applied only with `dropout_key`.
    dropout_key : tuple (seed, epoch, batch), optional
        The training batch whose masks (`dropout_mask`) to apply; None: no dropout.

    Returns
    -------
    hs : list of ndarray
        [X, h_1, ..., h_L] (each hidden h after dropout); h_L, of shape (n_samples, n_outputs),
        holds the logits.
    """
    return _forward_trace(weights, biases, activation, X, dropout, dropout_key)[0].inputs


def predict_proba(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str | Sequence[str], X: _FloatArray,
    *, output: str = "softmax",
) -> _FloatArray:
    """Compute the output layer's predictions: softmax probabilities (sigmoids, or raw outputs,
    for the other outputs).

    Parameters
    ----------
    weights, biases, activation
        The network, as in `forward`.
    X : ndarray of shape (n_samples, n_features)
        Input data.
    output : {"softmax", "sigmoid", "identity", "poisson"}, default="softmax"

    Returns
    -------
    probs : ndarray of shape (n_samples, n_outputs)
    """
    return output_forward(forward(weights, biases, activation, X)[-1], output)


def loss(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str | Sequence[str], X: _FloatArray,
    y: _Targets, *, output: str = "softmax", dropout: float | Sequence[float] | None = None,
    dropout_key: tuple[int, int, int] | None = None,
) -> float:
    """Compute the mean loss of the network on a batch.

    Parameters
    ----------
    weights, biases, activation, dropout, dropout_key
        The network, as in `forward`.
    X : ndarray of shape (n_samples, n_features)
        Input data.
    y : ndarray
        Targets of the output layer (see `output_loss_backward`).
    output : {"softmax", "sigmoid", "identity", "poisson"}, default="softmax"

    Returns
    -------
    loss : float
        Softmax cross-entropy, binary cross-entropy or squared error, as a mean.
    """
    logits = forward(weights, biases, activation, X, dropout=dropout, dropout_key=dropout_key)[-1]
    if output == "softmax":
        return _mean_xent(logits, _check_targets(y, logits))
    return output_loss_backward(logits, y, output)[0]


def gradients(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str | Sequence[str], X: _FloatArray,
    y: _Targets, *, output: str = "softmax", dropout: float | Sequence[float] | None = None,
    dropout_key: tuple[int, int, int] | None = None,
) -> tuple[float, _Grads]:
    """Compute the mean loss and its gradient with respect to every weight and bias (backpropagation).

    Parameters
    ----------
    weights, biases, activation, dropout, dropout_key
        The network, as in `forward`.
    X : ndarray of shape (n_samples, n_features)
        Input data.
    y : ndarray
        Targets of the output layer.
    output : {"softmax", "sigmoid", "identity", "poisson"}, default="softmax"

    Returns
    -------
    loss : float
        The mean loss over the batch.
    grads : list of (dW, db) tuples
        One per layer, first layer first; dW has the shape of W and db the shape of b.
    """
    trace, acts = _forward_trace(weights, biases, activation, X, dropout, dropout_key)
    n_layers = len(weights)
    loss, da = output_loss_backward(trace.inputs[-1], y, output)  # da_L, e.g. (yhat - y) / B

    grads: _Grads = []  # from the last layer back, so reversed at the end
    for k in range(n_layers, 0, -1):
        W, h_prev = weights[k - 1], trace.inputs[k - 1]
        dW = da.T @ h_prev  # dW_k = da_k^T h_{k-1}
        db = da.sum(axis=0)  # db_k = sum_b da_k[b, :]
        grads.append((dW, db))
        if k > 1:  # nobody needs dX, so the first layer stops here
            dh = da @ W  # dh_{k-1} = da_k W_k
            # da_{k-1} = dh_{k-1} * g'(a_{k-1}), then times the dropout mask of layer k-1
            hk, ak = trace.h[k - 1], trace.a[k - 1]
            assert hk is not None and ak is not None
            da = activation_backward(dh, hk, acts[k - 2], a=ak)
            mask = trace.masks[k - 1]
            if mask is not None:
                da = da * mask
    grads.reverse()
    return loss, grads


def train_step(
    weights: Sequence[_FloatArray],
    biases: Sequence[_FloatArray],
    activation: str | Sequence[str],
    X: _FloatArray,
    y: _Targets,
    lr: float,
    *,
    output: str = "softmax",
    dropout: float | Sequence[float] | None = None,
    dropout_key: tuple[int, int, int] | None = None,
) -> float:
    """Take one SGD step on a batch, updating `weights` and `biases` in place.

    Parameters
    ----------
    weights, biases, activation, dropout, dropout_key
        The network, as in `forward`; the arrays are modified in place.
    X : ndarray of shape (n_samples, n_features)
        Batch input.
    y : ndarray
        Targets of the output layer.
    lr : float
        Learning rate.
    output : {"softmax", "sigmoid", "identity", "poisson"}, default="softmax"

    Returns
    -------
    loss : float
        Mean loss of the batch before the update.
    """
    loss, grads = gradients(weights, biases, activation, X, y, output=output, dropout=dropout,
                            dropout_key=dropout_key)
    for W, b, (dW, db) in zip(weights, biases, grads):
        sgd_update(W, dW, lr)
        sgd_update(b, db, lr)
    return loss


def train_epoch(
    weights: Sequence[_FloatArray],
    biases: Sequence[_FloatArray],
    activation: str | Sequence[str],
    X: _FloatArray,
    y: _Targets,
    batch_size: int,
    lr: float,
    order: ArrayLike | None = None,
    *,
    output: str = "softmax",
    dropout: float | Sequence[float] | None = None,
    dropout_seed: int | None = None,
    epoch: int = 1,
) -> float:
    """Run one epoch of minibatch SGD, updating `weights` and `biases` in place.

    Parameters
    ----------
    weights, biases, activation, dropout
        The network, as in `forward`; the arrays are modified in place.
    X : ndarray of shape (n_samples, n_features)
        Training input.
    y : ndarray
        Targets of the output layer.
    batch_size : int
        Rows per batch; the last batch holds the remainder and may be smaller.
    lr : float
        Learning rate.
    order : sequence of int of length n_samples, default=None
        Permutation of the row indices giving the visiting order; None visits the rows in order.
    output : {"softmax", "sigmoid", "identity", "poisson"}, default="softmax"
    dropout_seed : int, optional
        With dropout, batch j of this epoch uses the masks of (dropout_seed, epoch, j), as
        fastmlp.Trainer does; None: no dropout.
    epoch : int, default=1

    Returns
    -------
    loss : float
        Mean per-sample loss over the epoch, each batch's loss taken before its update:
        sum(batch_loss * batch_rows) / n_samples.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    n_samples: int = X.shape[0]
    if n_samples == 0:
        raise ValueError("X has no rows")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if order is None:
        order = np.arange(n_samples)
    else:
        order = np.asarray(order)
        if order.shape != (n_samples,) or not np.array_equal(np.sort(order), np.arange(n_samples)):
            raise ValueError(f"order must be a permutation of range({n_samples})")

    total = 0.0
    for j, start in enumerate(range(0, n_samples, batch_size)):
        rows = order[start:start + batch_size]
        key = None if dropout_seed is None else (dropout_seed, epoch, j)
        total += train_step(weights, biases, activation, X[rows], y[rows], lr, output=output, dropout=dropout,
                            dropout_key=key) * len(rows)
    return total / n_samples
