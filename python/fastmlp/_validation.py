"""Input checks shared by Network and Trainer: one place that turns whatever a user passes
into C-contiguous arrays of the network's dtype, or raises a ValueError/TypeError that names
the argument, what was expected and what was given. Nothing here touches a network's state."""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core

# The dtypes whose C-contiguous arrays all_finite scans natively.
_NATIVE_SCAN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus", "identity")
OUTPUTS = ("softmax", "sigmoid", "identity", "poisson")
INITS = ("auto", "he_normal", "he_uniform", "glorot_uniform", "glorot_normal")
DTYPES = ("float32", "float64")


def _shape(a: NDArray[Any]) -> tuple[int, ...]:
    return tuple(int(s) for s in np.shape(a))


def _is_sparse(value: object) -> bool:
    # Recognised without importing scipy (which fastmlp does not need): scipy.sparse matrices and
    # arrays, and anything else that converts itself to CSR, are sparse.
    return type(value).__module__.startswith("scipy.sparse") or hasattr(value, "tocsr")


def _missing_value_name(v: object) -> str | None:
    """How to name `v` if it is a missing-value marker (None, pandas.NA, pandas.NaT), else None."""
    if v is None:
        return "None"
    kind = type(v)
    if kind.__module__.startswith("pandas") and kind.__name__ in ("NAType", "NaTType"):
        return "pandas.NA" if kind.__name__ == "NAType" else "pandas.NaT"
    return None


def _object_array_as_float(arr: NDArray[Any], name: str) -> NDArray[Any]:
    # astype(float) would parse numeric strings; strings are refused whatever they spell.
    for v in arr.flat:
        if not isinstance(v, numbers.Real):
            missing = _missing_value_name(v)
            if missing is not None:
                raise TypeError(f"{name} holds missing values (NA: {missing}); fill or drop them first, "
                                "e.g. with DataFrame.fillna(...) or DataFrame.dropna()")
            raise TypeError(f"{name} must hold numbers; it has dtype object with non-numeric entries")
    try:
        return arr.astype(np.float64)
    except OverflowError:  # a Python int beyond float64, such as 10**400
        raise ValueError(f"{name} holds an integer too large for float64 (at most about 1.8e308)") from None


def as_numeric_array(value: object, name: str) -> NDArray[Any]:
    """`value` as an ndarray of a real numeric kind; TypeError for strings, objects, complex,
    sparse matrices and masked arrays with masked entries."""
    if type(value) is np.ndarray:  # the common case: neither sparse nor masked, nothing to look up
        pass
    elif _is_sparse(value):
        raise TypeError(f"{name} is a sparse matrix ({type(value).__name__}): sparse input is not supported "
                        f"yet; convert with {name}.toarray()")
    elif isinstance(value, np.ma.MaskedArray):
        masked = int(np.count_nonzero(np.ma.getmaskarray(value)))
        if masked:
            raise TypeError(f"{name} is a masked array with {masked} masked entries, and fastmlp would read "
                            f"what lies under the mask: fill them with {name}.filled(value) or drop those rows")
        value = value.data
    try:
        arr = np.asarray(value)
    except OverflowError:
        raise ValueError(f"{name} holds a number too large for any numeric array") from None
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} could not be read as a numeric array: {exc}") from None
    if arr.dtype.kind == "O":
        arr = _object_array_as_float(arr, name)
    if arr.dtype.kind in "USV":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def check_dtype(dtype: object) -> np.dtype[np.floating[Any]]:
    """The numpy dtype for a network dtype argument (float32 or float64)."""
    try:
        # Any object may come in (a user's argument, a model file's entry): np.dtype refuses what
        # it cannot read with a TypeError, turned into the ValueError below.
        dt: np.dtype[Any] = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}") from None
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dt.name!r}")
    if not dt.isnative:
        # The kernels read native floats only; a swapped dtype would fail in every later call.
        raise ValueError(f"dtype must be one of {DTYPES} in the machine's byte order, got {dtype!r} "
                         f"(byte-swapped {dt.name}); pass {dt.name!r}")
    # Any spelling (np.float32, "f4", "<f4" on a little-endian machine) becomes NumPy's own dtype
    # object, which the native calls recognise by identity.
    canonical: np.dtype[np.floating[Any]] = np.dtype(dt.name)
    return canonical


