"""_BaseMLP: what MLPClassifier and MLPRegressor share — the parameters, the fitted attributes,
and one fit that checks everything first, then hands the training to the minibatch loop
(`_minibatch.py`) or to L-BFGS (`_lbfgs.py`). The target encodings live in the subclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .._sparse import CsrRows, Rows, check_sparse, copy_rows, is_sparse
from ..network import Network
from ..optim import Optimizer
from . import _lbfgs, _minibatch
from ._params import Settings, check_params, check_sample_weight, dtype_for, native_threads


@dataclass
class FitData:
    """One fit call's data, checked and split, before any fitted state changes. X and X_val are
    dense arrays of the network's dtype or, for sparse input, CsrRows (never densified)."""

    X: Rows
    y_net: Any  # the targets as the network's output takes them
    weights: Optional[NDArray[Any]]
    X_val: Optional[Rows] = None
    y_val: Optional[NDArray[Any]] = None  # the original labels / values of the validation rows
    weights_val: Optional[NDArray[Any]] = None


def _as_rows(X: Any, dtype: np.dtype[Any]) -> Rows:
    """validate_data's X in the network's dtype: a dense array, or a CSR matrix checked into
    CsrRows (structure checked, values converted once, never densified)."""
    if is_sparse(X):
        return check_sparse(X, X.shape[1], dtype)
    rows: NDArray[Any] = X.astype(dtype, copy=False)
    return rows


