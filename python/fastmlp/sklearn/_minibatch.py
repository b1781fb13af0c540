"""The minibatch solvers (sgd, adam, adamw, rmsprop) of the estimators: scikit-learn's
hyperparameters mapped onto a fastmlp optimizer, one Trainer.fit over the epochs, and
scikit-learn's per-epoch bookkeeping (loss on its scale, the tol rule, sgd's learning-rate
schedules, early stopping with the best weights). Checks happen before this, in _base."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..optim import SGD, Adam, AdamW, Optimizer, RMSprop
from ..trainer import Trainer, TrainingDivergedError
from ._params import Settings

if TYPE_CHECKING:
    from ._base import FitData, _BaseMLP

class NonFiniteWeightsError(TrainingDivergedError, ValueError):
    """A fit that diverged: a :class:`fastmlp.TrainingDivergedError` for fastmlp's users and a
    ValueError, the type scikit-learn's MLP raises for non-finite weights, for its users."""


#: RMSprop's smoothing constant: PyTorch's default (scikit-learn has no RMSprop, and beta_2 is Adam's).
RMSPROP_SMOOTHING = 0.99
#: Seeds drawn from random_state for the shuffling stay below this bound.
_SEED_BOUND = np.iinfo(np.int32).max
#: scikit-learn's adaptive schedule stops once the rate is this small.
_ADAPTIVE_FLOOR = 1e-6


def new_optimizer(est: _BaseMLP, weight_decay: float) -> Optimizer:
    c = est._grad_scale()
    lr, eps = float(est.learning_rate_init), float(est.epsilon) * c
    betas = (float(est.beta_1), float(est.beta_2))
    if est.solver == "sgd":
        momentum = float(est.momentum)
        # scikit-learn accepts nesterovs_momentum with momentum 0 (it changes nothing); fastmlp refuses it.
        return SGD(lr / c, momentum=momentum, nesterov=bool(est.nesterovs_momentum) and momentum > 0,
                   weight_decay=weight_decay)
    if est.solver == "adam":
        return Adam(lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if est.solver == "adamw":
        return AdamW(lr, betas=betas, eps=eps, weight_decay=float(est.alpha))
    return RMSprop(lr, alpha=RMSPROP_SMOOTHING, eps=eps, weight_decay=weight_decay)


def fit(est: _BaseMLP, settings: Settings, data: FitData, incremental: bool,
        random_state: np.random.RandomState) -> None:
    X, y_net, weights = data.X, data.y_net, data.weights
    n_samples = len(X)
    batch_size = min(200, n_samples) if est.batch_size == "auto" else int(est.batch_size)
    if batch_size > n_samples:
        if est.batch_size != "auto":
            warnings.warn(f"batch_size={est.batch_size} is larger than the {n_samples} training samples; "
                          f"using {n_samples}", UserWarning, stacklevel=4)
        batch_size = n_samples
    mean_weight = 1.0 if weights is None else float(weights.mean())
    # scikit-learn divides alpha by each batch's weight sum; batch_size * mean weight is its
    # mean over full batches (see the Notes).
    l2_factor = float(est.alpha) / (batch_size * mean_weight)
    c = est._grad_scale()
    weight_decay = c * l2_factor

    # scikit-learn's optimizer lives across partial_fit calls and is new in every fit.
    if incremental and est._optimizer is not None:
        if isinstance(est._optimizer, (SGD, Adam, RMSprop)) and not isinstance(est._optimizer, AdamW):
            # The batch size and weights of this call set the decay; the moments carry on.
            est._optimizer.weight_decay = weight_decay
    else:
        est._optimizer = new_optimizer(est, weight_decay)
        est._learning_rate = float(est.learning_rate_init)  # sgd's current rate, on scikit-learn's scale
    optimizer = est._optimizer
    trainer = Trainer(est.network_, batch_size=batch_size, shuffle=bool(est.shuffle),
                      seed=int(random_state.randint(_SEED_BOUND)), optimizer=optimizer)

    epochs = 1 if incremental else int(est.max_iter)
    est.n_iter_ = 0
    stopped = False
    l2_term = 0.0 if est.solver == "adamw" else 0.5 * l2_factor
    loss_scale = est._loss_scale()
    schedule = est.learning_rate if est.solver == "sgd" else "constant"
    net = est.network_

    def set_learning_rate(rate: float) -> None:
        # scikit-learn's velocity is v = momentum v - lr g, PyTorch's (fastmlp's) buffer
        # buf = momentum buf + g with the step lr buf: v = -lr buf only while lr stays the
        # same. Scaling buf by old / new when the rate changes keeps the steps scikit-learn's.
        if isinstance(optimizer, SGD) and optimizer.momentum > 0 and optimizer.state is not None:
            for arrays in optimizer.state:
                for buffer in arrays:
                    buffer *= est._learning_rate / rate
        est._learning_rate = rate
        optimizer.lr = rate / c  # read by the Trainer at the start of the next epoch

    def after_epoch(epoch: int, logs: dict[str, float]) -> Optional[bool]:
        # scikit-learn's `_update_no_improvement_count`, its optimizer's `iteration_ends` and
        # `trigger_stopping`, on its loss scale.
        nonlocal stopped
        with np.errstate(over="ignore"):  # huge but finite weights of a diverging fit: inf, reported below
            squared_norm = sum(float(np.dot(W.ravel(), W.ravel())) for W in net.weights)
        loss = logs["loss"] * loss_scale + l2_term * squared_norm
        est.n_iter_ += 1
        est.t_ += n_samples
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if est.early_stopping:
            assert data.X_val is not None and data.y_val is not None and est.validation_scores_ is not None \
                and est.best_validation_score_ is not None
            score = est._validation_score(data.X_val, data.y_val, data.weights_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = est._copy_params()
        else:
            assert est.best_loss_ is not None
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if loss < est.best_loss_:
                est.best_loss_ = loss
        if schedule == "invscaling":
            set_learning_rate(float(est.learning_rate_init) / (est.t_ + 1) ** float(est.power_t))
        if est._no_improvement_count > settings.n_iter_no_change:
            what = "Validation score" if est.early_stopping else "Training loss"
            message = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if schedule == "adaptive" and est._learning_rate > _ADAPTIVE_FLOOR:
                set_learning_rate(est._learning_rate / 5.0)
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {est._learning_rate:f}")
                return None
            if est.verbose:
                print(message + (" Learning rate too small. Stopping." if schedule == "adaptive" else " Stopping."))
            stopped = True
            return False
        return None

    fit_options: dict[str, Any] = {"callbacks": [after_epoch]}
    if weights is not None:
        fit_options["sample_weight"] = weights
    try:
        trainer.fit(X, y_net, epochs=epochs, verbose=0, **fit_options)
    except TrainingDivergedError:
        # Trainer's message speaks of its own arguments (lr on fastmlp's scale, on_nonfinite);
        # say it in the estimator's terms, starting with scikit-learn's words.
        raise NonFiniteWeightsError(
            f"Solver produced non-finite parameter weights: training diverged in epoch {est.n_iter_ + 1} (the loss "
            f"or the weights became NaN or infinite). The weights are rolled back to their last finite state and "
            f"loss_curve_ holds the completed epochs. A smaller learning_rate_init (now "
            f"{float(est.learning_rate_init):g}) or scaled inputs (e.g. sklearn.preprocessing.StandardScaler) "
            f"usually help.") from None
    if not incremental and not stopped and est.n_iter_ == est.max_iter:
        warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
                      "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)
    if est.early_stopping:
        est._restore_params(est._best_params)