def check_activation(activation: object) -> str:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def check_activations(activation: object, n_hidden: int) -> list[str]:
    """One activation name per hidden layer, from one name or a list of n_hidden names."""
    if isinstance(activation, str):
        return [check_activation(activation)] * n_hidden
    if not isinstance(activation, (list, tuple)):
        raise ValueError(f"activation must be one of {ACTIVATIONS} (or a list of them, one per hidden layer), "
                         f"got {activation!r}")
    if len(activation) != n_hidden:
        raise ValueError(f"activation lists {len(activation)} names but the network has {n_hidden} hidden "
                         f"layer(s); give one name per hidden layer, or a single name for all")
    return [check_activation(a) for a in activation]


def check_output(output: object, n_outputs: int) -> str:
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if output == "softmax" and n_outputs < 2:
        raise ValueError(f"a softmax output needs at least 2 classes, got {n_outputs} output unit(s); for a "
                         f"binary target use output='sigmoid' with 1 unit (or a softmax over 2)")
    return output


def check_init(init: object) -> str:
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def check_dropout(dropout: object, n_hidden: int) -> list[float]:
    """One dropout probability in [0, 1) per hidden layer, from one number or a list."""
    values = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * n_hidden
    if isinstance(dropout, (list, tuple)) and len(values) != n_hidden:
        raise ValueError(f"dropout lists {len(values)} probabilities but the network has {n_hidden} hidden "
                         f"layer(s); give one per hidden layer, or a single number for all")
    out = []
    for i, p in enumerate(values):
        name = "dropout" if not isinstance(dropout, (list, tuple)) else f"dropout[{i}]"
        if is_bool(p) or not isinstance(p, numbers.Real):
            raise TypeError(f"{name} must be a probability (a real number), got {p!r}")
        if not (0.0 <= float(p) < 1.0):
            raise ValueError(f"{name} must lie in [0, 1): the probability of dropping a unit, got {p!r}")
        out.append(float(p))
    return out


def is_bool(value: object) -> bool:
    """True for Python's and NumPy's booleans, which are Integral/Real but never a valid number here."""
    return isinstance(value, (bool, np.bool_))


