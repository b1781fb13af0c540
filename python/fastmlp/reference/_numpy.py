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

ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus")
OUTPUTS = ("softmax", "sigmoid", "identity")

#: Activations whose derivative needs the pre-activation a (the others are written in terms of h).
TAKES_PREACTIVATION = ("gelu", "silu")
_LEAKY_SLOPE = 0.01


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
    activation : str, one of ACTIVATIONS
        Activation function g: identity, relu, leaky_relu (slope 0.01), elu (alpha 1), gelu
        (exact: a Phi(a)), silu (a sigmoid(a)), tanh, sigmoid, softplus (log(1 + e^a)).

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
    elif activation == "leaky_relu":
        h = np.where(a > 0, a, a * a.dtype.type(_LEAKY_SLOPE))
    elif activation == "elu":
        h = np.where(a > 0, a, np.expm1(np.minimum(a, 0)))
    elif activation == "gelu":
        h = a * _gaussian_cdf(a)
    elif activation == "silu":
        h = a * _sigmoid(a)
    elif activation == "tanh":
        h = np.tanh(a)
    elif activation == "softplus":
        h = np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))
    else:
        h = _sigmoid(a)
    return h


def _gaussian_cdf(a: _FloatArray) -> _FloatArray:
    # Phi(a) = erfc(-a / sqrt 2) / 2; erfc keeps the left tail's relative accuracy. NumPy has no
    # erfc, so it comes from math.erfc per element, in double, rounded to a's dtype.
    import math

    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    out = np.fromiter((0.5 * math.erfc(-v * 0.7071067811865476) for v in flat), dtype=np.float64, count=flat.size)
    cdf: _FloatArray = out.reshape(np.shape(a)).astype(np.asarray(a).dtype)
    return cdf


def activation_backward(dh: _FloatArray, h: _FloatArray, activation: str, a: _FloatArray | None = None) -> _FloatArray:
    """Multiply an incoming gradient by the activation derivative.

    The derivative is taken from the activation output `h`, not from the pre-activation, so the
    forward pass needs to keep only `h`; gelu and silu, whose output does not determine their
    input, take the pre-activation `a` instead (then `h` is not used).

    Parameters
    ----------
    dh : ndarray of shape (n_samples, n_units)
        Gradient of the loss with respect to `h`.
    h : ndarray of shape (n_samples, n_units)
        Activation output g(a).
    activation : str, one of ACTIVATIONS
        Activation function g.
    a : ndarray of shape (n_samples, n_units), optional
        The pre-activation; required for "gelu" and "silu".

    Returns
    -------
    da : ndarray of shape (n_samples, n_units)
        dh * g'(a): relu 1[h>0] (so relu'(0) = 0), leaky_relu 1 or 0.01, elu 1 or h + 1,
        tanh 1 - h², sigmoid h (1 - h), softplus 1 - e^-h; gelu Phi(a) + a phi(a), silu
        s (1 + a (1 - s)) with s = sigmoid(a).
    """
    _check_activation(activation)
    dh = np.asarray(dh)
    h = np.asarray(h)
    da: _FloatArray  # NumPy's stubs type array arithmetic as Any; this says what it holds
    if activation in TAKES_PREACTIVATION:
        if a is None:
            raise ValueError(f"the derivative of {activation} needs the pre-activation: pass a=")
        a = np.asarray(a)
        if activation == "gelu":
            pdf = np.exp(a.dtype.type(-0.5) * a * a) * a.dtype.type(0.3989422804014327)
            da = dh * (_gaussian_cdf(a) + a * pdf)
        else:
            s = _sigmoid(a)
            da = dh * (s * (1 + a * (1 - s)))
    elif activation == "identity":
        da = dh.copy()
    elif activation == "relu":
        da = dh * (h > 0)
    elif activation == "leaky_relu":
        da = dh * np.where(h > 0, h.dtype.type(1), h.dtype.type(_LEAKY_SLOPE))
    elif activation == "elu":
        da = dh * np.where(h > 0, h.dtype.type(1), h + 1)
    elif activation == "softplus":
        da = dh * -np.expm1(-h)
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
    per_sample = lse - logits[np.arange(len(y)), y] if y.ndim == 1 else np.sum(y * (lse[:, None] - logits), axis=1)
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


def sigmoid_bce_backward(logits: _FloatArray, y: _FloatArray) -> tuple[float, _FloatArray]:
    """Compute the mean binary cross-entropy of sigmoid outputs and its gradient.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_outputs)
        Output-layer pre-activations.
    y : ndarray of shape (n_samples, n_outputs)
        Targets in [0, 1].

    Returns
    -------
    loss : float
        Mean over all elements of -y log s(a) - (1 - y) log(1 - s(a)), computed from the logits
        as max(a, 0) - a y + log1p(exp(-|a|)) (PyTorch's BCEWithLogitsLoss).
    dlogits : ndarray of shape (n_samples, n_outputs)
        (sigmoid(logits) - y) / (n_samples n_outputs).
    """
    logits = np.asarray(logits)
    y = np.asarray(y, dtype=logits.dtype)
    a64, y64 = logits.astype(np.float64), y.astype(np.float64)
    loss = float(np.mean(np.maximum(a64, 0) - a64 * y64 + np.log1p(np.exp(-np.abs(a64)))))
    dlogits: _FloatArray = (_sigmoid(logits) - y) / logits.dtype.type(logits.size)
    return loss, dlogits