class _BaseMLP(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type information
    """What MLPClassifier and MLPRegressor share: parameters, the training around fastmlp's
    Trainer or L-BFGS, scikit-learn's stopping rules and the fitted attributes."""

    # Set by the subclasses.
    _output_layer: str  # the network output for the targets: "softmax", "sigmoid", "identity" or "poisson"
    _stratify_split: bool

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 1e-3,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        dtype: Optional[str] = None,
        n_threads: Optional[int] = None,
    ) -> None:
        # scikit-learn's contract: store the parameters unchanged; fit validates them.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads

    # ------------------------------------------------------------------ fitted attributes

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    def _fitted_network(self, attribute: str) -> Network:
        try:
            return self.network_
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no {attribute} before fit: call fit first") from None

    @property
    def coefs_(self) -> list[NDArray[Any]]:
        # Transposed views, made on each access from the live weights: they can never go stale
        # (not after training, restoring the best weights, or unpickling), at no copying cost.
        return [W.T for W in self._fitted_network("coefs_").weights]

    @coefs_.setter
    def coefs_(self, values: Any) -> None:
        net = self._fitted_network("coefs_")
        self._assign_parameters("coefs_", [W.T for W in net.weights], values)

    @property
    def intercepts_(self) -> list[NDArray[Any]]:
        return list(self._fitted_network("intercepts_").biases)

    @intercepts_.setter
    def intercepts_(self, values: Any) -> None:
        net = self._fitted_network("intercepts_")
        self._assign_parameters("intercepts_", list(net.biases), values)

    def _assign_parameters(self, name: str, targets: list[NDArray[Any]], values: Any) -> None:
        """scikit-learn lets coefs_/intercepts_ be replaced: copy the new values into the live
        arrays (views of the network), all checked before any is written."""
        if isinstance(values, np.ndarray) or not isinstance(values, (list, tuple)) or len(values) != len(targets):
            raise ValueError(f"{name} must be a list of {len(targets)} arrays of shapes "
                             f"{[t.shape for t in targets]}, got {type(values).__name__}")
        arrays = []
        for i, (target, value) in enumerate(zip(targets, values)):
            array = np.asarray(value)
            if array.shape != target.shape or array.dtype.kind not in "biuf":
                raise ValueError(f"{name}[{i}] must be a real array of shape {target.shape} (the fitted network's), "
                                 f"got {array.dtype} of shape {array.shape}; a different architecture needs a "
                                 "new fit")
            if not np.isfinite(array).all():
                raise ValueError(f"{name}[{i}] contains NaN or infinity")
            arrays.append(array)
        with self.network_._locked():
            for target, array in zip(targets, arrays):
                np.copyto(target, array, casting="unsafe")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy.sparse X trains natively, without densifying (docs/sparse.md)
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ scales of the losses

    def _grad_scale(self) -> float:
        """c: fastmlp's gradient over scikit-learn's for this output layer (see the Notes)."""
        if self._output_layer == "softmax":
            return 1.0
        if self._output_layer in ("sigmoid", "poisson"):
            return 1.0 / self.n_outputs_
        return 2.0 / self.n_outputs_

    def _loss_scale(self) -> float:
        """scikit-learn's reported loss over fastmlp's (it averages the squared error over the
        outputs although its gradient sums over them, hence not simply 1 / c)."""
        if self._output_layer == "softmax":
            return 1.0
        if self._output_layer in ("sigmoid", "poisson"):
            return float(self.n_outputs_)
        return 0.5

    # ------------------------------------------------------------------ initialisation

    def _initial_params(self, sizes: list[int], random_state: np.random.RandomState) -> list[NDArray[Any]]:
        """scikit-learn's initialisation, drawn from random_state in its order (each layer's
        coefs_ then intercepts_, uniform in +-sqrt(factor / (fan_in + fan_out)), factor 2 for
        logistic, else 6): the same random_state gives scikit-learn's starting weights, and
        leaves the generator where scikit-learn's is for the early-stopping split."""
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(random_state.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(random_state.uniform(-bound, bound, fan_out))
        return coefs + intercepts

    def _initialize(self, n_features: int, n_outputs: int, settings: Settings, dtype: np.dtype[Any],
                    initial: list[NDArray[Any]]) -> None:
        """New weights and the bookkeeping scikit-learn resets with them (its `_initialize`)."""
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(settings.hidden_layer_sizes) + 2
        self.out_activation_ = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity",
                                "poisson": "exp"}[self._output_layer]
        sizes = [n_features, *settings.hidden_layer_sizes, n_outputs]
        self.network_ = Network(sizes, activation=settings.activation, dtype=dtype, seed=0,
                                output=self._output_layer)
        n_layers = len(sizes) - 1
        for W, b, coef, intercept in zip(self.network_.weights, self.network_.biases, initial[:n_layers],
                                         initial[n_layers:]):
            np.copyto(W, coef.T, casting="same_kind")
            np.copyto(b, intercept, casting="same_kind")
        self.n_iter_ = 0
        self.t_ = 0
        self._optimizer: Optional[Optimizer] = None
        for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
            self.__dict__.pop(name, None)
        if self.solver != "lbfgs":  # as in scikit-learn, lbfgs keeps no curve and no stopping counters
            self._reset_stopping()

    def _reset_stopping(self) -> None:
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self._best_params = self._copy_params()
        if self.early_stopping:
            self.validation_scores_: Optional[list[float]] = []
            self.best_validation_score_: Optional[float] = -np.inf
            self.best_loss_: Optional[float] = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _copy_params(self) -> list[NDArray[Any]]:
        with self.network_._locked():  # one consistent state, even against another thread's predict
            return [a.copy() for a in self.network_.weights + self.network_.biases]

    def _restore_params(self, saved: list[NDArray[Any]]) -> None:
        # In place: coefs_/intercepts_ views and the optimizer's ownership stay valid.
        with self.network_._locked():
            for a, s in zip(self.network_.weights + self.network_.biases, saved):
                np.copyto(a, s)

    def _check_architecture(self, n_outputs: int, settings: Settings) -> None:
        """warm_start and partial_fit continue the fitted network: refuse parameters that
        describe a different one instead of silently training the old one."""
        net = self.network_
        wanted = [net.n_features, *settings.hidden_layer_sizes, n_outputs]
        dtype = settings.dtype if settings.dtype is not None else net.dtype
        if list(net.layer_sizes) != wanted or net.dtype != dtype or set(net.activations) - {settings.activation}:
            raise ValueError(
                f"the fitted network has layer sizes {list(net.layer_sizes)}, activation {net.activation!r} and "
                f"dtype {net.dtype.name}, but the parameters now ask for {wanted}, {self.activation!r}, "
                f"{dtype.name}; set warm_start=False (fit) or start over with a new estimator "
                "(partial_fit) to train a different network")

    # ------------------------------------------------------------------ fit

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any = None) -> None:
        # Everything is checked first; a failure before training puts back every attribute the
        # checks set (validate_data's n_features_in_, the classes), so a fitted estimator stays
        # fitted and unchanged. The weights themselves are replaced only once all checks passed.
        saved = dict(self.__dict__)
        try:
            settings, data, random_state, new_network = self._prepare(X, y, sample_weight, incremental, classes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        if new_network is not None:
            self._initialize(*new_network)
        elif self.solver != "lbfgs" and not hasattr(self, "loss_curve_"):
            self._reset_stopping()  # a warm start after an lbfgs fit: stopping counters start here
        elif self.solver != "lbfgs" and self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        elif self.solver != "lbfgs" and not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf  # early stopping switched off: the training loss's counter starts here
        with native_threads(self.n_threads):
            if self.solver == "lbfgs":
                _lbfgs.fit(self, data)
            else:
                _minibatch.fit(self, settings, data, incremental, random_state)

    def _prepare(self, X: Any, y: Any, sample_weight: Any, incremental: bool,
                 classes: Any) -> tuple[Settings, FitData, np.random.RandomState, Optional[tuple[Any, ...]]]:
        """The checks and the split of a fit, and what a new network needs (None to continue
        the fitted one). Sets only the attributes _fit puts back on failure."""
        settings = check_params(self)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True (no held-out split per call); "
                             "set early_stopping=False")
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        accepted = [np.float64, np.float32] if first_pass else self.network_.dtype
        # Sparse X in any scipy.sparse format is converted once to CSR here (scikit-learn's MLP
        # takes CSR and CSC; CSR is the one fastmlp's first layer reads), then read in place.
        X, y_raw = validate_data(self, X, y, accept_sparse="csr", multi_output=True,
                                 y_numeric=not self._stratify_split, dtype=accepted, reset=first_pass)
        dtype = dtype_for(X.dtype, settings.dtype) if first_pass else self.network_.dtype
        X = _as_rows(X, dtype)
        if is_sparse(y_raw):  # a sparse label indicator matrix: the network's targets are dense anyway
            y_raw = y_raw.toarray()
        if y_raw.ndim == 2 and y_raw.shape[1] == 1:
            y_raw = column_or_1d(y_raw, warn=True)  # DataConversionWarning, as scikit-learn's estimators do
        weights = check_sample_weight(sample_weight, len(X))
        y_net, n_outputs = self._encode_targets(y_raw, first_pass, incremental, classes, dtype)
        random_state = check_random_state(self.random_state)
        new_network = None
        if first_pass:
            sizes = [X.shape[1], *settings.hidden_layer_sizes, n_outputs]
            new_network = (X.shape[1], n_outputs, settings, dtype, self._initial_params(sizes, random_state))
        else:
            self._check_architecture(n_outputs, settings)
        data = FitData(X, y_net, weights)
        if self.early_stopping and self.solver != "lbfgs":
            self._split(data, y_raw, random_state)
        return settings, data, random_state, new_network

    def _split(self, data: FitData, y_raw: NDArray[Any], random_state: np.random.RandomState) -> None:
        """Hold out validation_fraction of the rows (stratified for single-label classifiers),
        with scikit-learn's errors for a split that cannot be made. The split is drawn on the
        row numbers: the rows train_test_split would pick for the arrays themselves."""
        stratify = y_raw if self._stratify_split and y_raw.ndim == 1 else None
        train, val = train_test_split(np.arange(len(data.X)), random_state=random_state,
                                      test_size=self.validation_fraction, stratify=stratify)
        if isinstance(data.X, CsrRows):
            # Validation rows are read in place through a row list; the training rows' nonzeros
            # are copied, as a native training epoch takes no row list. Never a dense array.
            data.X, data.X_val = copy_rows(data.X, train), data.X.take(val)
        else:
            data.X, data.X_val = data.X[train], data.X[val]
        data.y_net, data.y_val = data.y_net[train], y_raw[val]
        if data.weights is not None:
            data.weights, data.weights_val = data.weights[train], data.weights[val]
            if not data.weights.sum() > 0:
                raise ValueError("after the early-stopping split, the training rows' sample_weight sums to 0")
        assert data.X_val is not None
        if len(data.X_val) < 2:
            n = len(data.X) + len(data.X_val)
            raise ValueError(f"The validation set is too small. Increase 'validation_fraction' or the size of your "
                             f"dataset. (validation_fraction={self.validation_fraction} of {n} samples holds "
                             f"{len(data.X_val)}; at least 2 are needed.)")

    # ------------------------------------------------------------------ predictions

    def _validation_score(self, X_val: Rows, y_val: NDArray[Any], weights_val: Optional[NDArray[Any]]) -> float:
        """accuracy (classifier) or R² (regressor) of the current weights; NaN for non-finite outputs."""
        outputs = self.network_._forward(X_val)
        if not np.isfinite(outputs).all():
            return float("nan")
        return float(self._score_function(y_val, self._decode_outputs(outputs), sample_weight=weights_val))

    def _outputs(self, X: Any) -> NDArray[Any]:
        """The output layer for X (probabilities, or the regression values) in the network's
        dtype (scikit-learn's: float32 for a float32 fit, else float64), X checked as in fit
        (sparse X read in place by the network's sparse first layer)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=self.network_.dtype, reset=False)
        with native_threads(self.n_threads):
            outputs: NDArray[Any] = self.network_._forward(X)
        return outputs

    # Subclass hooks.
    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any,
                        dtype: np.dtype[Any]) -> tuple[Any, int]:
        raise NotImplementedError

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        raise NotImplementedError

    _score_function: Any

    def _check_solver(self) -> bool:
        """partial_fit exists for the minibatch solvers only, as in scikit-learn."""
        if self.solver not in ("sgd", "adam", "adamw", "rmsprop"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True