def check_bool(value: object, name: str) -> bool:
    """A Python bool from True/False (NumPy's bool too); anything else is a TypeError naming `name`."""
    if not is_bool(value):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_real(value: object, name: str, lo: float = -math.inf, hi: float = math.inf, *,
               lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite float in [lo, hi] (open ends where asked); TypeError/ValueError naming `name`."""
    if is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    inside = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not inside:
        lo_s = ("(" if lo_open or lo == -math.inf else "[") + ("-inf" if lo == -math.inf else f"{lo:g}")
        hi_s = ("inf" if hi == math.inf else f"{hi:g}") + (")" if hi_open or hi == math.inf else "]")
        raise ValueError(f"{name} must be finite and in {lo_s}, {hi_s}, got {value!r}")
    return v


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """One of the strings in `choices`; a ValueError listing them otherwise."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_int(value: object, name: str, minimum: int) -> int:
    """A Python int >= minimum from an int-like value (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_seed(seed: object) -> int | None:
    """None or an int >= 0 (numpy integers too; bools refused)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def check_positive_float(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def check_nonnegative_float(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def check_sample_weight(sample_weight: object, n_samples: int, dtype: np.dtype[np.floating[Any]]) -> NDArray[Any]:
    """Row weights (n_samples,) as a C-contiguous array of `dtype`: finite, >= 0, not all 0."""
    arr = as_numeric_array(sample_weight, "sample_weight")
    if arr.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), one weight per sample, "
                         f"got shape {_shape(arr)}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(out):
        raise ValueError("sample_weight contains NaN or infinity")
    if (out < 0).any():
        raise ValueError("sample_weight must be >= 0; it has negative entries")
    if not out.any():
        raise ValueError("sample_weight is 0 for every sample, so there is nothing to train on")
    return out


def check_layer_sizes(layer_sizes: Iterable[object]) -> list[int]:
    if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
        raise TypeError(f"layer_sizes must be a list of integers such as [64, 128, 10], got {layer_sizes!r}")
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least an input and an output size, e.g. [64, 10]; got {sizes!r}")
    out = []
    for i, s in enumerate(sizes):
        if is_bool(s) or not isinstance(s, numbers.Integral):
            raise TypeError(f"layer_sizes[{i}] must be an integer, got {s!r}")
        if s < 1:
            raise ValueError(f"layer_sizes[{i}] must be >= 1, got {s} (layer_sizes={sizes!r})")
        out.append(int(s))
    return out


def all_finite(arr: NDArray[Any]) -> bool:
    """Whether every value of a float array is finite, without an array-sized temporary.

    A C-contiguous float32 or float64 array (every X a network takes, once checked) is scanned
    natively, shared between the threads (``_core.all_finite``): 0.46 ms for an 8192 x 784
    float32 X on two cores where the NumPy sum below took 1.12 ms.
    Otherwise a sum is finite when all terms are (the cheap pass, as scikit-learn does it); only
    when it is not (a NaN, an inf, or finite values overflowing the sum) are blocks of about
    1 MiB checked one by one, so validating a large X never doubles the memory it takes."""
    if arr.dtype in _NATIVE_SCAN_DTYPES and arr.flags.c_contiguous:
        return _core.all_finite(arr)
    with np.errstate(over="ignore", invalid="ignore"):
        # Summed in the array's own float type: for float32 that is half the memory traffic of a
        # float64 sum (it runs once per fit on all of X). A finite sum proves every term finite;
        # a sum that overflowed falls through to the exact check below.
        if np.isfinite(arr.sum(dtype=arr.dtype.type if arr.dtype.kind == "f" else np.float64)):
            return True
    flat = arr.reshape(-1)
    step = max(1, (1 << 20) // max(1, arr.itemsize))
    return all(np.isfinite(flat[i:i + step]).all() for i in range(0, flat.size, step))


def check_X(
    X: object, n_features: int, dtype: np.dtype[np.floating[Any]], name: str = "X"
) -> NDArray[np.floating[Any]]:
    """X as a C-contiguous (n_samples, n_features) array of `dtype`, finite, non-empty.

    A float32 C-contiguous X passed to a float32 network is returned as is (no copy)."""
    arr = as_numeric_array(X, name)
    if arr.ndim != 2:
        hint = ""
        if arr.ndim == 1 and arr.size == n_features:
            hint = f"; for a single sample use {name}.reshape(1, -1)"
        elif arr.ndim > 2:
            hint = f"; flatten it with {name}.reshape(len({name}), -1)"
        raise ValueError(
            f"Network expects {name} of shape (n_samples, {n_features}), got {name} with shape {_shape(arr)}{hint}")
    if arr.shape[1] != n_features:
        raise ValueError(f"Network expects {n_features} input features, got {name} with shape {_shape(arr)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples (shape {_shape(arr)}); at least 1 is required")
    return finite_array(arr, dtype, name)


def finite_array(values: ArrayLike, dtype: DTypeLike, name: str) -> NDArray[np.floating[Any]]:
    """`values` as a C-contiguous array of `dtype`; ValueError naming `name` for NaN, infinity or
    a value that overflows `dtype` (the values of a dense X, or the stored values of a sparse one)."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below, as an error
        out = np.ascontiguousarray(values, dtype=dtype)
    if not all_finite(out):
        if np.isnan(out).any():
            raise ValueError(f"{name} contains NaN")
        raise ValueError(f"{name} contains infinity or a value too large for {np.dtype(dtype).name}")
    return out


def check_y(
    y: object, n_samples: int, n_classes: int, dtype: np.dtype[np.floating[Any]], name: str = "y", x_name: str = "X",
    output: str = "softmax",
) -> NDArray[np.int64] | NDArray[np.floating[Any]]:
    """The targets of a network whose output layer is `output`, as the native calls take them.

    softmax: labels (n_samples,) -> int64, or target distributions (n_samples, n_classes) -> dtype.
    sigmoid: 0/1 targets (or probabilities) (n_samples, n_outputs), or (n_samples,) with one
    output -> dtype (n_samples, n_outputs). identity: real targets, the same shapes -> dtype.
    Returns a C-contiguous array."""
    if output != "softmax":
        return _check_real_targets(y, n_samples, n_classes, dtype, name, x_name, output)
    arr = as_numeric_array(y, name)
    if arr.ndim == 1:
        if arr.shape[0] != n_samples:
            raise ValueError(f"{name} has {arr.shape[0]} labels but {x_name} has {n_samples} samples")
        if arr.dtype.kind == "f":
            if not all_finite(arr):
                raise ValueError(f"{name} contains NaN or infinity; labels must be integers in [0, {n_classes})")
            frac = arr != np.floor(arr)
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                raise ValueError(f"labels must be integers in [0, {n_classes}); {name}[{i}] = {arr[i].item()!r}")
        if arr.size:
            lo, hi = arr.min(), arr.max()  # compared in the input's own type: nothing is narrowed first
            if lo < 0 or hi >= n_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"labels must be integers in [0, {n_classes}) for a network with {n_classes} outputs; "
                    f"{name} contains {bad.item()!r}")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim == 2:
        if arr.shape[0] != n_samples:
            raise ValueError(f"{name} has {arr.shape[0]} rows but {x_name} has {n_samples} samples")
        if arr.shape[1] != n_classes:
            hint = f"; for integer labels pass a 1-D array ({name}.ravel())" if arr.shape[1] == 1 else ""
            raise ValueError(
                f"target distributions need {n_classes} columns (one per output), got {name} with shape "
                f"{_shape(arr)}{hint}")
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(arr, dtype=dtype)
        if not all_finite(out):
            raise ValueError(f"{name} contains NaN or infinity")
        if (out < 0).any():
            raise ValueError(f"target distributions must be >= 0; {name} has negative entries")
        sums = out.sum(axis=1, dtype=np.float64)
        bad = np.abs(sums - 1.0) > 1e-3
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"each row of target distributions must sum to 1; row {i} of {name} sums to {sums[i]:.6g}")
        return out
    raise ValueError(
        f"{name} must be labels of shape ({n_samples},) or targets of shape ({n_samples}, {n_classes}), "
        f"got shape {_shape(arr)}")


def _check_real_targets(
    y: object, n_samples: int, n_outputs: int, dtype: np.dtype[np.floating[Any]], name: str, x_name: str, output: str
) -> NDArray[np.floating[Any]]:
    """Targets of a sigmoid (in [0, 1]), identity (any finite value) or poisson (>= 0) output,
    as (n_samples, n_outputs)."""
    arr = as_numeric_array(y, name)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        shapes = f"({n_samples}, {n_outputs})" + (f" or ({n_samples},)" if n_outputs == 1 else "")
        raise ValueError(f"a network with a {output} output and {n_outputs} output unit(s) takes {name} of shape "
                         f"{shapes}, got shape {_shape(np.asarray(y))}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows but {x_name} has {n_samples} samples")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(out):
        raise ValueError(f"{name} contains NaN or infinity (or a value too large for {np.dtype(dtype).name})")
    if output == "sigmoid" and ((out < 0).any() or (out > 1).any()):
        raise ValueError(f"targets of a sigmoid output must lie in [0, 1] (0/1 labels, or probabilities); "
                         f"{name} has values in [{out.min().item()!r}, {out.max().item()!r}]")
    if output == "poisson" and (out < 0).any():
        raise ValueError(f"targets of a poisson output must be >= 0 (counts or rates); {name} has a minimum of "
                         f"{out.min().item()!r}")
    return out


def check_parameters(
    weights: object, biases: object, layer_sizes: list[int], dtype: np.dtype[np.floating[Any]], for_update: bool
) -> None:
    """That a network's `weights` and `biases` lists (which users may edit or replace) still hold
    C-contiguous arrays of `dtype` and the shapes of `layer_sizes`, writeable when `for_update`."""
    for kind, arrays, shapes in (
        ("weights", weights, [(o, i) for i, o in zip(layer_sizes[:-1], layer_sizes[1:])]),
        ("biases", biases, [(o,) for o in layer_sizes[1:]]),
    ):
        if not isinstance(arrays, list) or len(arrays) != len(shapes):
            raise ValueError(f"net.{kind} must be a list of {len(shapes)} arrays; it was replaced by {arrays!r:.80}")
        for k, (a, shape) in enumerate(zip(arrays, shapes)):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
                got = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}"
                raise ValueError(
                    f"net.{kind}[{k}] must be a {dtype.name} array of shape {shape}, got {got}; "
                    f"assign values with net.{kind}[{k}][...] = new_values")
            if not a.flags.c_contiguous:
                raise ValueError(f"net.{kind}[{k}] must be C-contiguous; use np.ascontiguousarray")
            if for_update and not a.flags.writeable:
                raise ValueError(f"net.{kind}[{k}] is read-only, so training cannot update it; "
                                 f"make it writeable with net.{kind}[{k}] = net.{kind}[{k}].copy()")
