"""scikit-learn estimators trained by fastmlp: MLPClassifier and MLPRegressor, with the
parameter names and fitted attributes of ``sklearn.neural_network``'s where they mean the same
thing, and its stopping rules, so that they drop into pipelines and searches. This module
imports scikit-learn (``import fastmlp`` does not import this module). Deliberately absent:
the lbfgs solver, sparse input, and sklearn's ``learning_rate`` schedules (the rate is constant).
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # scikit-learn missing, or older than 1.6 (no validate_data, no __sklearn_tags__)
    raise ImportError(
        "fastmlp.sklearn needs scikit-learn >= 1.6 (" + str(exc) + "); "
        'pip install "fastmlp[sklearn]" installs it') from exc

from . import get_num_threads, set_num_threads
from ._validation import ACTIVATIONS
from .network import Network
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop
from .trainer import Trainer

__all__ = ["MLPClassifier", "MLPRegressor"]

SOLVERS = ("sgd", "adam", "adamw", "rmsprop")
#: scikit-learn's activation names that fastmlp spells differently.
ACTIVATION_ALIASES = {"logistic": "sigmoid"}
#: RMSprop's smoothing constant: PyTorch's default (scikit-learn has no RMSprop, and beta_2 is Adam's).
RMSPROP_SMOOTHING = 0.99
#: Seeds drawn from random_state for the network and the shuffling stay below this bound.
_SEED_BOUND = np.iinfo(np.int32).max

_SHARED_PARAMETERS_DOC = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        The units of each hidden layer; ``()`` fits a network without hidden layers.
    activation : str, default="relu"
        Activation of the hidden layers: scikit-learn's ``"identity"``, ``"logistic"`` (an
        alias of ``"sigmoid"``), ``"tanh"``, ``"relu"``, or any other of fastmlp's
        (``"leaky_relu"``, ``"elu"``, ``"gelu"``, ``"silu"``, ``"softplus"``).
    solver : {"sgd", "adam", "adamw", "rmsprop"}, default="adam"
        The optimizer: SGD with ``momentum`` (Nesterov's form with ``nesterovs_momentum``),
        Adam or AdamW with ``beta_1``, ``beta_2``, ``epsilon``, or RMSprop with ``epsilon``
        (smoothing constant 0.99, PyTorch's). See Notes for how each maps to fastmlp.optim.
    alpha : float, default=1e-4
        Strength of the L2 penalty ``0.5 * alpha * sum(||W||²)`` on the weights (not the
        biases), as in scikit-learn; with ``solver="adamw"`` the decoupled weight decay. See
        Notes for the exact mapping.
    batch_size : int or "auto", default="auto"
        Rows per optimizer step; ``"auto"`` is ``min(200, n_samples)``. Larger values are
        clipped to the number of samples.
    learning_rate_init : float, default=1e-3
        The (constant) learning rate.
    max_iter : int, default=200
        Most epochs per :meth:`fit` call.
    shuffle : bool, default=True
        Visit the rows in a new random order every epoch.
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the early-stopping split and the shuffling order. An int
        gives the same fitted weights on every fit, whatever the thread count.
    tol : float, default=1e-4
        Training stops when the training loss (or, with ``early_stopping``, the validation
        score) has not improved by at least ``tol`` for ``n_iter_no_change`` consecutive epochs.
    verbose : bool, default=False
        Print the loss of every epoch (and the validation score) to stdout, as scikit-learn does.
    warm_start : bool, default=False
        Start :meth:`fit` from the weights of the previous fit instead of new ones (the
        optimizer starts afresh, as in scikit-learn; :meth:`partial_fit` continues it).
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``, >= 0.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for ``solver="sgd"`` (when ``momentum > 0``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data ({split}), stop when its score
        ({score}) stops improving, and end with the weights of the best-scoring epoch.
    validation_fraction : float, default=0.1
        The held-out fraction with ``early_stopping``, in (0, 1).
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's (and AdamW's) moment decay rates, in [0, 1).
    epsilon : float, default=1e-8
        Numerical-stability term of Adam, AdamW and RMSprop, > 0.
    n_iter_no_change : int, default=10
        The patience of the ``tol`` rule, in epochs, >= 1.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the parameters and all arithmetic; X is converted to it. float32 is about
        twice as fast; scikit-learn's own estimator computes in X's dtype.
    n_threads : int or None, default=None
        Native threads for :meth:`fit`, :meth:`partial_fit` and the predictions. None leaves
        fastmlp's setting alone; an int is passed to :func:`fastmlp.set_num_threads` for the
        duration of each such call and the previous count restored after it (the setting is
        process-wide, so other threads using fastmlp meanwhile get it too). Results are
        bitwise the same for every thread count.
"""

