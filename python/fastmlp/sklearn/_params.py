"""The estimators' parameter checks: first scikit-learn's own parameter validation on
scikit-learn's constraints (widened for fastmlp's extra solvers and activations), so that a bad
value raises its InvalidParameterError with its wording, then fastmlp's validation vocabulary
for what those constraints leave open, into a plain `Settings` record. Also the sample-weight
check and the thread-count context. Nothing here touches a fitted estimator."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from .. import get_num_threads, set_num_threads
from .._validation import ACTIVATIONS, check_bool, check_choice, check_int, check_real, is_bool

try:  # scikit-learn's parameter validation (>= 1.2; a private module, so its absence is tolerated)
    from sklearn.utils._param_validation import Interval, Options, StrOptions, validate_parameter_constraints
except ImportError:  # pragma: no cover - a scikit-learn that moved it: fastmlp's own messages remain
    validate_parameter_constraints = None

SOLVERS = ("lbfgs", "sgd", "adam", "adamw", "rmsprop")
MINIBATCH_SOLVERS = ("sgd", "adam", "adamw", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
#: MLPRegressor's losses (MLPClassifier has no loss parameter).
REGRESSION_LOSSES = ("squared_error", "poisson")
#: scikit-learn's activation names that fastmlp spells differently.
ACTIVATION_ALIASES = {"logistic": "sigmoid"}


def _constraints(est: Any) -> dict[str, Any]:
    """scikit-learn's `_parameter_constraints` of its MLPs, with fastmlp's solvers and
    activations added and its extra parameters (dtype is checked by fastmlp alone)."""
    at_least_one = Interval(numbers.Integral, 1, None, closed="left")
    unit = Interval(numbers.Real, 0, 1, closed="left")
    non_negative = Interval(numbers.Real, 0, None, closed="left")
    constraints: dict[str, Any] = {
        "hidden_layer_sizes": ["array-like", at_least_one],
        "activation": [StrOptions(set(ACTIVATIONS) | set(ACTIVATION_ALIASES))],
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [non_negative],
        "batch_size": [StrOptions({"auto"}), at_least_one],
        "learning_rate": [StrOptions(set(LEARNING_RATES))],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [non_negative],
        "max_iter": [at_least_one],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [non_negative],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [unit],
        "beta_1": [unit],
        "beta_2": [unit],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [at_least_one, Options(numbers.Real, {np.inf})],
        "max_fun": [at_least_one],
        "dtype": "no_validation",
        "n_threads": [None, at_least_one],
    }
    if "loss" in est.get_params(deep=False):
        constraints["loss"] = [StrOptions(set(REGRESSION_LOSSES))]
    return constraints


@dataclass(frozen=True)
class Settings:
    """The parameters of one fit call, checked and normalised (`dtype` None: follow X)."""

    hidden_layer_sizes: list[int]
    activation: str  # fastmlp's name
    dtype: Optional[np.dtype[Any]]
    n_iter_no_change: float  # an int, or math.inf


def hidden_layer_sizes(value: object) -> list[int]:
    sizes = value
    if isinstance(sizes, numbers.Integral) and not is_bool(sizes):
        sizes = [sizes]
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints such as (100,), got {sizes!r}")
    return [check_int(s, f"hidden_layer_sizes[{i}]", 1) for i, s in enumerate(sizes)]


def network_activation(value: object) -> str:
    name = ACTIVATION_ALIASES.get(value, value) if isinstance(value, str) else None
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(set(ACTIVATIONS) | set(ACTIVATION_ALIASES))}, "
                         f"got {value!r}")
    assert isinstance(name, str)
    return name


def network_dtype(value: object) -> Optional[np.dtype[Any]]:
    """None (follow X, scikit-learn's rule) or the dtype asked for, float32 or float64."""
    if value is None:
        return None
    try:
        dtype: Optional[np.dtype[Any]] = np.dtype(value)  # type: ignore[call-overload]
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in ("float32", "float64"):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {value!r}")
    return dtype


def dtype_for(X_dtype: np.dtype[Any], asked: Optional[np.dtype[Any]]) -> np.dtype[Any]:
    """The network dtype for a new fit: the one asked for, else float32 for float32 X and
    float64 for anything else (scikit-learn's rule)."""
    if asked is not None:
        return asked
    return np.dtype(np.float32) if X_dtype == np.float32 else np.dtype(np.float64)


def n_iter_no_change(value: object) -> float:
    if isinstance(value, numbers.Real) and not is_bool(value) and value == math.inf:
        return math.inf
    return float(check_int(value, "n_iter_no_change", 1))


def check_params(est: Any) -> Settings:
    """Every parameter of `est` checked before anything changes: errors name the parameter,
    the values it takes and the value given. Where scikit-learn has a constraint, its
    InvalidParameterError (a ValueError and a TypeError) comes first, in its words."""
    if validate_parameter_constraints is not None:
        validate_parameter_constraints(_constraints(est), est.get_params(deep=False), caller_name=type(est).__name__)
    sizes = hidden_layer_sizes(est.hidden_layer_sizes)
    activation = network_activation(est.activation)
    dtype = network_dtype(est.dtype)
    check_choice(est.solver, "solver", SOLVERS)
    if "loss" in est.get_params(deep=False):
        check_choice(est.loss, "loss", REGRESSION_LOSSES)
    check_real(est.alpha, "alpha", 0.0)
    if not (isinstance(est.batch_size, str) and est.batch_size == "auto"):
        if isinstance(est.batch_size, str):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {est.batch_size!r}")
        check_int(est.batch_size, "batch_size", 1)
    check_choice(est.learning_rate, "learning_rate", LEARNING_RATES)
    check_real(est.learning_rate_init, "learning_rate_init", 0.0, lo_open=True)
    check_real(est.power_t, "power_t", 0.0)
    check_int(est.max_iter, "max_iter", 1)
    check_int(est.max_fun, "max_fun", 1)
    check_bool(est.shuffle, "shuffle")
    check_real(est.tol, "tol", 0.0)
    if not is_bool(est.verbose):
        check_int(est.verbose, "verbose", 0)
    check_bool(est.warm_start, "warm_start")
    check_real(est.momentum, "momentum", 0.0, 1.0)
    check_bool(est.nesterovs_momentum, "nesterovs_momentum")
    check_bool(est.early_stopping, "early_stopping")
    check_real(est.validation_fraction, "validation_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
    check_real(est.beta_1, "beta_1", 0.0, 1.0, hi_open=True)
    check_real(est.beta_2, "beta_2", 0.0, 1.0, hi_open=True)
    check_real(est.epsilon, "epsilon", 0.0, lo_open=True)
    patience = n_iter_no_change(est.n_iter_no_change)
    if est.n_threads is not None:
        check_int(est.n_threads, "n_threads", 1)
    return Settings(sizes, activation, dtype, patience)


def check_sample_weight(sample_weight: object, n_samples: int) -> Optional[NDArray[Any]]:
    """None, or the weights as a float64 (n_samples,) array, finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):  # scikit-learn accepts a scalar: one weight for all
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), one weight per sample of X, "
                         f"got shape {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (weights < 0).any():
        raise ValueError(f"sample_weight must be >= 0, got a minimum of {weights.min()!r}")
    if not weights.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    return weights


@contextlib.contextmanager
def native_threads(n_threads: Optional[int]) -> Iterator[None]:
    """fastmlp's thread count set to `n_threads` for the duration of the block, then restored,
    so that an estimator never leaves a process-wide setting behind (None: leave it alone)."""
    if n_threads is None:
        yield
        return
    before = get_num_threads()
    set_num_threads(n_threads)
    try:
        yield
    finally:
        set_num_threads(before)
