"""NumPy oracle of PyTorch's optimizer updates: SGD (momentum, Nesterov), Adam, AdamW and RMSprop.

Each function takes one step on one parameter array in place, operation by operation as torch 2.13's
single-tensor (for-loop) CPU code does, rounding where torch rounds, so that the native optimizer kernels
and ``torch.optim`` can both be compared against it. Deliberately absent: parameter groups, closures,
``maximize``, ``amsgrad``, SGD's ``dampening``, centered RMSprop, and any concern for speed.

How torch rounds on the CPU, measured on an AVX-512 build (tests/reference/test_optim_reference.py checks it):

- a Python-float hyperparameter is first rounded to the parameter's dtype (``Scalar.to<scalar_t>()``);
- ``add(x, alpha=a)``, ``lerp`` and ``addcmul`` are fused multiply-adds: ``a * x + y`` rounded once;
- ``addcdiv`` is ``self + (value * t1) / t2`` with a rounding after each operation;
- ``mul``, ``div``, ``sqrt`` and ``add`` of two operands are single IEEE operations.

NumPy has no fused multiply-add, so :func:`_fused_multiply_add` builds a correctly rounded one from
error-free transformations; with it, float32 and float64 results are bitwise torch's on such a CPU.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    _FloatArray: TypeAlias = NDArray[np.floating[Any]]
    # A hyperparameter already rounded to the parameter's dtype, or an array of that dtype.
    _Operand: TypeAlias = Union[_FloatArray, np.floating[Any]]

__all__ = ["sgd_step", "adam_step", "adamw_step", "rmsprop_step"]

_SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Veltkamp's splitting constant 2**27 + 1 cuts a float64 into two halves of at most 26 significant bits,
# whose pairwise products are exact.
_VELTKAMP_SPLITTER = float(2**27 + 1)


# --- a correctly rounded fused multiply-add in NumPy -------------------------------------------------


def _two_sum(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # Knuth's TwoSum: s + err == a + b exactly, with s = fl(a + b).
    s = a + b
    b_virtual = s - a
    err = (a - (s - b_virtual)) + (b - b_virtual)
    return s, err


def _two_product(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # Dekker's TwoProduct: p + err == a * b exactly (away from overflow and underflow), with p = fl(a * b).
    p = a * b
    a_big = _VELTKAMP_SPLITTER * a
    a_hi = a_big - (a_big - a)
    a_lo = a - a_hi
    b_big = _VELTKAMP_SPLITTER * b
    b_hi = b_big - (b_big - b)
    b_lo = b - b_hi
    err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, err


def _add_rounded_to_odd(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    # a + b rounded to odd: when inexact, the neighbour with an odd last bit. Rounding to odd first and to
    # nearest afterwards is a correct rounding to nearest whenever the second format has at least two bits
    # fewer (Boldo and Melquiond 2008), which is what makes the two emulations below exact.
    s, err = _two_sum(a, b)
    even = (np.asarray(s).view(np.uint64) & np.uint64(1)) == 0
    towards_exact = np.where(err > 0, np.inf, -np.inf)
    rounded: NDArray[np.float64] = np.where((err != 0) & even, np.nextafter(s, towards_exact), s)
    return rounded


def _fused_multiply_add(a: _Operand, b: _Operand, c: _Operand) -> _FloatArray:
    """Return a * b + c rounded once to the common dtype (float32 or float64) of the operands."""
    dtype = np.result_type(a, b, c)
    a64, b64, c64 = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
    # The error-free transformations turn infinities (and products near overflow) into NaN, quietly: there,
    # the unfused expression gives the IEEE answer.
    with np.errstate(over="ignore", invalid="ignore"):
        fused = _fused_finite_operands(a64, b64, c64, dtype)
    unfused = (a64 * b64 + c64).astype(dtype)
    result: _FloatArray = np.where(np.isfinite(fused), fused, unfused).astype(dtype, copy=False)
    return result


def _fused_finite_operands(
    a64: NDArray[np.float64], b64: NDArray[np.float64], c64: NDArray[np.float64], dtype: np.dtype[Any]
) -> _FloatArray:
    fused: _FloatArray
    if dtype == np.float32:
        # A product of two float32 values is exact in float64; the sum, rounded to odd in float64's
        # 53 bits, then rounds to float32's 24 as the exact a * b + c would.
        fused = _add_rounded_to_odd(a64 * b64, c64).astype(np.float32)
    else:
        # Boldo and Melquiond's emulated FMA: the exact product as p_hi + p_lo, c + p_hi as s_hi + s_lo,
        # the two small parts rounded to odd, and one final rounding to nearest.
        p_hi, p_lo = _two_product(a64, b64)
        s_hi, s_lo = _two_sum(c64, p_hi)
        fused = s_hi + _add_rounded_to_odd(s_lo, p_lo)
    return fused


def _sqrt(x: _FloatArray) -> _FloatArray:
    # The correctly rounded IEEE square root. torch's CPU sqrt (MKL's vector math) is not: it is off by
    # one ulp in about one float32 result in six (one float64 in a hundred), the one place where this oracle
    # and torch part. The tests swap this function for torch's to show that everything else is bitwise equal.
    root: _FloatArray = np.sqrt(x)
    return root


# --- argument checks ---------------------------------------------------------------------------------


def _check_param_and_grad(param: object, grad: ArrayLike, optimizer: str) -> tuple[_FloatArray, _FloatArray]:
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{optimizer}: param must be a NumPy array to update in place, got {type(param).__name__}")
    if param.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"{optimizer}: param must have dtype float32 or float64, got {param.dtype}")
    if not param.flags.writeable:
        raise ValueError(f"{optimizer}: param must be writeable to be updated in place, got a read-only array")
    grad_array = np.asarray(grad)
    if grad_array.shape != param.shape:
        raise ValueError(
            f"{optimizer}: grad must have the shape of param {param.shape}, got shape {grad_array.shape}"
        )
    if grad_array.dtype.kind not in "fiu":
        raise TypeError(f"{optimizer}: grad must hold real numbers, got dtype {grad_array.dtype}")
    # Like p.grad in torch, the gradient has the parameter's dtype; astype copies, so grad is never modified.
    return param, grad_array.astype(param.dtype)


def _check_hyperparameter(
    optimizer: str, name: str, value: object, *, low: float = 0.0, high: float = math.inf, high_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{optimizer}: {name} must be a real number, got {type(value).__name__} {value!r}")
    number = float(value)
    in_range = low <= number < high if high_open else low <= number <= high
    if not (math.isfinite(number) and in_range):
        upper = "" if high == math.inf else (f" and < {high:g}" if high_open else f" and <= {high:g}")
        raise ValueError(f"{optimizer}: {name} must be a finite number >= {low:g}{upper}, got {value!r}")
    return number


def _check_state(state: object, optimizer: str) -> MutableMapping[str, Any]:
    if not isinstance(state, MutableMapping):
        raise TypeError(
            f"{optimizer}: state must be a dict (empty before the first step), got {type(state).__name__}"
        )
    return state


def _state_array(state: MutableMapping[str, Any], key: str, param: _FloatArray, optimizer: str) -> _FloatArray:
    """Return state[key], creating it as zeros like param before the first step."""
    if key not in state:
        state[key] = np.zeros_like(param)
    buffer = state[key]
    if not isinstance(buffer, np.ndarray) or buffer.shape != param.shape or buffer.dtype != param.dtype:
        got = (f"{buffer.dtype} array of shape {buffer.shape}" if isinstance(buffer, np.ndarray)
               else type(buffer).__name__)
        raise ValueError(
            f"{optimizer}: state[{key!r}] must be a {param.dtype} array of shape {param.shape} like param, got {got}"
        )
    return buffer


def _state_step(state: MutableMapping[str, Any], optimizer: str) -> int:
    step = state.setdefault("step", 0)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"{optimizer}: state['step'] must be an int >= 0 (steps taken so far), got {step!r}")
    return int(step)


# --- the optimizers ----------------------------------------------------------------------------------
# Formulas from torch 2.13's torch/optim/sgd.py (_single_tensor_sgd), adam.py (_single_tensor_adam, which
# AdamW in adamw.py runs with decoupled_weight_decay=True) and rmsprop.py (_single_tensor_rmsprop).


def sgd_step(
    param: _FloatArray,
    grad: ArrayLike,
    state: MutableMapping[str, Any],
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> None:
    """Take one SGD step in place, as ``torch.optim.SGD`` (with dampening=0) does.

    With g = grad + weight_decay * param, the update is ``buf = momentum * buf + g`` (``buf = g`` on the
    first step), then ``param -= lr * (g + momentum * buf)`` with Nesterov momentum or
    ``param -= lr * buf`` without; with momentum=0 it is ``param -= lr * g``.

    Parameters
    ----------
    param : ndarray of dtype float32 or float64
        Parameter array, modified in place; the arithmetic is done in its dtype.
    grad : array-like of the same shape as `param`
        Gradient of the loss with respect to `param`, converted to the dtype of `param`; not modified.
    state : dict
        The optimizer state of `param`, empty before the first step. With momentum, the step stores the
        momentum buffer (an array like `param`) under ``'momentum_buffer'``.
    lr : float
        Learning rate, >= 0.
    momentum : float, default=0.0
        Momentum factor, >= 0.
    nesterov : bool, default=False
        Whether to use Nesterov momentum; needs momentum > 0.
    weight_decay : float, default=0.0
        L2 penalty coefficient, >= 0, added to the gradient as ``weight_decay * param``.
    """
    name = "sgd_step"
    param, g = _check_param_and_grad(param, grad, name)
    state = _check_state(state, name)
    lr = _check_hyperparameter(name, "lr", lr)
    momentum = _check_hyperparameter(name, "momentum", momentum)
    weight_decay = _check_hyperparameter(name, "weight_decay", weight_decay)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"{name}: nesterov must be a bool, got {type(nesterov).__name__} {nesterov!r}")
    if nesterov and momentum == 0:
        raise ValueError(f"{name}: nesterov=True needs momentum > 0, got momentum={momentum!r}")
    scalar = param.dtype.type

    if weight_decay != 0:
        g = _fused_multiply_add(param, scalar(weight_decay), g)
    if momentum != 0:
        if "momentum_buffer" not in state:
            # PyTorch starts the buffer at the (decayed) gradient itself, not at momentum * 0 + g.
            state["momentum_buffer"] = g.copy()
            buf = state["momentum_buffer"]
        else:
            buf = _state_array(state, "momentum_buffer", param, name)
            # buf.mul_(momentum).add_(g, alpha=1 - dampening): with dampening=0 the add rounds once.
            buf[...] = buf * scalar(momentum) + g
        g = _fused_multiply_add(buf, scalar(momentum), g) if nesterov else buf
    param[...] = _fused_multiply_add(g, scalar(-lr), param)


def _adam_update(
    param: _FloatArray,
    grad: ArrayLike,
    state: MutableMapping[str, Any],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    name: str,
) -> None:
    param, g = _check_param_and_grad(param, grad, name)
    state = _check_state(state, name)
    lr = _check_hyperparameter(name, "lr", lr)
    eps = _check_hyperparameter(name, "eps", eps)
    weight_decay = _check_hyperparameter(name, "weight_decay", weight_decay)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
    beta1 = _check_hyperparameter(name, "betas[0]", betas[0], high=1.0, high_open=True)
    beta2 = _check_hyperparameter(name, "betas[1]", betas[1], high=1.0, high_open=True)
    step = _state_step(state, name) + 1
    exp_avg = _state_array(state, "exp_avg", param, name)
    exp_avg_sq = _state_array(state, "exp_avg_sq", param, name)
    scalar = param.dtype.type

    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= scalar(1 - lr * weight_decay)
        else:
            g = _fused_multiply_add(param, scalar(weight_decay), g)

    # exp_avg.lerp_(g, 1 - beta1), which ATen evaluates from whichever end is nearer for accuracy.
    weight = scalar(1 - beta1)
    difference = g - exp_avg
    if abs(weight) < 0.5:
        exp_avg[...] = _fused_multiply_add(weight, difference, exp_avg)
    else:
        exp_avg[...] = _fused_multiply_add(weight - scalar(1), difference, g)
    # exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2): the value multiplies g before the fused g * . + .
    exp_avg_sq[...] = _fused_multiply_add(scalar(1 - beta2) * g, g, exp_avg_sq * scalar(beta2))

    # The bias corrections are Python floats (float64) whatever the dtype; only their uses round.
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    denom = _sqrt(exp_avg_sq) / scalar(bias_correction2_sqrt) + scalar(eps)
    # param.addcdiv_(exp_avg, denom, value=-step_size)
    param[...] = param + (scalar(-step_size) * exp_avg) / denom
    state["step"] = step


def adam_step(
    param: _FloatArray,
    grad: ArrayLike,
    state: MutableMapping[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """Take one Adam step in place, as ``torch.optim.Adam`` (amsgrad=False) does.

    With g = grad + weight_decay * param (L2 penalty) and t the step number from 1::

        m = beta1 * m + (1 - beta1) * g           (as m.lerp_(g, 1 - beta1))
        v = beta2 * v + (1 - beta2) * g * g
        param -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    param : ndarray of dtype float32 or float64
        Parameter array, modified in place; the arithmetic is done in its dtype.
    grad : array-like of the same shape as `param`
        Gradient of the loss with respect to `param`, converted to the dtype of `param`; not modified.
    state : dict
        The optimizer state of `param`, empty before the first step: ``'step'`` (int, steps taken),
        ``'exp_avg'`` (m) and ``'exp_avg_sq'`` (v), arrays like `param` that start at zeros.
    lr : float
        Learning rate, >= 0.
    betas : tuple of two floats in [0, 1), default=(0.9, 0.999)
        Decay rates of the running averages of the gradient and of its square.
    eps : float, default=1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default=0.0
        L2 penalty coefficient, >= 0, added to the gradient as ``weight_decay * param``.

    See Also
    --------
    adamw_step : the same update with decoupled weight decay.
    """
    _adam_update(
        param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
        decoupled_weight_decay=False, name="adam_step",
    )


def adamw_step(
    param: _FloatArray,
    grad: ArrayLike,
    state: MutableMapping[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> None:
    """Take one AdamW step in place, as ``torch.optim.AdamW`` (amsgrad=False) does.

    The Adam update of :func:`adam_step` on the raw gradient, after the parameter itself has decayed:
    ``param *= 1 - lr * weight_decay`` comes first and the decay never enters the running averages.

    Parameters
    ----------
    param : ndarray of dtype float32 or float64
        Parameter array, modified in place; the arithmetic is done in its dtype.
    grad : array-like of the same shape as `param`
        Gradient of the loss with respect to `param`, converted to the dtype of `param`; not modified.
    state : dict
        The optimizer state of `param`, empty before the first step: ``'step'`` (int, steps taken),
        ``'exp_avg'`` and ``'exp_avg_sq'``, arrays like `param` that start at zeros.
    lr : float
        Learning rate, >= 0.
    betas : tuple of two floats in [0, 1), default=(0.9, 0.999)
        Decay rates of the running averages of the gradient and of its square.
    eps : float, default=1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default=1e-2
        Decoupled weight decay coefficient, >= 0.
    """
    _adam_update(
        param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
        decoupled_weight_decay=True, name="adamw_step",
    )


def rmsprop_step(
    param: _FloatArray,
    grad: ArrayLike,
    state: MutableMapping[str, Any],
    *,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> None:
    """Take one RMSprop step in place, as ``torch.optim.RMSprop`` (centered=False) does.

    With g = grad + weight_decay * param::

        v = alpha * v + (1 - alpha) * g * g
        buf = momentum * buf + g / (sqrt(v) + eps);  param -= lr * buf      (momentum > 0)
        param -= lr * g / (sqrt(v) + eps)                                   (momentum = 0)

    Note that eps is added outside the square root, as in PyTorch (Keras adds it inside).

    Parameters
    ----------
    param : ndarray of dtype float32 or float64
        Parameter array, modified in place; the arithmetic is done in its dtype.
    grad : array-like of the same shape as `param`
        Gradient of the loss with respect to `param`, converted to the dtype of `param`; not modified.
    state : dict
        The optimizer state of `param`, empty before the first step: ``'step'`` (int, steps taken),
        ``'square_avg'`` (v) and, with momentum, ``'momentum_buffer'``, arrays like `param` that start
        at zeros.
    lr : float, default=1e-2
        Learning rate, >= 0.
    alpha : float, default=0.99
        Decay rate of the running average of the squared gradient, in [0, 1].
    eps : float, default=1e-8
        Added to the denominator, >= 0.
    momentum : float, default=0.0
        Momentum factor, >= 0.
    weight_decay : float, default=0.0
        L2 penalty coefficient, >= 0, added to the gradient as ``weight_decay * param``.
    """
    name = "rmsprop_step"
    param, g = _check_param_and_grad(param, grad, name)
    state = _check_state(state, name)
    lr = _check_hyperparameter(name, "lr", lr)
    alpha = _check_hyperparameter(name, "alpha", alpha, high=1.0)
    eps = _check_hyperparameter(name, "eps", eps)
    momentum = _check_hyperparameter(name, "momentum", momentum)
    weight_decay = _check_hyperparameter(name, "weight_decay", weight_decay)
    step = _state_step(state, name) + 1
    square_avg = _state_array(state, "square_avg", param, name)
    scalar = param.dtype.type

    if weight_decay != 0:
        g = _fused_multiply_add(param, scalar(weight_decay), g)
    # square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    square_avg[...] = _fused_multiply_add(scalar(1 - alpha) * g, g, square_avg * scalar(alpha))
    avg = _sqrt(square_avg) + scalar(eps)
    if momentum > 0:
        buf = _state_array(state, "momentum_buffer", param, name)
        # buf.mul_(momentum).addcdiv_(g, avg), then param.add_(buf, alpha=-lr)
        buf[...] = buf * scalar(momentum) + g / avg
        param[...] = _fused_multiply_add(buf, scalar(-lr), param)
    else:
        # param.addcdiv_(g, avg, value=-lr)
        param[...] = param + (scalar(-lr) * g) / avg
    state["step"] = step
