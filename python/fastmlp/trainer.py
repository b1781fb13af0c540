"""Trainer: minibatch training of a Network with an optimizer (fastmlp.optim) and an optional
learning-rate schedule (fastmlp.schedules). Each epoch is one native call (batch loop, forward,
backward and update all in C++, with scratch memory allocated once per fit); Python sees only
epoch boundaries, where it shuffles, steps the schedule, validates, records history and prints
progress."""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._validation import (
    all_finite,
    check_int,
    check_nonnegative_float,
    check_positive_float,
    check_sample_weight,
    check_seed,
    check_X,
)
from ._progress import Progress, check_verbose
from .history import History
from ._forward import evaluate_rows
from .network import Network
from .optim import SGD, Optimizer
from .schedules import Schedule


class TrainingDivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss or weights; raised by :meth:`Trainer.fit` with
    ``on_nonfinite="raise"`` after rolling the weights back to their last finite state."""


def _all_finite(arrays: list[NDArray[np.floating]]) -> bool:
    # The sum-based check of the input validation: no parameter-sized temporary per epoch.
    return all(all_finite(a) for a in arrays)


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
        ``AdamW`` or ``RMSprop``. Its state (momentum, moments) persists across :meth:`fit`
        calls; it belongs to this network.
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
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        self.shuffle = bool(shuffle)
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(seed)
        # The dropout masks' key: the seed itself, or fresh entropy without one (drawn apart
        # from _rng so that dropout never changes the shuffling order).
        # The native key is 64 bits wide: a larger seed is folded into it.
        self._dropout_seed = self.seed % 2**64 if self.seed is not None else \
            int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        self._epochs_done = 0  # across fits: numbers the dropout masks of each epoch
        self._single_steps = 0  # step() calls: their masks use epoch 0 and this batch number
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
        X = check_X(X, net.n_features, net.dtype)
        y = net._check_y(y, len(X))
        weights = None if sample_weight is None else check_sample_weight(sample_weight, len(X), net.dtype)
        ws = self._workspace(len(X))
        opt = self.optimizer
        with net._locked():  # one atomic update: no other thread reads or writes mid-step
            W, b = net._params(for_update=True)
            loss_sum, _ = _core.train_batch(ws, W, b, X, y, opt._spec(), opt._state_for(net),
                                            self._dropout_seed, 0, self._single_steps, weights)
            opt.steps += 1
            self._single_steps += 1
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
            ``validation_data``: a random split drawn from the trainer's seeded generator once
            per call, the held-out rows never trained on.
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
        Ctrl-C stops training after the batch in progress, raising ``KeyboardInterrupt``; the
        network then holds the weights after the last completed batch (all finite, usable),
        and ``trainer.history`` the epochs completed before the interrupt.

        The network's lock is held one epoch at a time (its native pass and validation), so
        other threads may predict or train on the same network between two epochs; see the
        class Notes.
        """
        net = self.network
        if on_nonfinite not in ("raise", "warn"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {on_nonfinite!r}")
        epochs = check_int(epochs, "epochs", 1)
        batch_size = check_int(self.batch_size, "batch_size", 1)
        verbose = check_verbose(verbose)
        patience = None if early_stopping is None else check_int(early_stopping, "early_stopping", 1)
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise TypeError(f"restore_best_weights must be True or False, got {restore_best_weights!r}")
        tol = check_nonnegative_float(tol, "tol")
        callbacks = list(callbacks) if callbacks is not None else []
        for fn in callbacks:
            if not callable(fn):
                raise TypeError(f"callbacks must be callables fn(epoch, logs), got {fn!r}")
        X = check_X(X, net.n_features, net.dtype)
        y = net._check_y(y, len(X))
        weights = None
        if sample_weight is not None:
            weights = check_sample_weight(sample_weight, len(X), net.dtype)
        if validation_fraction is not None:
            if validation_data is not None:
                raise ValueError("pass either validation_data or validation_fraction, not both")
            fraction = check_positive_float(validation_fraction, "validation_fraction")
            if fraction >= 1:
                raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
            n_val = int(np.ceil(fraction * len(X)))
            if n_val >= len(X):
                raise ValueError(f"validation_fraction={fraction:g} of {len(X)} samples leaves none to train on")
            split = self._rng.permutation(len(X))
            val_rows, train_rows = np.sort(split[:n_val]), np.sort(split[n_val:])
            validation_data = (X[val_rows], y[val_rows])
            X, y = np.ascontiguousarray(X[train_rows]), np.ascontiguousarray(y[train_rows])
            if weights is not None:
                weights = np.ascontiguousarray(weights[train_rows])
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            Xv = check_X(validation_data[0], net.n_features, net.dtype, name="X_val")
            yv = net._check_y(validation_data[1], len(Xv), name="y_val", x_name="X_val")
        W, b = net._params(for_update=True)
        opt = self.optimizer
        state = opt._state_for(net)  # before anything changes: a foreign optimizer is refused here
        classifier = net.output != "identity"

        n = len(X)
        batch_size = min(batch_size, n)  # a batch larger than the data is the whole data
        ws = self._workspace(batch_size)
        eval_ws = net._eval_workspace(len(Xv)) if validation_data is not None else None
        schedule = self.schedule
        if schedule is not None and not schedule.started:
            schedule.start(opt.lr)  # a later fit continues the schedule where it stands
        history = History()
        history.stopped_early = False
        self.history = history
        warned = False
        # What a divergence rolls back to (by replay): refreshed at each epoch's start, allocated once.
        start = [np.empty_like(a) for a in W + b] if on_nonfinite == "raise" else []
        best_loss, best_at, best_weights, waited = math.inf, 0, None, 0
        with Progress(epochs, verbose) as progress:
            for shown in range(1, epochs + 1):
                progress.epoch_start(shown)
                t0 = time.perf_counter()
                epoch = self._epochs_done + 1
                if schedule is not None:
                    opt.lr = schedule.lr
                order = self._rng.permutation(n).astype(np.int64, copy=False) if self.shuffle else None
                # The lock is held per epoch, not per fit: a predict from another thread can run
                # between two epochs (and sees the weights of a whole epoch, validation included,
                # never a mix), and two fits on one network interleave whole epochs.
                with net._locked():
                    for saved, a in zip(start, W + b):
                        np.copyto(saved, a)
                    opt_start = opt._snapshot() if on_nonfinite == "raise" else None
                    spec = opt._spec()
                    loss_sum, n_correct, n_seen, n_steps, finite = _core.train_epoch(
                        ws, W, b, X, y, order, batch_size, spec, state, on_nonfinite == "raise",
                        self._dropout_seed, epoch, weights)
                    opt.steps += n_steps
                    self._epochs_done = epoch
                    if finite is None:  # the native check runs only when the epoch reaches its last batch
                        finite = _all_finite(W + b)
                    if on_nonfinite == "raise" and (n_seen < n or not finite):
                        assert opt_start is not None
                        self._roll_back_and_raise(start, opt_start, ws, X, y, weights, order, batch_size, spec,
                                                  n_seen, epoch, shown)
                    if on_nonfinite == "warn" and not (math.isfinite(loss_sum) and finite) \
                            and not warned:
                        warned = True
                        warnings.warn(f"training diverged in epoch {shown}: the loss or the weights are NaN or "
                                      "infinite; going on as on_nonfinite='warn' asks (a smaller lr usually helps)",
                                      RuntimeWarning, stacklevel=2)
                    if eval_ws is not None:
                        vl, vc, _ = evaluate_rows(eval_ws, W, b, Xv, yv, False)
                logs = {"loss": loss_sum / n_seen}
                if classifier:
                    logs["accuracy"] = n_correct / n_seen
                if eval_ws is not None:
                    logs["val_loss"] = vl / len(Xv)
                    if classifier:
                        logs["val_accuracy"] = vc / len(Xv)
                logs["lr"] = spec["lr"]
                monitored = logs["val_loss"] if eval_ws is not None else logs["loss"]
                if schedule is not None:
                    schedule.step(monitored)
                logs["epoch_time"] = time.perf_counter() - t0
                history.append(**logs)
                progress.epoch_end(shown, logs)
                if math.isfinite(monitored) and monitored < best_loss - tol:
                    best_loss, best_at, waited = monitored, shown, 0
                    if restore_best_weights:
                        with net._locked():
                            best_weights = [a.copy() for a in W + b]
                else:
                    waited += 1
                stop = patience is not None and waited >= patience
                for fn in callbacks:  # every callback sees every epoch, even after one asked to stop
                    if fn(shown, dict(logs)) is False:
                        stop = True
                if stop and shown < epochs:
                    history.stopped_early = True
                    break
        if restore_best_weights and best_weights is not None and best_at != history.epochs:
            with net._locked():
                for a, saved in zip(W + b, best_weights):
                    np.copyto(a, saved)
        return history

    # ------------------------------------------------------------------ checkpoints and pickling

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write everything that decides how training goes on to a ``.npz`` file: the network,
        the optimizer's settings, step count and state, the schedule's state, the epoch count,
        the dropout key and the shuffling generator's state. Arrays and plain values only (no
        pickle). A path without ``.npz`` gets it appended.

        Training n epochs, saving, loading (in any process) and training m more equals training
        n + m epochs, bit for bit. The History is not saved: it belongs to one fit call.
        """
        from ._checkpoint import save_checkpoint

        save_checkpoint(self, path)

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
        from ._checkpoint import load_checkpoint

        return load_checkpoint(cls, path)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support (for joblib and multiprocessing; unpickle trusted data only): all but
        the native scratch memory, which is rebuilt on first use."""
        state = dict(self.__dict__)
        state["_ws"] = None
        return state

    def _roll_back_and_raise(self, start: list[NDArray[np.floating[Any]]], opt_start: Any, ws: _core.Workspace,
                             X: NDArray[np.floating[Any]], y: NDArray[Any], weights: Optional[NDArray[Any]],
                             order: Optional[NDArray[np.int64]],
                             batch_size: int, spec: dict[str, Any], n_seen: int, epoch: int, shown_epoch: int) -> None:
        """Restore the weights (and optimizer state) after the last finite batch of this epoch, then raise.

        The native loop stopped before the update of the batch at row n_seen if its loss was
        not finite. The weights it left are the state after n_seen // batch_size batches; if
        they are themselves not finite, an earlier update overflowed, and the last finite state
        is found by replaying batch prefixes from the epoch's start (bitwise the same steps:
        training is deterministic, and a prefix's batches get the same numbers and so the same
        dropout masks), bisecting on the number of batches."""
        net = self.network
        opt = self.optimizer
        W, b = net.weights, net.biases
        params = W + b
        n_batches = -(-len(X) // batch_size)
        rows = order if order is not None else np.arange(len(X))

        def replay(k: int) -> None:  # the state after the first k batches of this epoch
            for a, saved in zip(params, start):
                a[...] = saved
            opt._restore(opt_start)
            m = min(k * batch_size, len(X))
            if m:
                _, _, _, steps, _ = _core.train_epoch(
                    ws, W, b, np.ascontiguousarray(X[rows[:m]]), np.ascontiguousarray(y[rows[:m]]), None,
                    batch_size, spec, opt._state_for(net), False, self._dropout_seed, epoch,
                    None if weights is None else np.ascontiguousarray(weights[rows[:m]]))
                opt.steps += steps

        done = n_seen // batch_size
        if not _all_finite(params):
            if not _all_finite(start):
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
