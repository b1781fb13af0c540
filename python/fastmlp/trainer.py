"""Trainer: minibatch SGD on a Network. Each epoch is one native call (batch loop, forward,
backward and update all in C++, with scratch memory allocated once per fit); Python sees only
epoch boundaries, where it shuffles, validates, records history and prints progress."""

from __future__ import annotations

import math
import sys
import time
import warnings
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._validation import all_finite, check_int, check_positive_float, check_seed, check_X, check_y
from .network import Network


class TrainingDivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss or weights; raised by :meth:`Trainer.fit` with
    ``on_nonfinite="raise"`` after rolling the weights back to their last finite state."""


def _all_finite(arrays: list[NDArray[np.floating]]) -> bool:
    # The sum-based check of the input validation: no parameter-sized temporary per epoch.
    return all(all_finite(a) for a in arrays)


class History:
    """Per-epoch records of one :meth:`Trainer.fit` call.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch, each sample's loss taken before the update of its
        batch (so it trails the end-of-epoch loss slightly, as in Keras).
    accuracy : list of float
        Training accuracy of each epoch, measured the same way.
    val_loss, val_accuracy : list of float
        Loss and accuracy on ``validation_data`` after each epoch (empty without it).
    epoch_time : list of float
        Seconds per epoch, training and validation.
    """

    def __init__(self) -> None:
        self.loss: list[float] = []
        self.accuracy: list[float] = []
        self.val_loss: list[float] = []
        self.val_accuracy: list[float] = []
        self.epoch_time: list[float] = []

    @property
    def epochs(self) -> int:
        """int: the number of completed epochs."""
        return len(self.loss)

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.4g}" if self.loss else ""
        return f"<History: {self.epochs} epoch(s){last}>"


class Trainer:
    """Trains a :class:`Network` with minibatch stochastic gradient descent.

    Parameters
    ----------
    network : Network
        Trained in place.
    lr : float, default=0.1
        Learning rate, finite and > 0: ``W -= lr * dL/dW``, ``b -= lr * dL/db``.
    batch_size : int, default=32
        Rows per SGD step; the last batch of an epoch may be smaller.
    shuffle : bool, default=True
        Visit the rows in a new random order each epoch, drawn from ``seed``. With
        ``shuffle=False``, :meth:`fit` is exactly :meth:`step` over consecutive batches.
    seed : int or None, default=None
        Seed of the shuffling. The same network seed and trainer seed give bitwise the same
        trained weights, whatever the thread count.

    Notes
    -----
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
        lr: float = 0.1,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        if not isinstance(network, Network):
            raise TypeError(f"Trainer needs a fastmlp.Network, got {type(network).__name__}")
        self.network = network
        self.lr = check_positive_float(lr, "lr")
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        self.shuffle = bool(shuffle)
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(seed)
        self._ws: _core.Workspace | None = None

    def __repr__(self) -> str:
        return (f"Trainer({self.network!r}, lr={self.lr!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed!r})")

    def _workspace(self, rows: int) -> _core.Workspace:
        """Scratch memory for batches of `rows`, reused while the network's shape and dtype hold."""
        net = self.network
        ws = self._ws
        if ws is None or ws.max_batch < rows or ws.layer_sizes != net.layer_sizes or ws.dtype != net.dtype.name:
            ws = _core.Workspace(net.layer_sizes, rows, net.dtype.name)
            self._ws = ws
        return ws

    def step(self, X: ArrayLike, y: ArrayLike) -> float:
        """One SGD step on one batch; returns the batch's mean loss before the step.

        Parameters
        ----------
        X : array-like of shape (batch, n_features)
        y : array-like of shape (batch,) integer labels, or (batch, n_classes) distributions.
        """
        net = self.network
        lr = check_positive_float(self.lr, "lr")
        X = check_X(X, net.n_features, net.dtype)
        y = check_y(y, len(X), net.n_classes, net.dtype)
        ws = self._workspace(len(X))
        with net._locked():  # one atomic update: no other thread reads or writes mid-step
            W, b = net._params(for_update=True)
            loss_sum, _ = _core.train_batch(ws, W, b, net.activation, X, y, lr)
        return loss_sum / len(X)

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        epochs: int = 1,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        verbose: bool | int = False,
        on_nonfinite: str = "raise",
    ) -> History:
        """Train for `epochs` passes over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Converted once to the network's dtype (a C-contiguous array of that dtype is used
            as is, without a copy).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Integer labels in [0, n_classes) or target distributions.
        epochs : int, default=1
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch into ``val_loss`` and ``val_accuracy``.
        verbose : bool or int, default=False
            Print one line per epoch to stderr.
        on_nonfinite : {"raise", "warn"}, default="raise"
            What a NaN or infinite loss or weight does. ``"raise"``: training stops at the first
            batch whose loss is not finite (before its update) or whose update made a weight
            not finite, the weights are rolled back to their state before that batch (bitwise:
            the epoch is replayed from a copy taken at its start), and
            :class:`TrainingDivergedError` names the epoch and the batch. ``"warn"``: a
            ``RuntimeWarning`` once per fit, and training goes on.

        Returns
        -------
        History

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
        lr = check_positive_float(self.lr, "lr")
        batch_size = check_int(self.batch_size, "batch_size", 1)
        X = check_X(X, net.n_features, net.dtype)
        y = check_y(y, len(X), net.n_classes, net.dtype)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            Xv = check_X(validation_data[0], net.n_features, net.dtype, name="X_val")
            yv = check_y(validation_data[1], len(Xv), net.n_classes, net.dtype, name="y_val", x_name="X_val")
        W, b = net._params(for_update=True)

        n = len(X)
        batch_size = min(batch_size, n)  # a batch larger than the data is the whole data
        ws = self._workspace(batch_size)
        eval_ws = net._workspace(len(Xv)) if validation_data is not None else None
        history = History()
        self.history = history
        warned = False
        # What a divergence rolls back to (by replay): refreshed at each epoch's start, allocated once.
        start = [np.empty_like(a) for a in W + b] if on_nonfinite == "raise" else []
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            order = self._rng.permutation(n).astype(np.int64, copy=False) if self.shuffle else None
            # The lock is held per epoch, not per fit: a predict from another thread can run
            # between two epochs (and sees the weights of a whole epoch, validation included,
            # never a mix), and two fits on one network interleave whole epochs.
            with net._locked():
                for saved, a in zip(start, W + b):
                    np.copyto(saved, a)
                loss_sum, n_correct, n_seen = _core.train_epoch(ws, W, b, net.activation, X, y, order,
                                                                batch_size, lr, on_nonfinite == "raise")
                if on_nonfinite == "raise" and (n_seen < n or not _all_finite(W + b)):
                    self._roll_back_and_raise(start, ws, X, y, order, batch_size, lr, n_seen, epoch)
                if on_nonfinite == "warn" and not (math.isfinite(loss_sum) and _all_finite(W + b)) \
                        and not warned:
                    warned = True
                    warnings.warn(f"training diverged in epoch {epoch}: the loss or the weights are NaN or "
                                  "infinite; going on as on_nonfinite='warn' asks (a smaller lr usually helps)",
                                  RuntimeWarning, stacklevel=2)
                if eval_ws is not None:
                    vl, vc, _ = _core.evaluate(eval_ws, W, b, net.activation, Xv, yv, False)
            history.loss.append(loss_sum / n_seen)
            history.accuracy.append(n_correct / n_seen)
            if eval_ws is not None:
                history.val_loss.append(vl / len(Xv))
                history.val_accuracy.append(vc / len(Xv))
            history.epoch_time.append(time.perf_counter() - t0)
            if verbose:
                self._print_epoch(history, epoch, epochs)
        return history

    def _roll_back_and_raise(self, start: list[NDArray[np.floating]], ws: _core.Workspace, X: NDArray[np.floating],
                             y: NDArray[np.generic], order: Optional[NDArray[np.int64]], batch_size: int, lr: float,
                             n_seen: int, epoch: int) -> None:
        """Restore the weights after the last finite batch of this epoch, then raise.

        The native loop stopped before the update of the batch at row n_seen if its loss was
        not finite. The weights it left are the state after n_seen // batch_size batches; if
        they are themselves not finite, an earlier update overflowed, and the last finite state
        is found by replaying batch prefixes from the epoch's start (bitwise the same steps:
        training is deterministic), bisecting on the number of batches."""
        net = self.network
        W, b = net.weights, net.biases
        params = W + b
        n_batches = -(-len(X) // batch_size)
        rows = order if order is not None else np.arange(len(X))

        def replay(k: int) -> None:  # the state after the first k batches of this epoch
            for a, saved in zip(params, start):
                a[...] = saved
            m = min(k * batch_size, len(X))
            if m:
                _core.train_epoch(ws, W, b, net.activation, np.ascontiguousarray(X[rows[:m]]),
                                  np.ascontiguousarray(y[rows[:m]]), None, batch_size, lr)

        done = n_seen // batch_size
        if not _all_finite(params):
            if not _all_finite(start):
                raise TrainingDivergedError(
                    f"the weights were already NaN or infinite when epoch {epoch} began; "
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
            f"training diverged in epoch {epoch}, batch {done + 1} of {n_batches}: its loss or its update was "
            f"NaN or infinite. The weights are rolled back to their state before that batch and "
            f"trainer.history holds the completed epochs. A smaller lr (now {lr:g}) or scaled inputs "
            f"usually help; fit(..., on_nonfinite='warn') trains on regardless.")

    @staticmethod
    def _print_epoch(history: History, epoch: int, epochs: int) -> None:
        width = len(str(epochs))
        parts = [f"epoch {epoch:>{width}}/{epochs}", f"loss {history.loss[-1]:.4f}",
                 f"accuracy {history.accuracy[-1]:.4f}"]
        if history.val_loss:
            parts += [f"val_loss {history.val_loss[-1]:.4f}", f"val_accuracy {history.val_accuracy[-1]:.4f}"]
        t = history.epoch_time[-1]
        parts.append(f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")
        if not math.isfinite(history.loss[-1]):
            parts.append("(loss is not finite: lower lr?)")
        print("  ".join(parts), file=sys.stderr, flush=True)