def squared_error_backward(logits: _FloatArray, y: _FloatArray) -> tuple[float, _FloatArray]:
    """Compute the mean squared error of identity outputs and its gradient.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_outputs)
        Outputs.
    y : ndarray of shape (n_samples, n_outputs)
        Targets.

    Returns
    -------
    loss : float
        Mean over all elements of (a - y)² (PyTorch's MSELoss).
    dlogits : ndarray of shape (n_samples, n_outputs)
        2 (logits - y) / (n_samples n_outputs).
    """
    logits = np.asarray(logits)
    y = np.asarray(y, dtype=logits.dtype)
    loss = float(np.mean((logits.astype(np.float64) - y.astype(np.float64)) ** 2))
    dlogits: _FloatArray = 2 * (logits - y) / logits.dtype.type(logits.size)
    return loss, dlogits


def output_forward(logits: _FloatArray, output: str = "softmax") -> _FloatArray:
    """The output layer's predictions: softmax probabilities, sigmoids, or the logits themselves."""
    _check_output(output)
    logits = np.asarray(logits)
    if output == "softmax":
        return softmax(logits)
    if output == "sigmoid":
        return _sigmoid(logits)
    return logits.copy()


def output_loss_backward(logits: _FloatArray, y: _Targets, output: str = "softmax") -> tuple[float, _FloatArray]:
    """The loss of the output layer `output` and its gradient with respect to the logits.

    softmax: `softmax_xent_backward`; sigmoid: `sigmoid_bce_backward`; identity:
    `squared_error_backward` (targets of shape (n_samples,) are taken as one column).
    """
    _check_output(output)
    if output == "softmax":
        return softmax_xent_backward(logits, y)
    logits = np.asarray(logits)
    targets: _FloatArray = np.asarray(y, dtype=logits.dtype)
    if targets.ndim == 1:
        targets = targets.reshape(-1, 1)
    if targets.shape != logits.shape:
        raise ValueError(f"y must have the shape of the outputs {logits.shape}, got {targets.shape}")
    if output == "sigmoid":
        return sigmoid_bce_backward(logits, targets)
    return squared_error_backward(logits, targets)


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(repr(o) for o in OUTPUTS)}, got {output!r}")


def _mix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # The native dropout.hpp's mix64 (SplitMix64's finaliser after a Weyl step), on uint64
    # arrays, whose arithmetic wraps modulo 2^64 as C++'s unsigned arithmetic does.
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return out


def dropout_mask(shape: tuple[int, int], p: float, seed: int, epoch: int, batch: int, layer: int,
                 dtype: Any = np.float64, row_positions: ArrayLike | None = None) -> _FloatArray:
    """The multiplier inverted dropout applies to a hidden layer's output in a training batch.

    Element (r, u) is mask element e = position(r) * units + u, where position(r) is
    ``row_positions[r]`` (the row's place in a larger batch) or r itself; e of layer `layer`
    (1-based) is kept when the top 32
    bits of mix64(key ^ e) are below floor((1 - p) 2^32), with key = mix64(mix64(mix64(mix64(
    seed) ^ epoch) ^ batch) ^ layer): a counter-based generator, so the same arguments always
    give the same mask, whatever computes it.

    Returns
    -------
    mask : ndarray of `shape` and `dtype`
        1 / (1 - p) (computed in double, rounded to `dtype`) where kept, 0 where dropped.
    """
    import math

    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p!r}")

    def u64(v: int) -> NDArray[np.uint64]:
        return np.array([v & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)

    key = _mix64(_mix64(_mix64(_mix64(u64(seed)) ^ u64(epoch)) ^ u64(batch)) ^ u64(layer))
    rows, units = shape
    positions: NDArray[np.uint64] = (np.arange(rows) if row_positions is None else np.asarray(row_positions)).astype(
        np.uint64)
    # Unsigned throughout (NumPy's stubs type this sum as float64, hence the explicit cast).
    elements = (positions[:, None] * np.uint64(units) + np.arange(units, dtype=np.uint64)).reshape(-1).astype(np.uint64)
    bits = _mix64(key ^ elements) >> np.uint64(32)
    threshold = np.uint64(math.floor((1.0 - p) * 4294967296.0))
    scale = np.dtype(dtype).type(1.0 / (1.0 - p))
    mask: _FloatArray = np.where(bits < threshold, scale, np.dtype(dtype).type(0)).reshape(shape)
    return mask


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
    output : {"softmax", "sigmoid", "identity"}, default="softmax"

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
    output : {"softmax", "sigmoid", "identity"}, default="softmax"

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
    output : {"softmax", "sigmoid", "identity"}, default="softmax"

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
    output : {"softmax", "sigmoid", "identity"}, default="softmax"

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
    output : {"softmax", "sigmoid", "identity"}, default="softmax"
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
