"""The one training loop behind Trainer.fit and DataParallelTrainer.fit: the fit options checked
once, the validation split, each epoch as a transaction (an interrupt puts weights, optimizer,
counters and schedule back to the end of the last recorded epoch), the logs and the History,
progress, schedule stepping, early stopping with best-weights restore, and callbacks.
What one epoch does (one native call, or steps with allreduces) is the trainer's EpochRunner;
this module never decides how a gradient is computed."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._forward import evaluate_rows
from ._progress import Progress, check_verbose
from ._sparse import CsrRows, Rows
from ._training_state import TrainingState
from ._validation import (
    all_finite,
    check_bool,
    check_choice,
    check_int,
    check_nonnegative_float,
    check_positive_float,
)
from .history import History
from .network import Network
from .optim import Optimizer
from .schedules import Schedule

Callback = Callable[[int, dict[str, float]], Any]


class TrainingDivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss or weights; raised by :meth:`Trainer.fit` with
    ``on_nonfinite="raise"`` after rolling the weights back to their last finite state."""


def params_finite(arrays: Sequence[NDArray[Any]]) -> bool:
    # The sum-based check of the input validation: no parameter-sized temporary per epoch.
    return all(all_finite(a) for a in arrays)


@dataclass(frozen=True)
class FitOptions:
    """The arguments of fit that do not depend on the data, checked."""

    epochs: int
    verbose: int
    on_nonfinite: str
    validation_fraction: Optional[float]
    patience: Optional[int]
    restore_best_weights: bool
    tol: float
    callbacks: tuple[Callback, ...]

    def comparable(self) -> dict[str, Any]:
        """The options every rank of a distributed fit must agree on (progress and callbacks may differ)."""
        return {"epochs": self.epochs, "on_nonfinite": self.on_nonfinite,
                "validation_fraction": self.validation_fraction, "patience": self.patience,
                "restore_best_weights": self.restore_best_weights, "tol": self.tol}


def check_fit_options(epochs: object, verbose: object, on_nonfinite: object, validation_data: object,
                      validation_fraction: object, early_stopping: object, restore_best_weights: object,
                      tol: object, callbacks: object) -> FitOptions:
    """FitOptions from fit's arguments; TypeError/ValueError naming the first bad one."""
    if on_nonfinite not in ("raise", "warn"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {on_nonfinite!r}")
    checked_epochs = check_int(epochs, "epochs", 1)
    checked_verbose = check_verbose(verbose)
    patience = None if early_stopping is None else check_int(early_stopping, "early_stopping", 1)
    restore = check_bool(restore_best_weights, "restore_best_weights")
    checked_tol = check_nonnegative_float(tol, "tol")
    fns: tuple[Callback, ...] = tuple(callbacks) if callbacks is not None else ()  # type: ignore[arg-type]
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"callbacks must be callables fn(epoch, logs), got {fn!r}")
    fraction = None
    if validation_fraction is not None:
        if validation_data is not None:
            raise ValueError("pass either validation_data or validation_fraction, not both")
        fraction = check_positive_float(validation_fraction, "validation_fraction")
        if fraction >= 1:
            raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
    return FitOptions(checked_epochs, checked_verbose, check_choice(on_nonfinite, "on_nonfinite", ("raise", "warn")),
                      fraction, patience, restore, checked_tol, fns)


