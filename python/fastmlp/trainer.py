"""Trainer: minibatch training of a Network with an optimizer (fastmlp.optim) and an optional
learning-rate schedule (fastmlp.schedules). Each epoch is one native call (batch loop, forward,
backward and update all in C++, with scratch memory allocated once per fit); Python sees only
epoch boundaries, where it shuffles, steps the schedule, validates, records history and prints
progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._checkpoint import load_checkpoint, save_checkpoint
from ._fit_loop import (
    EpochResult,
    EpochRunner,
    EpochStart,
    FitOptions,
    RowEvaluator,
    TrainingDivergedError,
    check_fit_options,
    run_fit,
    validation_split,
)
from ._fit_loop import (
    params_finite as _all_finite,
)
from ._sparse import Rows, check_input
from ._training_state import TrainingState
from ._validation import check_bool, check_int, check_positive_float, check_sample_weight, check_seed
from .history import History
from .network import Network
from .optim import SGD, Optimizer
from .schedules import Schedule

__all__ = ["Trainer", "TrainingDivergedError"]


class Trainer:
    """Trains a :class:`Network` by minibatch gradient descent.

    Parameters
    ----------
    network : Network
        Trained in place.
    lr : float, optional
        Learning rate of plain SGD, finite and > 0 (0.1 when neither ``lr`` nor ``optimizer`` is
        given): ``W -= lr * dL/dW``, ``b -= lr * dL/db``. Not allowed together with
        ``optimizer``, which carries its own.
    batch_size : int, default=32
        Rows per step; the last batch of an epoch may be smaller.
    shuffle : bool, default=True
        Visit the rows in a new random order each epoch, drawn from ``seed``. With
        ``shuffle=False``, :meth:`fit` is exactly :meth:`step` over consecutive batches (for a
        network without dropout).
    seed : int or None, default=None
        Seed of the shuffling and of the dropout masks. The same network seed and trainer seed
        give bitwise the same trained weights, whatever the thread count.
    optimizer : fastmlp.optim.Optimizer, optional
        ``fastmlp.optim.SGD(lr, momentum=..., nesterov=..., weight_decay=...)``, ``Adam``,
        ``AdamW`` or ``RMSprop``. Its state (momentum, moments) and step count persist across
        :meth:`fit` calls; they belong to this network object: training another network with
        the same optimizer (even one of the same shape) raises ``ValueError`` until
        ``optimizer.reset()``.
    schedule : fastmlp.schedules.Schedule, optional
        Sets the optimizer's learning rate at the start of every epoch of :meth:`fit` and is
        stepped after it, on the validation loss (or the training loss without validation data).

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer in use (an :class:`~fastmlp.optim.SGD` built from ``lr`` by default).
    history : History
        The records of the last :meth:`fit` call (absent before the first).

    Notes
    -----
    Dropout masks are keyed by (seed, epoch, batch, layer, unit): epochs count across
    :meth:`fit` calls on this Trainer (the first is 1), so two fits of 5 epochs draw the masks
    of one fit of 10.

    Threads: training runs without the GIL, so Python threads training *different* networks
    run in parallel, and give bitwise the weights they would give one after another. Training
    calls on the *same* network, from any number of Trainers and threads, are serialized by the
    network's lock: :meth:`step` is one atomic update, and :meth:`fit` holds the lock for one
    epoch (its native pass and its validation) at a time, so a ``predict`` from another thread
    waits at most one epoch and sees the weights between two epochs, never a mix. Two threads
    fitting one network therefore interleave whole epochs, in an order that is not defined.
    Sharing one Trainer between threads is serialized the same way, but its shuffling order
    and ``history`` are then shared too; give each thread its own Trainer. (The scratch
    :class:`fastmlp._core.Workspace` of a Trainer raises ``RuntimeError`` if two native calls
    ever use it at once, e.g. after ``trainer.network`` is reassigned during a ``fit``.)

    Processes: after training with more than one native thread, start ``multiprocessing``
    workers with the ``spawn`` or ``forkserver`` method, not ``fork``: the OpenMP runtime
    (libgomp) is not fork-safe and a forked child can hang in its first parallel call.
    """

    history: History
    """The History of the last :meth:`fit` call (set by fit; absent before the first)."""

    def __init__(
        self,
        network: Network,
        lr: float | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        *,
        optimizer: Optimizer | None = None,
        schedule: Schedule | None = None,
    ) -> None:
        if not isinstance(network, Network):
            raise TypeError(f"Trainer needs a fastmlp.Network, got {type(network).__name__}")
        self.network = network
        if optimizer is not None:
            if not isinstance(optimizer, Optimizer):
                raise TypeError(f"optimizer must be a fastmlp.optim optimizer such as fastmlp.optim.Adam(), "
                                f"got {type(optimizer).__name__}")
            if lr is not None:
                raise ValueError("pass the learning rate to the optimizer (e.g. fastmlp.optim.Adam(lr=...)), "
                                 "not to Trainer as well")
        else:
            optimizer = SGD(check_positive_float(0.1 if lr is None else lr, "lr"))
        self.optimizer = optimizer
        if schedule is not None and not isinstance(schedule, Schedule):
            hint = " (an instance, not the class)" if isinstance(schedule, type) else ""
            raise TypeError(f"schedule must be a fastmlp.schedules schedule such as StepLR(10){hint}, got {schedule!r}")
        self.schedule = schedule
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.shuffle = check_bool(shuffle, "shuffle")
        self.seed = check_seed(seed)
        self.training_state = TrainingState(self.seed)
        self._ws: _core.Workspace | None = None

    @property
    def lr(self) -> float:
        """float: the optimizer's learning rate (setting it changes the optimizer's)."""
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = check_positive_float(value, "lr")

    def __repr__(self) -> str:
        return (f"Trainer({self.network!r}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed!r}"
                + (f", schedule={self.schedule!r}" if self.schedule is not None else "") + ")")

    def _workspace(self, rows: int) -> _core.Workspace:
        """Scratch memory for batches of `rows`, reused while the network's shape and dtype hold."""
        net = self.network
        ws = self._ws
        if ws is None or ws.max_batch < rows or ws.layer_sizes != net.layer_sizes or ws.dtype != net.dtype.name \
                or ws.activations != net.activations or ws.output != net.output or ws.dropout != net.dropout:
            ws = net._workspace(rows, training=True)
            self._ws = ws
        return ws

    def step(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """One optimizer step on one batch; returns the batch's mean loss before the step.

        Parameters
        ----------
        X : array-like of shape (batch, n_features)
        y : array-like
            The targets of the network's output (see :meth:`Network.loss`).
        sample_weight : array-like of shape (batch,), optional
            Row weights, as in :meth:`fit`.
        """
        net = self.network
        X = check_input(X, net.n_features, net.dtype)
        y = net._check_y(y, len(X))
        weights = None if sample_weight is None else check_sample_weight(sample_weight, len(X), net.dtype)
        ws = self._workspace(len(X))
        opt = self.optimizer
        with net._locked():  # one atomic update: no other thread reads or writes mid-step
            W, b = net._params(for_update=True)
            state = self.training_state
            loss_sum, _ = _core.train_batch(ws, W, b, X, y, optimizer=opt._spec(), state=opt._state_for(net),
                                            dropout_seed=state.dropout_seed, epoch=0,
                                            batch_index=state.single_steps, sample_weight=weights)
            opt.steps += 1
            state.single_steps += 1
        return loss_sum / len(X)

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        epochs: int = 1,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        verbose: bool | int = 0,
        on_nonfinite: str = "raise",
        *,
        validation_fraction: float | None = None,
        early_stopping: int | None = None,
        restore_best_weights: bool = False,
        tol: float = 0.0,
        callbacks: Sequence[Callable[[int, dict[str, float]], Any]] | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> History:
        """Train for up to `epochs` passes over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Converted once to the network's dtype (a C-contiguous array of that dtype is used
            as is, without a copy).
        y : array-like
            The targets of the network's output: integer labels (n_samples,) or target
            distributions (n_samples, n_classes) for a softmax; 0/1 targets (n_samples,
            n_outputs) for a sigmoid; real targets for an identity output (see
            :meth:`Network.loss`).
        epochs : int, default=1
            New epochs to train (a later ``fit`` continues from where this one stops).
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch into ``val_loss`` and ``val_accuracy``.
        verbose : {0, 1, 2} or bool, default=0
            Progress on stderr: 0 nothing, 1 one line per epoch, 2 a progress bar (tqdm when it
            is installed), which falls back to lines when stderr is not a terminal.
        on_nonfinite : {"raise", "warn"}, default="raise"
            What a NaN or infinite loss or weight does. ``"raise"``: training stops at the first
            batch whose loss is not finite (before its update) or whose update made a weight
            not finite, the weights and the optimizer's state are rolled back to their state
            before that batch (bitwise: the epoch is replayed from a copy taken at its start),
            and :class:`TrainingDivergedError` names the epoch and the batch. ``"warn"``: a
            ``RuntimeWarning`` once per fit, and training goes on.
        validation_fraction : float in (0, 1), optional
            Hold out this fraction of (X, y) as validation data instead of passing
            ``validation_data``. The split is drawn once for the trainer, from its seed (or,
            without one, from a key drawn when it was built and kept by checkpoints), not from
            the shuffling generator: every ``fit`` on data of the same length holds out the same
            rows, so rows validated on in one call are never trained on in the next. Both parts
            are read from X in place (no copy). With ``sample_weight``, the training rows must
            keep some positive weight (``ValueError`` otherwise).
        early_stopping : int, optional
            Patience: stop when the monitored loss (``val_loss`` with validation data, else the
            training ``loss``) has not improved by more than `tol` for this many epochs.
        restore_best_weights : bool, default=False
            At the end of the call, put back the weights of the epoch with the best monitored
            loss (improvements counted as for `early_stopping`) if a later epoch is worse.
        tol : float, default=0.0
            The improvement that counts for `early_stopping`: a loss below best - tol.
        callbacks : list of callable, optional
            ``fn(epoch, logs)`` after every epoch, with the 1-based epoch of this call and
            ``logs`` the epoch's metrics (``loss``, ``lr``, ``epoch_time`` and, as recorded,
            ``accuracy``, ``val_loss``, ``val_accuracy``). The network is not locked during the
            call, so a callback may predict with it or copy its weights. Returning ``False``
            stops training after this epoch.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the rows: each batch's loss is the weighted mean
            ``sum(w_r l_r) / sum(w_r)`` over its rows (scikit-learn's convention; a batch of
            zero weights changes nothing).

        Returns
        -------
        History
            This call's epochs; ``history.stopped_early`` tells whether early stopping or a
            callback ended it before `epochs`.

        Notes
        -----
        Ctrl-C stops training within a batch or so, raising ``KeyboardInterrupt``, and leaves
        one consistent point: the end of the last completed epoch. The weights, the
        optimizer's state and step count, the shuffling generator, the epoch count and the
        schedule are put back to where they stood after that epoch, and ``trainer.history``
        holds the epochs up to it; a later ``fit`` continues exactly as if the interrupted
        epoch had never started.

        The network's lock is held one epoch at a time (its native pass and validation), so
        other threads may predict or train on the same network between two epochs; see the
        class Notes.
        """
        net = self.network
        options = check_fit_options(epochs, verbose, on_nonfinite, validation_data, validation_fraction,
                                    early_stopping, restore_best_weights, tol, callbacks)
        batch_size = check_int(self.batch_size, "batch_size", 1)
        X = check_input(X, net.n_features, net.dtype)
        y = net._check_y(y, len(X))
        weights = None if sample_weight is None else check_sample_weight(sample_weight, len(X), net.dtype)
        train_rows: Optional[NDArray[np.int64]] = None
        evaluator = None
        if options.validation_fraction is not None:
            # Both parts are read in place through row lists: X is never copied.
            train_rows, val_rows = validation_split(self.training_state, len(X), options.validation_fraction,
                                                    weights)
            evaluator = RowEvaluator(net, X, y, val_rows)
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            Xv = check_input(validation_data[0], net.n_features, net.dtype, name="X_val")
            yv = net._check_y(validation_data[1], len(Xv), name="y_val", x_name="X_val")
            evaluator = RowEvaluator(net, Xv, yv, None)
        net._params(for_update=True)
        self.optimizer._state_for(net)  # before anything changes: another network's optimizer is refused here
        runner = _LocalEpochs(self, options, X, y, weights, train_rows, evaluator, batch_size)
        self.history = History()
        return run_fit(runner, options, self.history)

    # ------------------------------------------------------------------ checkpoints and pickling

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write everything that decides how training goes on to a ``.npz`` file: the network,
        the optimizer's settings, step count and state, the schedule's state, the epoch count,
        the dropout key and the shuffling generator's state. Arrays and plain values only (no
        pickle). A path without ``.npz`` gets it appended.

        Training n epochs, saving, loading (in any process) and training m more equals training
        n + m epochs, bit for bit. The History is not saved: it belongs to one fit call.
        """
        save_checkpoint(path, self.network, self.optimizer, self.schedule, self._settings(), self.training_state)

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str]) -> Trainer:
        """Read a checkpoint written by :meth:`save_checkpoint`: a new Trainer with its own new
        Network (``trainer.network``), optimizer and schedule, ready to ``fit`` on.

        Raises
        ------
        OSError
            The file cannot be opened.
        ModelFileError (a ValueError)
            The file is not a valid checkpoint (every entry is checked before anything is built
            from it).
        """
        saved = load_checkpoint(path)
        try:
            trainer = cls(saved.network, batch_size=saved.settings["batch_size"], shuffle=saved.settings["shuffle"],
                          seed=saved.settings["seed"], optimizer=saved.optimizer, schedule=saved.schedule)
        except (TypeError, ValueError) as exc:
            raise saved.invalid(f"invalid trainer settings: {exc}") from None
        saved.restore_into(trainer.training_state)
        return trainer

    def _settings(self) -> dict[str, Any]:
        """The constructor's settings a checkpoint keeps."""
        return {"batch_size": int(self.batch_size), "shuffle": bool(self.shuffle), "seed": self.seed}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support (for joblib and multiprocessing; unpickle trusted data only): all but
        the native scratch memory, which is rebuilt on first use."""
        state = dict(self.__dict__)
        state["_ws"] = None
        return state


class _LocalEpochs(EpochRunner):
    """Trainer's epochs for the shared loop: one native call per epoch over the training rows
    (X read in place through the row order), and the validation pass."""

    def __init__(self, trainer: Trainer, options: FitOptions, X: Rows, y: NDArray[Any],
                 weights: Optional[NDArray[Any]], train_rows: Optional[NDArray[np.int64]],
                 evaluator: Optional[RowEvaluator], batch_size: int) -> None:
        net = trainer.network
        self.network, self.optimizer, self.schedule = net, trainer.optimizer, trainer.schedule
        self.state, self.shuffle = trainer.training_state, trainer.shuffle
        self.X, self.y, self.weights, self.train_rows = X, y, weights, train_rows
        self.n_rows = len(X) if train_rows is None else len(train_rows)
        self.batch_size = min(batch_size, self.n_rows)  # a batch larger than the data is the whole data
        self.ws = trainer._workspace(self.batch_size)
        self.evaluator = evaluator
        self.has_validation = evaluator is not None
        self.stop_on_nonfinite = options.on_nonfinite == "raise"
        self.W, self.b = net._params(for_update=True)

    def run_epoch(self, epoch: int, shown: int, permutation: Optional[NDArray[np.int64]],
                  start: EpochStart) -> EpochResult:
        rows = self.train_rows
        order = permutation if rows is None else (rows if permutation is None else rows[permutation])
        opt = self.optimizer
        spec = opt._spec()
        loss_sum, n_correct, n_seen, n_steps, finite = _core.train_epoch(
            self.ws, self.W, self.b, self.X, self.y, order=order, batch_size=self.batch_size, optimizer=spec,
            state=opt._state_for(self.network), stop_on_nonfinite=self.stop_on_nonfinite,
            dropout_seed=self.state.dropout_seed, epoch=epoch, sample_weight=self.weights)
        opt.steps += n_steps
        if finite is None:  # the native check runs only when the epoch reaches its last batch
            finite = _all_finite(self.W + self.b)
        if self.stop_on_nonfinite and (n_seen < self.n_rows or not finite):
            self._roll_back_and_raise(start, order, spec, n_seen, epoch, shown)
        return EpochResult(loss_sum, n_correct, n_seen, finite)

    def validate(self) -> tuple[float, float, float]:
        assert self.evaluator is not None
        loss, correct = self.evaluator(self.W, self.b)
        return loss, correct, self.evaluator.n_rows

    def _roll_back_and_raise(self, start: EpochStart, order: Optional[NDArray[np.int64]], spec: dict[str, Any],
                             n_seen: int, epoch: int, shown_epoch: int) -> None:
        """Restore the weights (and optimizer state) after the last finite batch of this epoch, then raise.

        The native loop stopped before the update of the batch at row n_seen if its loss was
        not finite. The weights it left are the state after n_seen // batch_size batches; if
        they are themselves not finite, an earlier update overflowed, and the last finite state
        is found by replaying batch prefixes from the epoch's start (bitwise the same steps:
        training is deterministic, and a prefix's batches get the same numbers and so the same
        dropout masks), bisecting on the number of batches."""
        opt, net, batch_size = self.optimizer, self.network, self.batch_size
        params = self.W + self.b
        n_batches = -(-self.n_rows // batch_size)
        rows = order if order is not None else np.arange(self.n_rows)

        def replay(k: int) -> None:  # the state after the first k batches of this epoch
            start.put_back_weights_and_optimizer()
            m = min(k * batch_size, self.n_rows)
            if m:
                _, _, _, steps, _ = _core.train_epoch(
                    self.ws, self.W, self.b, self.X, self.y, order=np.ascontiguousarray(rows[:m]),
                    batch_size=batch_size, optimizer=spec, state=opt._state_for(net), stop_on_nonfinite=False,
                    dropout_seed=self.state.dropout_seed, epoch=epoch, sample_weight=self.weights)
                opt.steps += steps

        done = n_seen // batch_size
        if not _all_finite(params):
            if not _all_finite(start.weights):
                raise TrainingDivergedError(
                    f"the weights were already NaN or infinite when epoch {shown_epoch} began; "
                    "re-initialise the network (or load a saved one)")
            lo, hi = 0, done  # after lo batches the weights are finite, after hi they are not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                replay(mid)
                if _all_finite(params):
                    lo = mid
                else:
                    hi = mid
            replay(lo)
            done = lo
        raise TrainingDivergedError(
            f"training diverged in epoch {shown_epoch}, batch {done + 1} of {n_batches}: its loss or its update was "
            f"NaN or infinite. The weights are rolled back to their state before that batch and "
            f"trainer.history holds the completed epochs. A smaller lr (now {spec['lr']:g}) or scaled inputs "
            f"usually help; fit(..., on_nonfinite='warn') trains on regardless.")