_SHARED_ATTRIBUTES_DOC = """
    loss_ : float
        The loss of the last epoch, on scikit-learn's scale (see Notes), L2 penalty included.
    best_loss_ : float or None
        The lowest ``loss_`` so far; None with ``early_stopping``, as in scikit-learn.
    loss_curve_ : list of float
        ``loss_`` of every epoch since the weights were initialised.
    validation_scores_ : list of float or None
        The validation score of every epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, or None without ``early_stopping``.
    t_ : int
        Training samples seen since the weights were initialised.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (n_units_i, n_units_i+1): scikit-learn's layout, the transpose
        of ``network_.weights[i]``. Each access returns new transposed *views* of the live
        weights, in the network's dtype: they always show the current weights, and writing
        into them (``coefs_[0][...] = ...``) changes the network. Copy them to keep a snapshot.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape (n_units_i+1,): the live bias arrays, likewise.
    network_ : fastmlp.Network
        The trained network itself.
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of str
        The column names of X, when fit on a DataFrame with string column names.
    n_iter_ : int
        Epochs run by the last fit or partial_fit call (1 for partial_fit), as in scikit-learn.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units.
    out_activation_ : str
        {out_activations}
"""

_SHARED_NOTES_DOC = """
    How the parameters map onto fastmlp. fastmlp's losses are means over the batch *and* the
    outputs (its squared error is not halved), while scikit-learn's gradient is that of
    ``0.5 * sum over outputs`` of the squared error, ``sum over outputs`` of the binary
    cross-entropy and the cross-entropy of the softmax, each averaged over the batch. So
    fastmlp's gradient is ``c`` times scikit-learn's, with ``c = 1`` for a softmax output,
    ``1 / n_outputs_`` for logistic outputs and ``2 / n_outputs_`` for identity outputs. The
    estimator undoes ``c`` so that every update is scikit-learn's:

    - ``sgd``: ``fastmlp.optim.SGD(lr=learning_rate_init / c, momentum, nesterov)``. sklearn's
      velocity form ``v = momentum v - lr g`` is PyTorch's ``buf = momentum buf + g`` scaled by
      ``-lr``, so the steps are the same.
    - ``adam``: ``Adam(learning_rate_init, (beta_1, beta_2), eps=epsilon * c)``. Adam's step
      does not change when the gradient is scaled, once epsilon is scaled with it; it differs
      from scikit-learn's only in where the bias correction meets epsilon (PyTorch's form).
    - ``rmsprop``: ``RMSprop(learning_rate_init, alpha=0.99, eps=epsilon * c)``.
    - ``adamw``: as ``adam``, with ``alpha`` as AdamW's *decoupled* weight decay: every step
      multiplies the weights by ``1 - learning_rate_init * alpha`` (PyTorch's default is 1e-2).
      scikit-learn has no AdamW; the point of decoupled decay is not to depend on the
      gradient's scale or the batch, so nothing is divided.

    L2 penalty (all solvers but adamw). scikit-learn adds ``alpha * W / S_b`` to the gradient
    of the weights, where ``S_b`` is the batch's sum of sample weights (its size without
    weights). fastmlp's ``weight_decay`` adds ``weight_decay * W`` to the gradient of the
    batch-mean loss, with one value for all batches, so the estimator passes
    ``weight_decay = c * alpha / (batch_size * mean(sample_weight))``: the mean of ``S_b``
    over full batches, hence exactly scikit-learn's for every batch without sample weights
    but the last partial one, and for every batch when one batch holds all the data (which
    makes zero weights equivalent to dropping rows, and integer weights to repeating them).

    ``loss_curve_`` is on scikit-learn's scale: fastmlp's per-epoch loss (each batch's loss
    before its update, averaged over the epoch) divided by ``c`` as above, plus the L2 term
    ``0.5 * alpha * sum(||W||²) / (batch_size * mean(sample_weight))`` computed with the
    weights at the end of the epoch (scikit-learn adds it batch by batch). ``tol`` is compared
    with these values, as in scikit-learn.

    Initialisation is fastmlp's ``init="auto"`` (He normal before relu-like activations,
    Glorot uniform otherwise; zero biases), not scikit-learn's Glorot uniform with random
    biases, so the fitted weights differ from scikit-learn's for the same random_state.

    Stopping follows scikit-learn: after each epoch the loss (or validation score) is compared
    with the best so far, a run of more than ``n_iter_no_change`` epochs without an improvement
    of ``tol`` ends the fit, and reaching ``max_iter`` first raises a ``ConvergenceWarning``.
    The counters persist over ``warm_start`` fits and :meth:`partial_fit` calls, as there.
    A NaN or infinite loss stops training with :class:`fastmlp.TrainingDivergedError`, the
    weights rolled back to the last finite state.
"""