def validation_split(state: TrainingState, n_rows: int, fraction: float,
                     sample_weight: Optional[NDArray[Any]] = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(training rows, validation rows) of `n_rows` for ``validation_fraction=fraction``: the
    trainer's fixed split (:meth:`TrainingState.validation_split`). ValueError when no row is
    left to train on, or when every row with a positive `sample_weight` is held out."""
    n_val = int(np.ceil(fraction * n_rows))
    if n_val >= n_rows:
        raise ValueError(f"validation_fraction={fraction:g} of {n_rows} samples leaves none to train on")
    train_rows, val_rows = state.validation_split(n_rows, n_val)
    if sample_weight is not None and not sample_weight[train_rows].any():
        raise ValueError(
            f"every sample with a positive sample_weight falls in the validation split "
            f"(validation_fraction={fraction:g} holds out {n_val} of {n_rows} rows), so nothing would be trained: "
            "give more rows a positive weight, or pass validation_data instead")
    return train_rows, val_rows


class RowEvaluator:
    """The validation pass over rows `rows` of (X, y), read in place: gathered chunk by chunk
    (of the workspace's batch) into two small buffers allocated once, never a copy of X.
    The summed loss is bitwise that of one ``_core.evaluate`` over the gathered rows."""

    def __init__(self, network: Network, X: Rows, y: NDArray[Any], rows: Optional[NDArray[np.int64]]) -> None:
        if isinstance(X, CsrRows) and rows is not None:  # sparse rows are selected in place by a row list
            X, y, rows = X.take(rows), y[rows], None
        self.X, self.y, self.rows = X, y, rows
        n = len(X) if rows is None else len(rows)
        self.n_rows = n
        self.ws = network._eval_workspace(max(1, n), X)
        chunk = max(1, min(self.ws.max_batch, n))
        self.X_chunk = np.empty((chunk,) + X.shape[1:], dtype=X.dtype) if rows is not None else X
        self.y_chunk = np.empty((chunk,) + y.shape[1:], dtype=y.dtype) if rows is not None else y

    def __call__(self, W: list[NDArray[Any]], b: list[NDArray[Any]]) -> tuple[float, int]:
        """(summed loss, correct count) of the network (W, b) on the rows."""
        if self.rows is None:  # in native calls sized by work, so that Ctrl-C is seen between them
            loss, correct, _ = evaluate_rows(self.ws, W, b, self.X, self.y, False)
            return loss, correct
        assert isinstance(self.X, np.ndarray) and isinstance(self.X_chunk, np.ndarray)  # sparse: selected in __init__
        total, n_correct, step = 0.0, 0, len(self.X_chunk)
        for start in range(0, len(self.rows), step):
            part = self.rows[start:start + step]
            Xb = np.take(self.X, part, axis=0, out=self.X_chunk[:len(part)])
            yb = np.take(self.y, part, axis=0, out=self.y_chunk[:len(part)])
            loss, correct, _ = _core.evaluate(self.ws, W, b, Xb, yb, want_preds=False)
            total += loss
            n_correct += correct
        return total, n_correct


class EpochResult(NamedTuple):
    loss_sum: float
    n_correct: int
    n_seen: int
    finite: bool  # the loss and the weights (or the gradients) stayed finite


class EpochStart:
    """The state at the start of an epoch: the weights, the optimizer (step count, lr, state
    arrays), the training state and the schedule. Buffers are allocated once per fit."""

    def __init__(self, network: Network, optimizer: Optimizer, state: TrainingState,
                 schedule: Optional[Schedule]) -> None:
        W, b = network._params(for_update=True)
        self.params = W + b
        self.network, self.optimizer, self.state, self.schedule = network, optimizer, state, schedule
        self.weights = [np.empty_like(a) for a in self.params]
        self.optimizer_copy = optimizer._snapshot()
        self.state_copy = state.snapshot()
        self.schedule_copy = None if schedule is None else schedule.state_dict()

    def take(self) -> None:
        for saved, a in zip(self.weights, self.params):
            np.copyto(saved, a)
        self.optimizer_copy = self.optimizer._snapshot_into(self.optimizer_copy)
        self.state_copy = self.state.snapshot()
        self.schedule_copy = None if self.schedule is None else self.schedule.state_dict()

    def put_back_weights_and_optimizer(self) -> None:
        for a, saved in zip(self.params, self.weights):
            np.copyto(a, saved)
        self.optimizer._restore(self.optimizer_copy)

    def put_back(self) -> None:
        self.put_back_weights_and_optimizer()
        self.state.restore(self.state_copy)
        if self.schedule is not None and self.schedule_copy is not None:
            self.schedule.load_state_dict(self.schedule_copy)


class EpochRunner:
    """What a trainer gives the loop: its parts, and how to run and validate one epoch.

    ``n_rows`` is the number of (global) training rows, over which the loop draws each
    epoch's permutation; ``shows_progress`` is False on the ranks that stay quiet."""

    network: Network
    optimizer: Optimizer
    schedule: Optional[Schedule]
    state: TrainingState
    shuffle: bool
    n_rows: int
    has_validation: bool
    shows_progress: bool = True

    def run_epoch(self, epoch: int, shown: int, permutation: Optional[NDArray[np.int64]],
                  start: EpochStart) -> EpochResult:
        """Train one epoch (numbered `epoch` across fits, `shown` in this fit), visiting the
        training rows in the order `permutation` (None: in order). Raise TrainingDivergedError
        (after rolling back as documented) when asked to."""
        raise NotImplementedError

    def validate(self) -> tuple[float, float, float]:
        """(summed validation loss, correct count, number of rows), over all ranks."""
        raise NotImplementedError

    def agree_on_logs(self, logs: dict[str, float]) -> dict[str, float]:
        """The logs every rank uses (rank 0's); one process: `logs` itself."""
        return logs

    def agree_to_stop(self, shown: int, error: Optional[BaseException], asked: bool) -> bool:
        """After the callbacks of epoch `shown`: raise `error` if a callback raised (on any
        rank), else whether a callback asked to stop (on any rank)."""
        if error is not None:
            raise error
        return asked


def run_fit(runner: EpochRunner, options: FitOptions, history: History) -> History:
    """Train up to ``options.epochs`` epochs through `runner`, recording them in `history`."""
    net, opt, schedule, state = runner.network, runner.optimizer, runner.schedule, runner.state
    W, b = net._params(for_update=True)
    params = W + b
    classifier = net.output not in ("identity", "poisson")  # regressions: no accuracy
    if schedule is not None and not schedule.started:
        schedule.start(opt.lr)  # a later fit continues the schedule where it stands
    history.stopped_early = False
    start = EpochStart(net, opt, state, schedule)
    warned = False
    best_loss, best_at, waited = math.inf, 0, 0
    best_weights: Optional[list[NDArray[Any]]] = None
    with Progress(options.epochs, options.verbose if runner.shows_progress else 0) as progress:
        for shown in range(1, options.epochs + 1):
            progress.epoch_start(shown)
            t0 = time.perf_counter()
            epoch = state.epochs_done + 1
            with net._locked():
                start.take()
            try:
                logs, finite = _one_epoch(runner, start, epoch, shown, classifier)
                logs["epoch_time"] = time.perf_counter() - t0
                logs = runner.agree_on_logs(logs)
                if schedule is not None:
                    schedule.step(logs["val_loss"] if runner.has_validation else logs["loss"])
                history.append(**logs)  # the commit: from here on the epoch counts
            except TrainingDivergedError:
                raise  # the runner left the documented state (rolled back to a batch)
            except BaseException:
                # Ctrl-C (or any failure) inside an epoch: back to the end of the last recorded
                # epoch, so that weights, optimizer, counters and history agree.
                with net._locked():
                    start.put_back()
                raise
            if not warned and options.on_nonfinite == "warn" and not finite:
                warned = True
                if runner.shows_progress:
                    warnings.warn(f"training diverged in epoch {shown}: the loss or the weights are NaN or infinite; "
                                  "going on as on_nonfinite='warn' asks (a smaller lr usually helps)",
                                  RuntimeWarning, stacklevel=3)
            progress.epoch_end(shown, logs)
            monitored = logs["val_loss"] if runner.has_validation else logs["loss"]
            if math.isfinite(monitored) and monitored < best_loss - options.tol:
                best_loss, best_at, waited = monitored, shown, 0
                if options.restore_best_weights:
                    with net._locked():
                        if best_weights is None:
                            best_weights = [a.copy() for a in params]
                        else:
                            for saved, a in zip(best_weights, params):
                                np.copyto(saved, a)
            else:
                waited += 1
            stop = options.patience is not None and waited >= options.patience
            asked, error = False, None
            try:
                for fn in options.callbacks:  # every callback sees every epoch, even after one asked to stop
                    if fn(shown, dict(logs)) is False:
                        asked = True
            except Exception as exc:
                error = exc
            if runner.agree_to_stop(shown, error, asked):
                stop = True
            if stop and shown < options.epochs:
                history.stopped_early = True
                break
    if options.restore_best_weights and best_weights is not None and best_at != history.epochs:
        with net._locked():
            for a, saved in zip(params, best_weights):
                np.copyto(a, saved)
    return history


def _one_epoch(runner: EpochRunner, start: EpochStart, epoch: int, shown: int,
               classifier: bool) -> tuple[dict[str, float], bool]:
    """Run and validate one epoch (the network locked throughout, so that another thread's
    predict sees the weights of whole epochs only): its logs before the schedule steps, and
    whether the loss and the weights stayed finite."""
    net, opt, state = runner.network, runner.optimizer, runner.state
    if runner.schedule is not None:
        opt.lr = runner.schedule.lr
    lr = opt.lr
    permutation = state.rng.permutation(runner.n_rows).astype(np.int64, copy=False) if runner.shuffle else None
    with net._locked():
        try:
            result = runner.run_epoch(epoch, shown, permutation, start)
        finally:
            # Counted even when the epoch diverged: the replayed batches used its dropout masks.
            state.epochs_done = epoch
        val = runner.validate() if runner.has_validation else None
    logs = {"loss": result.loss_sum / result.n_seen}
    if classifier:
        logs["accuracy"] = result.n_correct / result.n_seen
    if val is not None:
        val_loss, val_correct, n_val = val
        logs["val_loss"] = val_loss / n_val if n_val else math.nan
        if classifier:
            logs["val_accuracy"] = val_correct / n_val if n_val else math.nan
    logs["lr"] = lr
    return logs, result.finite and math.isfinite(result.loss_sum)
