"""NumPy oracle for the fastmlp kernels, layer by layer: the equations of docs/architecture.md's
"Where each equation lives" written as plainly as NumPy allows (the whole network is in _network.py).

Every function keeps the floating dtype of its inputs, so a float32 call does float32 arithmetic, like
the native kernels. Deliberately absent: input normalisation, workspaces, fusion and speed; shapes and
labels are checked only where a mistake would otherwise give a silently wrong answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import NDArray

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
]

ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus")
OUTPUTS = ("softmax", "sigmoid", "identity", "poisson")

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


def poisson_deviance_backward(logits: _FloatArray, y: _FloatArray) -> tuple[float, _FloatArray]:
    """Compute half the Poisson deviance of exp outputs and its gradient.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_outputs)
        Output-layer pre-activations: the log of the predicted means.
    y : ndarray of shape (n_samples, n_outputs)
        Targets, >= 0.

    Returns
    -------
    loss : float
        Mean over all elements of exp(a) - y a + y log y - y (with 0 log 0 = 0), which is
        y log(y / exp(a)) - y + exp(a): scikit-learn's half Poisson deviance per element.
    dlogits : ndarray of shape (n_samples, n_outputs)
        (exp(logits) - y) / (n_samples n_outputs).
    """
    logits = np.asarray(logits)
    y = np.asarray(y, dtype=logits.dtype)
    a64, y64 = logits.astype(np.float64), y.astype(np.float64)
    y_log_y = np.where(y64 > 0, y64 * np.log(np.where(y64 > 0, y64, 1.0)), 0.0)
    loss = float(np.mean(np.exp(a64) - y64 * a64 + y_log_y - y64))
    dlogits: _FloatArray = (np.exp(logits) - y) / logits.dtype.type(logits.size)
    return loss, dlogits


def output_forward(logits: _FloatArray, output: str = "softmax") -> _FloatArray:
    """The output layer's predictions: softmax probabilities, sigmoids, the logits themselves
    (identity) or their exponentials (poisson)."""
    _check_output(output)
    logits = np.asarray(logits)
    if output == "softmax":
        return softmax(logits)
    if output == "sigmoid":
        return _sigmoid(logits)
    if output == "poisson":
        result: _FloatArray = np.exp(logits)
        return result
    return logits.copy()


def output_loss_backward(logits: _FloatArray, y: _Targets, output: str = "softmax") -> tuple[float, _FloatArray]:
    """The loss of the output layer `output` and its gradient with respect to the logits.

    softmax: `softmax_xent_backward`; sigmoid: `sigmoid_bce_backward`; identity:
    `squared_error_backward`; poisson: `poisson_deviance_backward` (targets of shape
    (n_samples,) are taken as one column).
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
    if output == "poisson":
        return poisson_deviance_backward(logits, targets)
    return squared_error_backward(logits, targets)


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(repr(o) for o in OUTPUTS)}, got {output!r}")
