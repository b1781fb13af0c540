"""NumPy oracle for the fastmlp kernels: DESIGN.md section 1 written as plainly as NumPy allows.

Every function keeps the floating dtype of its inputs, so a float32 call does float32 arithmetic, like
the native kernels. Deliberately absent: input normalisation, workspaces, fusion and speed; shapes and
labels are checked only where a mistake would otherwise give a silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    # Any floating dtype: each function computes in the dtype its inputs come in.
    _FloatArray: TypeAlias = NDArray[np.floating[Any]]
    # Integer labels (n_samples,) or target distributions (n_samples, n_classes).
    _Targets: TypeAlias = NDArray[Union[np.integer[Any], np.floating[Any]]]
    _Grads: TypeAlias = list[tuple[_FloatArray, _FloatArray]]

__all__ = [
    "ACTIVATIONS",
    "activation_forward",
    "activation_backward",
    "dense_forward",
    "softmax",
    "softmax_xent_backward",
    "dense_backward_input",
    "dense_backward_params",
    "sgd_update",
    "forward",
    "predict_proba",
    "loss",
    "gradients",
    "train_step",
    "train_epoch",
]

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(repr(name) for name in ACTIVATIONS)}, "
            f"got {activation!r}"
        )


def _sigmoid(a: _FloatArray) -> _FloatArray:
    # exp(-|a|) never overflows; the two branches are the same function rewritten for each sign.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def activation_forward(a: _FloatArray, activation: str) -> _FloatArray:
    """Apply the activation function elementwise.

    Parameters
    ----------
    a : ndarray of shape (n_samples, n_units)
        Pre-activations.
    activation : {"identity", "relu", "tanh", "sigmoid"}
        Activation function g.

    Returns
    -------
    h : ndarray of shape (n_samples, n_units)
        g(a), a new array of the dtype of `a`.
    """
    _check_activation(activation)
    a = np.asarray(a)
    h: _FloatArray  # NumPy's stubs type ufunc results as Any; this says what they hold
    if activation == "identity":
        h = a.copy()
    elif activation == "relu":
        h = np.maximum(a, 0)
    elif activation == "tanh":
        h = np.tanh(a)
    else:
        h = _sigmoid(a)
    return h


def activation_backward(dh: _FloatArray, h: _FloatArray, activation: str) -> _FloatArray:
    """Multiply an incoming gradient by the activation derivative.

    The derivative is taken from the activation output `h`, not from the pre-activation, so the
    forward pass needs to keep only `h`.

    Parameters
    ----------
    dh : ndarray of shape (n_samples, n_units)
        Gradient of the loss with respect to `h`.
    h : ndarray of shape (n_samples, n_units)
        Activation output g(a).
    activation : {"identity", "relu", "tanh", "sigmoid"}
        Activation function g.

    Returns
    -------
    da : ndarray of shape (n_samples, n_units)
        dh * g'(a), with g' written in terms of h.
    """
    _check_activation(activation)
    dh = np.asarray(dh)
    h = np.asarray(h)
    da: _FloatArray  # NumPy's stubs type array arithmetic as Any; this says what it holds
    if activation == "identity":
        da = dh.copy()
    elif activation == "relu":
        da = dh * (h > 0)
    elif activation == "tanh":
        da = dh * (1 - h * h)
    else:
        da = dh * (h * (1 - h))
    return da


def dense_forward(x: _FloatArray, W: _FloatArray, b: _FloatArray, activation: str = "identity") -> _FloatArray:
    """Compute one dense layer, g(x W^T + b).

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_inputs)
        Layer input.
    W : ndarray of shape (n_outputs, n_inputs)
        Weights; W[i, j] joins input j to output i.
    b : ndarray of shape (n_outputs,)
        Biases.
    activation : {"identity", "relu", "tanh", "sigmoid"}, default="identity"
        Activation function g.

    Returns
    -------
    h : ndarray of shape (n_samples, n_outputs)
        Layer output.
    """
    a = np.asarray(x) @ np.asarray(W).T + np.asarray(b)
    return activation_forward(a, activation)


def _log_sum_exp(logits: _FloatArray) -> _FloatArray:
    # Shifting by the row max keeps every exp in (0, 1], so no row can overflow.
    m = logits.max(axis=-1)
    lse: _FloatArray = m + np.log(np.exp(logits - m[..., None]).sum(axis=-1))
    return lse


def softmax(logits: _FloatArray) -> _FloatArray:
    """Compute the row-wise softmax.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
        Output-layer pre-activations.

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
        exp(logits - max) / sum(exp(logits - max)) per row; rows sum to 1.
    """
    logits = np.asarray(logits)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs: _FloatArray = e / e.sum(axis=-1, keepdims=True)
    return probs


def _check_targets(y: _Targets, logits: _FloatArray) -> NDArray[Any]:
    """Return `y` as integer labels of shape (n_samples,) or targets of shape (n_samples, n_classes)."""
    y = np.asarray(y)
    n_samples, n_classes = logits.shape
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"y of shape (n_samples,) must hold integer class labels, got dtype {y.dtype}"
            )
        if y.shape[0] != n_samples:
            raise ValueError(f"y has {y.shape[0]} labels for {n_samples} samples")
        # A negative label would index from the end and give a plausible but wrong loss.
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(
                f"labels must lie in [0, {n_classes}), got values in [{y.min()}, {y.max()}]"
            )
        return y
    if y.shape != logits.shape:
        raise ValueError(
            f"y must be labels of shape ({n_samples},) or targets of shape {logits.shape}, "
            f"got shape {y.shape}"
        )
    return y.astype(logits.dtype, copy=False)


def _target_matrix(y: NDArray[Any], logits: _FloatArray) -> _FloatArray:
    if y.ndim == 2:
        return y
    Y = np.zeros_like(logits)
    Y[np.arange(len(y)), y] = 1
    return Y


def _mean_xent(logits: _FloatArray, y: NDArray[Any]) -> float:
    # -log softmax(a)_i = lse - a_i exactly, so the loss never takes log of a probability that
    # rounded to 0, and a zero target multiplies a finite number instead of log(0).
    lse = _log_sum_exp(logits)
    if y.ndim == 1:
        per_sample = lse - logits[np.arange(len(y)), y]
    else:
        per_sample = np.sum(y * (lse[:, None] - logits), axis=1)
    return float(np.mean(per_sample))


def softmax_xent_backward(logits: _FloatArray, y: _Targets) -> tuple[float, _FloatArray]:
    """Compute the mean softmax cross-entropy and its gradient with respect to the logits.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
        Output-layer pre-activations.
    y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        Integer class labels, or target distributions (rows summing to 1).

    Returns
    -------
    loss : float
        Mean over the batch of -sum_i y_i log softmax(logits)_i.
    dlogits : ndarray of shape (n_samples, n_classes)
        (softmax(logits) - y) / n_samples.
    """
    logits = np.asarray(logits)
    y = _check_targets(y, logits)
    n_samples = logits.shape[0]
    loss = _mean_xent(logits, y)
    dlogits = (softmax(logits) - _target_matrix(y, logits)) / n_samples
    return loss, dlogits


def dense_backward_input(da: _FloatArray, W: _FloatArray) -> _FloatArray:
    """Propagate a pre-activation gradient back to the layer input.

    Parameters
    ----------
    da : ndarray of shape (n_samples, n_outputs)
        Gradient of the loss with respect to the layer's pre-activations.
    W : ndarray of shape (n_outputs, n_inputs)
        Layer weights.

    Returns
    -------
    dh : ndarray of shape (n_samples, n_inputs)
        da W.
    """
    dh: _FloatArray = np.asarray(da) @ np.asarray(W)
    return dh


def dense_backward_params(da: _FloatArray, h_prev: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
    """Compute the weight and bias gradients of one dense layer.

    Parameters
    ----------
    da : ndarray of shape (n_samples, n_outputs)
        Gradient of the loss with respect to the layer's pre-activations.
    h_prev : ndarray of shape (n_samples, n_inputs)
        Layer input.

    Returns
    -------
    dW : ndarray of shape (n_outputs, n_inputs)
        da^T h_prev, the sum over the batch of outer products.
    db : ndarray of shape (n_outputs,)
        Column sums of da.
    """
    da = np.asarray(da)
    return da.T @ np.asarray(h_prev), da.sum(axis=0)


def sgd_update(param: _FloatArray, grad: _FloatArray, lr: float) -> None:
    """Take one plain SGD step in place: param -= lr * grad.

    Parameters
    ----------
    param : ndarray
        Parameter array, modified in place.
    grad : ndarray of the same shape as `param`
        Gradient of the loss with respect to `param`.
    lr : float
        Learning rate.
    """
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param must be a NumPy array to update in place, got {type(param).__name__}")
    param -= lr * np.asarray(grad)


def _check_network(weights: Sequence[object], biases: Sequence[object]) -> None:
    if len(weights) == 0 or len(weights) != len(biases):
        raise ValueError(
            f"need one bias per weight matrix and at least one layer, "
            f"got {len(weights)} weight matrices and {len(biases)} bias vectors"
        )


def forward(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str, X: _FloatArray
) -> list[_FloatArray]:
    """Run the network forward and keep every layer's output.

    Parameters
    ----------
    weights : list of ndarray, the k-th of shape (n_outputs_k, n_inputs_k)
        Weight matrices, first layer first.
    biases : list of ndarray, the k-th of shape (n_outputs_k,)
        Bias vectors.
    activation : {"identity", "relu", "tanh", "sigmoid"}
        Activation of the hidden layers; the output layer is always the identity.
    X : ndarray of shape (n_samples, n_features)
        Input data.

    Returns
    -------
    hs : list of ndarray
        [X, h_1, ..., h_L]; h_L, of shape (n_samples, n_classes), holds the logits.
    """
    _check_network(weights, biases)
    _check_activation(activation)
    hs = [np.asarray(X)]
    n_layers = len(weights)
    for k, (W, b) in enumerate(zip(weights, biases), start=1):
        hs.append(dense_forward(hs[-1], W, b, activation if k < n_layers else "identity"))
    return hs


def predict_proba(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str, X: _FloatArray
) -> _FloatArray:
    """Compute class probabilities, the softmax of the logits.

    Parameters
    ----------
    weights, biases, activation
        The network, as in `forward`.
    X : ndarray of shape (n_samples, n_features)
        Input data.

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
        Predicted class probabilities.
    """
    return softmax(forward(weights, biases, activation, X)[-1])


def loss(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str, X: _FloatArray, y: _Targets
) -> float:
    """Compute the mean cross-entropy of the network on a batch.

    Parameters
    ----------
    weights, biases, activation
        The network, as in `forward`.
    X : ndarray of shape (n_samples, n_features)
        Input data.
    y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        Integer class labels, or target distributions.

    Returns
    -------
    loss : float
        Mean over the batch of the softmax cross-entropy.
    """
    logits = forward(weights, biases, activation, X)[-1]
    return _mean_xent(logits, _check_targets(y, logits))


def gradients(
    weights: Sequence[_FloatArray], biases: Sequence[_FloatArray], activation: str, X: _FloatArray, y: _Targets
) -> tuple[float, _Grads]:
    """Compute the mean loss and its gradient with respect to every weight and bias (backpropagation).

    Parameters
    ----------
    weights, biases, activation
        The network, as in `forward`.
    X : ndarray of shape (n_samples, n_features)
        Input data.
    y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        Integer class labels, or target distributions.

    Returns
    -------
    loss : float
        Mean cross-entropy over the batch.
    grads : list of (dW, db) tuples
        One per layer, first layer first; dW has the shape of W and db the shape of b.
    """
    hs = forward(weights, biases, activation, X)
    logits = hs[-1]
    y = _check_targets(y, logits)
    n_samples = logits.shape[0]
    n_layers = len(weights)
    loss = _mean_xent(logits, y)

    grads: _Grads = []  # from the last layer back, so reversed at the end
    da = (softmax(logits) - _target_matrix(y, logits)) / n_samples  # da_L = (yhat - y) / B
    for k in range(n_layers, 0, -1):
        W, h_prev = weights[k - 1], hs[k - 1]
        dW = da.T @ h_prev  # dW_k = da_k^T h_{k-1}
        db = da.sum(axis=0)  # db_k = sum_b da_k[b, :]
        grads.append((dW, db))
        if k > 1:  # nobody needs dX, so the first layer stops here
            dh = da @ W  # dh_{k-1} = da_k W_k
            da = activation_backward(dh, h_prev, activation)  # da_{k-1} = dh_{k-1} * g'(h_{k-1})
    grads.reverse()
    return loss, grads


def train_step(
    weights: Sequence[_FloatArray],
    biases: Sequence[_FloatArray],
    activation: str,
    X: _FloatArray,
    y: _Targets,
    lr: float,
) -> float:
    """Take one SGD step on a batch, updating `weights` and `biases` in place.

    Parameters
    ----------
    weights, biases, activation
        The network, as in `forward`; the arrays are modified in place.
    X : ndarray of shape (n_samples, n_features)
        Batch input.
    y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        Integer class labels, or target distributions.
    lr : float
        Learning rate.

    Returns
    -------
    loss : float
        Mean loss of the batch before the update.
    """
    loss, grads = gradients(weights, biases, activation, X, y)
    for W, b, (dW, db) in zip(weights, biases, grads):
        sgd_update(W, dW, lr)
        sgd_update(b, db, lr)
    return loss


def train_epoch(
    weights: Sequence[_FloatArray],
    biases: Sequence[_FloatArray],
    activation: str,
    X: _FloatArray,
    y: _Targets,
    batch_size: int,
    lr: float,
    order: ArrayLike | None = None,
) -> float:
    """Run one epoch of minibatch SGD, updating `weights` and `biases` in place.

    Parameters
    ----------
    weights, biases, activation
        The network, as in `forward`; the arrays are modified in place.
    X : ndarray of shape (n_samples, n_features)
        Training input.
    y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        Integer class labels, or target distributions.
    batch_size : int
        Rows per batch; the last batch holds the remainder and may be smaller.
    lr : float
        Learning rate.
    order : sequence of int of length n_samples, default=None
        Permutation of the row indices giving the visiting order; None visits the rows in order.

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
    for start in range(0, n_samples, batch_size):
        rows = order[start:start + batch_size]
        total += train_step(weights, biases, activation, X[rows], y[rows], lr) * len(rows)
    return total / n_samples