def _fill(template: str, **fields: str) -> str:
    """The template with each ``{name}`` replaced (not str.format: the docs hold other braces)."""
    for name, text in fields.items():
        template = template.replace("{" + name + "}", text)
    return template


@contextlib.contextmanager
def _native_threads(n_threads: Optional[int]) -> Iterator[None]:
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


def _real_param(value: object, name: str, lo: float, hi: float = np.inf, *, lo_open: bool = False,
                hi_open: bool = False) -> float:
    """A parameter that must be a finite real number in an interval; errors name it and the interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    inside = np.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not inside:
        interval = ("(" if lo_open else "[") + f"{lo:g}, " + ("inf)" if hi == np.inf else f"{hi:g}" + (")" if hi_open else "]"))
        raise ValueError(f"{name} must be finite and in {interval}, got {value!r}")
    return v


def _int_param(value: object, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _bool_param(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_sample_weight(sample_weight: object, n_samples: int) -> Optional[NDArray[Any]]:
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


class _BaseMLP(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type information
    """What MLPClassifier and MLPRegressor share: parameters, the training loop around
    fastmlp.Trainer, scikit-learn's stopping rules and the fitted attributes."""

    # Set by the subclasses.
    _output_layer: str  # the network output for the targets: "softmax", "sigmoid" or "identity"
    _stratify_split: bool

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: Any = "auto",
        learning_rate_init: float = 1e-3,
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
        n_iter_no_change: int = 10,
        dtype: str = "float32",
        n_threads: Optional[int] = None,
    ) -> None:
        # scikit-learn's contract: store the parameters unchanged; fit validates them.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
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
        self.dtype = dtype
        self.n_threads = n_threads

    # ------------------------------------------------------------------ parameters

    def _hidden_layer_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, (bool, np.bool_)):
            sizes = [sizes]
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints such as (100,), got {sizes!r}")
        return [_int_param(s, f"hidden_layer_sizes[{i}]", 1) for i, s in enumerate(sizes)]

    def _network_activation(self) -> str:
        name = ACTIVATION_ALIASES.get(self.activation, self.activation) if isinstance(self.activation, str) else None
        if name not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(set(ACTIVATIONS) | set(ACTIVATION_ALIASES))}, "
                             f"got {self.activation!r}")
        return name

    def _network_dtype(self) -> np.dtype:
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.name not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    def _check_params(self) -> None:
        """Every parameter checked before anything changes: errors name the parameter, the
        values it takes and the value given."""
        self._hidden_layer_sizes()
        self._network_activation()
        self._network_dtype()
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r} (the lbfgs solver "
                             "is scikit-learn's own MLP's only)")
        _real_param(self.alpha, "alpha", 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            if isinstance(self.batch_size, str):
                raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {self.batch_size!r}")
            _int_param(self.batch_size, "batch_size", 1)
        _real_param(self.learning_rate_init, "learning_rate_init", 0.0, lo_open=True)
        _int_param(self.max_iter, "max_iter", 1)
        _bool_param(self.shuffle, "shuffle")
        _real_param(self.tol, "tol", 0.0)
        if not isinstance(self.verbose, (bool, np.bool_)):
            _int_param(self.verbose, "verbose", 0)
        _bool_param(self.warm_start, "warm_start")
        _real_param(self.momentum, "momentum", 0.0, 1.0)
        _bool_param(self.nesterovs_momentum, "nesterovs_momentum")
        _bool_param(self.early_stopping, "early_stopping")
        _real_param(self.validation_fraction, "validation_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
        _real_param(self.beta_1, "beta_1", 0.0, 1.0, hi_open=True)
        _real_param(self.beta_2, "beta_2", 0.0, 1.0, hi_open=True)
        _real_param(self.epsilon, "epsilon", 0.0, lo_open=True)
        _int_param(self.n_iter_no_change, "n_iter_no_change", 1)
        if self.n_threads is not None:
            _int_param(self.n_threads, "n_threads", 1)

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

    @property
    def intercepts_(self) -> list[NDArray[Any]]:
        return list(self._fitted_network("intercepts_").biases)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # dense kernels only; sparse X raises scikit-learn's TypeError
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ training

    def _grad_scale(self) -> float:
        """c: fastmlp's gradient over scikit-learn's for this output layer (see the Notes)."""
        if self._output_layer == "softmax":
            return 1.0
        if self._output_layer == "sigmoid":
            return 1.0 / self.n_outputs_
        return 2.0 / self.n_outputs_

    def _loss_scale(self) -> float:
        """scikit-learn's reported loss over fastmlp's (it averages the squared error over the
        outputs although its gradient sums over them, hence not simply 1 / c)."""
        if self._output_layer == "softmax":
            return 1.0
        if self._output_layer == "sigmoid":
            return float(self.n_outputs_)
        return 0.5

    def _new_optimizer(self, weight_decay: float) -> Optimizer:
        c = self._grad_scale()
        lr, eps = float(self.learning_rate_init), float(self.epsilon) * c
        betas = (float(self.beta_1), float(self.beta_2))
        if self.solver == "sgd":
            momentum = float(self.momentum)
            # scikit-learn accepts nesterovs_momentum with momentum 0 (it changes nothing); fastmlp refuses it.
            return SGD(lr / c, momentum=momentum, nesterov=bool(self.nesterovs_momentum) and momentum > 0,
                       weight_decay=weight_decay)
        if self.solver == "adam":
            return Adam(lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if self.solver == "adamw":
            return AdamW(lr, betas=betas, eps=eps, weight_decay=float(self.alpha))
        return RMSprop(lr, alpha=RMSPROP_SMOOTHING, eps=eps, weight_decay=weight_decay)

    def _new_network(self, n_features: int, n_outputs: int, seed: int) -> Network:
        sizes = [n_features, *self._hidden_layer_sizes(), n_outputs]
        return Network(sizes, activation=self._network_activation(), dtype=self._network_dtype(), seed=seed,
                       output=self._output_layer)

    def _initialize(self, n_features: int, n_outputs: int, random_state: np.random.RandomState) -> None:
        """New weights and the bookkeeping scikit-learn resets with them (its `_initialize`)."""
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(self._hidden_layer_sizes()) + 2
        self.out_activation_ = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity"}[self._output_layer]
        self.network_ = self._new_network(n_features, n_outputs, int(random_state.randint(_SEED_BOUND)))
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self._optimizer: Optional[Optimizer] = None
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

    def _check_architecture(self, n_outputs: int) -> None:
        """warm_start and partial_fit continue the fitted network: refuse parameters that
        describe a different one instead of silently training the old one."""
        net = self.network_
        wanted = [net.n_features, *self._hidden_layer_sizes(), n_outputs]
        if list(net.layer_sizes) != wanted or net.dtype != self._network_dtype() \
                or set(net.activations) - {self._network_activation()}:
            raise ValueError(
                f"the fitted network has layer sizes {list(net.layer_sizes)}, activation {net.activation!r} and "
                f"dtype {net.dtype.name}, but the parameters now ask for {wanted}, {self.activation!r}, "
                f"{self._network_dtype().name}; set warm_start=False (fit) or start over with a new estimator "
                "(partial_fit) to train a different network")

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any = None) -> None:
        self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True (no held-out split per call); "
                             "set early_stopping=False")
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        X, y_raw = validate_data(self, X, y, multi_output=True, y_numeric=self._output_layer == "identity",
                                 dtype=self._network_dtype(), reset=first_pass)
        if y_raw.ndim == 2 and y_raw.shape[1] == 1:
            y_raw = column_or_1d(y_raw, warn=True)  # DataConversionWarning, as scikit-learn's estimators do
        weights = _check_sample_weight(sample_weight, len(X))
        y_net, n_outputs = self._encode_targets(y_raw, first_pass, incremental, classes)
        random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], n_outputs, random_state)
        else:
            self._check_architecture(n_outputs)
            if self.early_stopping and self.validation_scores_ is None:  # warm start of a fit without it
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        X_val = y_val = weights_val = None
        if self.early_stopping:
            stratify = y_raw if self._stratify_split and y_raw.ndim == 1 else None
            arrays = [X, y_net, y_raw] + ([weights] if weights is not None else [])
            split = train_test_split(*arrays, random_state=random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, y_net, _, _, y_val = split[:6]
            if weights is not None:
                weights, weights_val = split[6], split[7]
                if not weights.sum() > 0:
                    raise ValueError("after the early-stopping split, the training rows' sample_weight sums to 0")
            if len(X_val) < 2:
                raise ValueError(f"the validation set is too small: validation_fraction={self.validation_fraction} "
                                 f"of {len(X) + len(X_val)} samples holds {len(X_val)}; increase validation_fraction "
                                 "or the number of samples")

        n_samples = len(X)
        batch_size = min(200, n_samples) if self.batch_size == "auto" else self.batch_size
        if batch_size > n_samples:
            if self.batch_size != "auto":
                warnings.warn(f"batch_size={self.batch_size} is larger than the {n_samples} training samples; "
                              f"using {n_samples}", UserWarning, stacklevel=3)
            batch_size = n_samples
        mean_weight = 1.0 if weights is None else float(weights.mean())
        # scikit-learn divides alpha by each batch's weight sum; batch_size * mean weight is its
        # mean over full batches (see the Notes).
        l2_factor = float(self.alpha) / (batch_size * mean_weight)
        weight_decay = self._grad_scale() * l2_factor

        # scikit-learn's optimizer lives across partial_fit calls and is new in every fit.
        if incremental and self._optimizer is not None:
            if isinstance(self._optimizer, (SGD, Adam, RMSprop)) and not isinstance(self._optimizer, AdamW):
                # The batch size and weights of this call set the decay; the moments carry on.
                # (fastmlp's optimizers expose weight_decay read-only; the native update reads
                # the value at every epoch, so changing it between epochs is safe.)
                self._optimizer.weight_decay = weight_decay
        else:
            self._optimizer = self._new_optimizer(weight_decay)
        trainer = Trainer(self.network_, batch_size=batch_size, shuffle=bool(self.shuffle),
                          seed=int(random_state.randint(_SEED_BOUND)), optimizer=self._optimizer)

        epochs = 1 if incremental else int(self.max_iter)
        self.n_iter_ = 0
        self._stopped = False
        l2_term = 0.0 if self.solver == "adamw" else 0.5 * l2_factor
        loss_scale = self._loss_scale()

        def after_epoch(epoch: int, logs: dict[str, float]) -> Optional[bool]:
            # scikit-learn's `_update_no_improvement_count` and stopping test, on its scale.
            squared_norm = sum(float(np.dot(W.ravel(), W.ravel())) for W in self.network_.weights)
            loss = logs["loss"] * loss_scale + l2_term * squared_norm
            self.n_iter_ += 1
            self.t_ += n_samples
            self.loss_ = loss
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if self.early_stopping:
                assert X_val is not None and y_val is not None and self.validation_scores_ is not None \
                    and self.best_validation_score_ is not None
                score = self._validation_score(X_val, y_val, weights_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    self._best_params = self._copy_params()
            else:
                assert self.best_loss_ is not None
                if loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if loss < self.best_loss_:
                    self.best_loss_ = loss
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                          "consecutive epochs. Stopping.")
                self._stopped = True
                return False
            return None

        fit_options: dict[str, Any] = {"callbacks": [after_epoch]}
        if weights is not None:
            fit_options["sample_weight"] = weights
        with _native_threads(self.n_threads):
            trainer.fit(X, y_net, epochs=epochs, verbose=0, **fit_options)
        if not incremental and not self._stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        if self.early_stopping:
            self._restore_params(self._best_params)

    def _validation_score(self, X_val: NDArray[Any], y_val: NDArray[Any], weights_val: Optional[NDArray[Any]]) -> float:
        """accuracy (classifier) or R² (regressor) of the current weights; NaN for non-finite outputs."""
        outputs = self.network_._forward(X_val)
        if not np.isfinite(outputs).all():
            return float("nan")
        return float(self._score_function(y_val, self._decode_outputs(outputs), sample_weight=weights_val))

    def _outputs(self, X: Any) -> NDArray[Any]:
        """The output layer for X (probabilities, or the regression values) as float64, X
        checked as in fit."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=self._network_dtype(), reset=False)
        with _native_threads(self.n_threads):
            outputs = self.network_._forward(X)
        # float64 whatever the network computes in (an exact conversion): what scikit-learn's
        # metrics and checks expect of regression outputs and probabilities.
        return outputs.astype(np.float64)

    # Subclass hooks.
    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any) -> tuple[Any, int]:
        raise NotImplementedError

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        raise NotImplementedError

    _score_function: Any


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]
    _output_layer = "softmax"  # per fit: "sigmoid" for binary and multilabel targets
    classes_: NDArray[Any]
    _stratify_split = True
    _score_function = staticmethod(accuracy_score)

    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any) -> tuple[Any, int]:
        check_classification_targets(y)
        target_type = type_of_target(y)
        if target_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"y must hold class labels of shape (n_samples,) or a 0/1 label indicator matrix; "
                             f"got {target_type} targets of shape {y.shape}")
        multilabel = target_type == "multilabel-indicator"
        if incremental and not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit: all the labels y "
                                 "can hold, e.g. classes=np.unique(y_all)")
        if classes is not None and hasattr(self, "classes_") and incremental:
            if not np.array_equal(unique_labels(classes), self.classes_):
                raise ValueError(f"classes={classes!r} differs from the classes of the first partial_fit call, "
                                 f"{self.classes_!r}")
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
            else:
                self.classes_ = unique_labels(classes if incremental and classes is not None else y)
                unknown = np.setdiff1d(unique_labels(y), self.classes_)
                if len(unknown):
                    raise ValueError(f"y has classes {unknown!r} not in classes={self.classes_!r}")
            self._multilabel = multilabel
            self._multilabel_dtype = y.dtype if multilabel else None
            self._output_layer = "softmax" if not multilabel and len(self.classes_) > 2 else "sigmoid"
        else:
            if multilabel != self._multilabel or (multilabel and y.shape[1] != len(self.classes_)):
                expected = f"a {len(self.classes_)}-column label indicator matrix" if self._multilabel else \
                    "labels of shape (n_samples,)"
                raise ValueError(f"y must be {expected} like the targets the estimator was fit on, "
                                 f"got y of shape {y.shape}")
            if not multilabel:
                labels = unique_labels(y)
                if self.warm_start and not incremental and set(labels) != set(self.classes_):
                    raise ValueError(f"warm_start needs y with the same classes as the previous fit, "
                                     f"{self.classes_!r}; y has {labels!r}")
                unknown = np.setdiff1d(labels, self.classes_)
                if len(unknown):
                    raise ValueError(f"y has classes {unknown!r} not in classes_ {self.classes_!r}")
        dtype = self._network_dtype()
        if self._multilabel:
            return np.ascontiguousarray(y, dtype=dtype), y.shape[1]
        indices = np.searchsorted(self.classes_, y)
        if self._output_layer == "softmax":
            return indices.astype(np.int64), len(self.classes_)
        # Binary: one logistic unit for classes_[1] (scikit-learn's choice); with a single class
        # every target is 0 and prediction always returns that class.
        return (indices == 1).astype(dtype), 1

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        if self._multilabel:
            indicators: NDArray[Any] = (outputs > 0.5).astype(self._multilabel_dtype)
            return indicators
        if self._output_layer == "sigmoid":
            index = np.minimum((outputs[:, 0] > 0.5).astype(np.intp), len(self.classes_) - 1)
        else:
            index = np.argmax(outputs, axis=1)
        labels: NDArray[Any] = self.classes_[index]
        return labels

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Fit the network to (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any type (strings, ints, bools, ...), or a 0/1 label indicator
            matrix for multilabel classification.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; each batch's loss is their weighted mean (see the class Notes).

        Returns
        -------
        self : MLPClassifier
        """
        self._fit(X, y, sample_weight, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the weights and the optimizer's state.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.
        classes : array-like of shape (n_classes,), default=None
            Every label y may hold over all calls; required on the first call (unless y is a
            label indicator matrix), ignored after it if equal.

        Returns
        -------
        self : MLPClassifier
        """
        self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self

    def predict(self, X: Any) -> NDArray[Any]:
        """Predicted labels: of shape (n_samples,) from ``classes_``, or the (n_samples,
        n_labels) indicator matrix (in the dtype of the y given to fit) for multilabel."""
        return self._decode_outputs(self._outputs(X))

    def predict_proba(self, X: Any) -> NDArray[Any]:
        """Probabilities of shape (n_samples, n_classes), columns in the order of ``classes_``,
        float64. Binary: ``[1 - p, p]`` from the one logistic unit; multilabel:
        each label's own probability (rows need not sum to 1)."""
        outputs = self._outputs(X)
        if self._output_layer == "sigmoid" and not self._multilabel:
            if len(self.classes_) == 1:
                return np.ones_like(outputs)
            return np.hstack([1 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X: Any) -> NDArray[Any]:
        """``log(predict_proba(X))``."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):  # a probability that rounded to 0 is -inf, as in scikit-learn
            np.log(proba, out=proba)
        return proba

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    _output_layer = "identity"
    _stratify_split = False
    _score_function = staticmethod(r2_score)

    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any) -> tuple[Any, int]:
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s) but the estimator was fit with {self.n_outputs_}")
        return np.ascontiguousarray(y, dtype=self._network_dtype()), n_outputs

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit the network to (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Real targets; several columns fit a multi-output regression.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; each batch's loss is their weighted mean (see the class Notes).

        Returns
        -------
        self : MLPRegressor
        """
        self._fit(X, y, sample_weight, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), continuing the weights and the optimizer's state.

        Returns
        -------
        self : MLPRegressor
        """
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def predict(self, X: Any) -> NDArray[Any]:
        """Predictions of shape (n_samples,) for one output, else (n_samples, n_outputs), as
        float64 (computed in the network's dtype)."""
        return self._decode_outputs(self._outputs(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


MLPClassifier.__doc__ = """Multi-layer perceptron classifier, trained by fastmlp: a drop-in for
    ``sklearn.neural_network.MLPClassifier`` (its parameter names, attributes and stopping rules).

    Multiclass targets get a softmax output and the cross-entropy; binary targets one logistic
    unit (the probability of ``classes_[1]``); a label indicator matrix one logistic unit per
    label. Labels may be of any type; ``classes_`` holds them sorted.

    Parameters
    ----------""" + _fill(
    _SHARED_PARAMETERS_DOC, split="stratified by class", score="accuracy") + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multilabel targets, ``arange(n_labels)``).""" + _fill(
    _SHARED_ATTRIBUTES_DOC, out_activations='"softmax" (multiclass) or "logistic" (binary, multilabel).') + """
    Notes
    -----""" + _SHARED_NOTES_DOC + """
    Examples
    --------
    >>> from fastmlp.sklearn import MLPClassifier
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]] * 25)
    >>> y = np.array(["no", "yes", "yes", "no"] * 25)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=300,
    ...                     random_state=0).fit(X, y)
    >>> clf.predict([[0., 1.], [1., 1.]])
    array(['yes', 'no'], dtype='<U3')
    """

MLPRegressor.__doc__ = """Multi-layer perceptron regressor, trained by fastmlp: a drop-in for
    ``sklearn.neural_network.MLPRegressor`` (its parameter names, attributes and stopping rules),
    with the squared error and identity outputs, one per target column.

    Parameters
    ----------""" + _fill(
    _SHARED_PARAMETERS_DOC, split="a random split", score="R²") + """
    Attributes
    ----------""" + _fill(_SHARED_ATTRIBUTES_DOC, out_activations='"identity".') + """
    Notes
    -----""" + _SHARED_NOTES_DOC
