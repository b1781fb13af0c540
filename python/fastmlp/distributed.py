"""Data-parallel training over MPI: :class:`DataParallelTrainer` trains one network on data
sharded over the ranks of an MPI communicator, and gives the weights that
:class:`fastmlp.Trainer` gives in one process on the concatenated shards.

Each rank computes the gradient sums of its rows of a global batch natively, one allreduce
combines them, and every rank applies the same optimizer step to its copy of the weights.
Python drives the step loop here (one native gradient call and one allreduce per batch); the
single-process Trainer's one-native-call-per-epoch loop cannot stop for a collective. Sample
weights are not supported yet (see the class Notes). Needs ``mpi4py``
(``pip install "fastmlp[mpi]"``), imported only when a DataParallelTrainer is built.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._progress import Progress, check_verbose
from ._validation import (
    all_finite,
    check_int,
    check_nonnegative_float,
    check_positive_float,
    check_seed,
    check_X,
)
from .history import History
from .network import Network
from .optim import Optimizer
from .schedules import Schedule
from .trainer import Trainer, TrainingDivergedError

__all__ = ["DataParallelTrainer", "RankFailedError"]

_INSTALL_HINT = ('fastmlp.distributed needs mpi4py and an MPI library: pip install "fastmlp[mpi]" '
                 "(with OpenMPI or MPICH installed, e.g. apt-get install openmpi-bin libopenmpi-dev)")


def _import_mpi() -> Any:
    """mpi4py's MPI module, imported on first use so that ``import fastmlp`` never needs MPI."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return MPI


class RankFailedError(RuntimeError):
    """Another rank raised an exception; raised on every rank that did not, so that no rank is
    left waiting in a collective. The failing rank raises its own exception.

    Attributes
    ----------
    rank : int
        The lowest rank that failed.
    exception_type : str
        The name of its exception's type (``"ValueError"``...).
    """

    def __init__(self, message: str, rank: int, exception_type: str) -> None:
        super().__init__(message)
        self.rank = rank
        self.exception_type = exception_type


def _describe(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


class _Ranks:
    """The collectives of one DataParallelTrainer, each entered by every rank (never skipped by
    one rank alone: an exception is carried into the collective and raised after it)."""

    def __init__(self, comm: Any) -> None:
        self.MPI = _import_mpi()
        if not isinstance(comm, self.MPI.Intracomm):
            raise TypeError(f"comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, "
                            f"got {type(comm).__name__}")
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()

    def raise_if_any_failed(self, error: Optional[BaseException], while_doing: str) -> None:
        """Collective: if any rank passes an exception, every rank raises (the failing rank its
        own exception, the others RankFailedError naming it)."""
        reports = self.comm.allgather(None if error is None else _describe(error))
        self._raise_reports(reports, error, while_doing)

    def _raise_reports(self, reports: Sequence[Optional[tuple[str, str]]], error: Optional[BaseException],
                       while_doing: str) -> None:
        failed = [(r, rep) for r, rep in enumerate(reports) if rep is not None]
        if not failed:
            return
        if error is not None:
            raise error
        rank, (type_name, message) = failed[0]
        others = f" (ranks {[r for r, _ in failed]} failed)" if len(failed) > 1 else ""
        raise RankFailedError(f"rank {rank} of {self.size} failed {while_doing}{others}: {type_name}: {message}",
                              rank, type_name)

    def same_on_all_ranks(self, value: Any, what: str) -> None:
        """Collective: ValueError on every rank unless `value` (a picklable description of a
        setting) is equal on all ranks."""
        values = self.comm.allgather(value)
        differing = [r for r, v in enumerate(values) if v != values[0]]
        if differing:
            raise ValueError(f"{what} must be the same on every rank: rank 0 has {values[0]!r}, rank "
                             f"{differing[0]} has {values[differing[0]]!r}")


class DataParallelTrainer:
    """Trains a :class:`~fastmlp.Network` on data sharded over the ranks of an MPI communicator.

    Every rank builds the same network and trainer and calls :meth:`fit` with its own shard::

        from mpi4py import MPI
        net = fastmlp.Network([784, 256, 10], seed=0)
        tr = DataParallelTrainer(net, optimizer=fastmlp.optim.Adam(), batch_size=256,
                                 comm=MPI.COMM_WORLD, seed=0)
        tr.fit(X_shard, y_shard, epochs=10)

    and is started with ``mpirun -n 4 python train.py``. The result is the training that
    :class:`fastmlp.Trainer` (same arguments) does in one process on the concatenation of the
    shards in rank order: the same global batches, the same updates, the weights equal to
    rounding (bitwise with ``deterministic=True`` between any two rank counts; see Notes).

    Parameters
    ----------
    network : Network
        Trained in place on every rank. Rank 0's weights (and optimizer state) are broadcast to
        the others at the start of every :meth:`fit`, so the ranks need not build it with the
        same seed; its shape, dtype and activations must match.
    lr : float, optional
        Learning rate of plain SGD, as in :class:`~fastmlp.Trainer`; not together with
        ``optimizer``.
    batch_size : int, default=32
        Rows per step summed over all ranks (the global batch, as in a single-process run);
        each rank computes the rows of a batch it holds, on average ``batch_size / comm.size``.
    shuffle : bool, default=True
        Visit the global rows in a new order each epoch, drawn from ``seed`` identically on
        every rank. With ``shuffle=False`` a batch is a run of consecutive global rows, so most
        batches fall on a single rank and the others wait: keep it for tests.
    seed : int or None, default=None
        Seed of the shuffling, as in :class:`~fastmlp.Trainer`; must be the same on every rank.
        ``None`` uses a seed drawn on rank 0 and broadcast.
    optimizer : fastmlp.optim.Optimizer, optional
        As in :class:`~fastmlp.Trainer`; the same kind and settings on every rank.
    schedule : fastmlp.schedules.Schedule, optional
        As in :class:`~fastmlp.Trainer`, stepped on every rank with rank 0's metric.
    comm : mpi4py.MPI.Intracomm, optional
        The ranks that train together (default ``MPI.COMM_WORLD``). Every rank of it must build
        a DataParallelTrainer and call the same methods in the same order.
    deterministic : bool, default=False
        Make the reduction independent of the number of ranks, so that the trained weights are
        bitwise the same on 1, 2, 3, ... ranks (and in every run). Each batch is cut into
        chunks of ``deterministic_chunk_rows`` consecutive rows of the global order, the rows
        are sent to the rank that computes their chunk, and the chunks' gradients are added as
        64-bit fixed-point integers (exact, so the order of the additions cannot matter).
        Costs two row exchanges and a second (tiny) allreduce per step, and the integer
        buffer is 8 bytes per value.
    deterministic_chunk_rows : int, default=32
        Rows per chunk with ``deterministic=True``; part of the result (a different value gives
        other rounding), and the unit of load balance (a batch of ``batch_size`` rows has
        ``ceil(batch_size / deterministic_chunk_rows)`` chunks to share among the ranks).

    Attributes
    ----------
    network, optimizer, schedule, batch_size, shuffle, seed
        As in :class:`~fastmlp.Trainer`.
    comm : mpi4py.MPI.Intracomm
    rank, size : int
        This process's rank and the number of ranks.
    history : History
        The records of the last :meth:`fit` (rank 0's numbers, the same on every rank).

    Notes
    -----
    **The global dataset** is the concatenation of the shards in rank order (sizes exchanged at
    the start of :meth:`fit`); the permutation of an epoch is drawn over it from the trainer's
    generator exactly as :class:`~fastmlp.Trainer` draws it, so the global batch sequence does
    not depend on the number of ranks. A rank with no rows in a batch contributes zeros.

    **Exactness.** Each rank computes the gradient of the mean loss over its rows of a batch
    (one native call), scales it by its share of the batch's rows, and the allreduce sums the
    shares. This is the single-process gradient with the sums over the rows grouped
    differently: after training the weights agree with :class:`~fastmlp.Trainer`'s to about
    1e-12 relative in float64 and to float32 rounding (amplified by training) in float32. All
    ranks hold bitwise the same weights: they apply the same update to the same bits, and a
    checksum of the weights is compared across ranks after every epoch (``RuntimeError`` if
    they ever differ).

    **Validation** (``validation_data`` per rank, or ``validation_fraction`` of the global
    rows drawn as :class:`~fastmlp.Trainer` draws it) is evaluated on each rank's part, the
    sums are added over the ranks, and rank 0's metrics are broadcast: the schedule, early
    stopping, ``restore_best_weights`` and the callbacks see the same numbers on every rank,
    so all ranks stop at the same epoch. Callbacks run on every rank; one returning ``False``
    on any rank stops all.

    **Failures.** A rank whose arguments or shard are bad (wrong width, NaN, labels out of
    range, target kinds or label sets that differ between ranks), or that raises during a
    step or a callback, makes every rank raise: the failing rank its own exception, the others
    :class:`RankFailedError`, at the next collective instead of waiting in it forever. A NaN
    or infinite loss stops every rank with :class:`~fastmlp.TrainingDivergedError` before the
    batch's update; an update that overflows a weight rolls the weights back to the start of
    the epoch (the single-process Trainer rolls back to the batch). Exceptions raised outside
    the trainer's calls are the script's: start it with ``mpirun ... python -m mpi4py
    train.py`` so that an uncaught exception on one rank aborts them all.

    **Dropout** draws the masks one process would draw: each row's masks are keyed by its
    position in the global batch (passed down to the native kernel), not in the rank's share.

    **Not supported yet**: ``sample_weight``.

    **Checkpoints**: :meth:`save_checkpoint` writes :meth:`Trainer.save_checkpoint`'s format
    from rank 0; :meth:`load_checkpoint` reads it on any number of ranks (and
    ``fastmlp.Trainer.load_checkpoint`` continues it in one process).
    """

    history: History

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
        comm: Any = None,
        deterministic: bool = False,
        deterministic_chunk_rows: int = 32,
    ) -> None:
        ranks = _Ranks(_import_mpi().COMM_WORLD if comm is None else comm)
        error: Optional[BaseException] = None
        trainer = None
        try:
            seed = check_seed(seed)
            trainer = Trainer(network, lr, batch_size, shuffle, seed=0 if seed is None else seed,
                              optimizer=optimizer, schedule=schedule)
            self._check_options(network, deterministic, deterministic_chunk_rows)
        except Exception as exc:  # carried into the collective below, so no rank waits alone
            error = exc
        ranks.raise_if_any_failed(error, "building its DataParallelTrainer")
        assert trainer is not None
        # Before any collective that only some ranks would enter: a seed of None on one rank
        # and an int on another must fail on all of them, not hang in the broadcast below.
        ranks.same_on_all_ranks(seed, "seed")
        if seed is None:
            # Every rank must shuffle alike: rank 0's fresh seed, shared.
            drawn = int(np.random.SeedSequence().generate_state(2, np.uint64)[0]) if ranks.rank == 0 else None
            trainer = Trainer(network, lr, batch_size, shuffle, seed=ranks.comm.bcast(drawn, root=0),
                              optimizer=optimizer, schedule=schedule)
        self._setup(trainer, ranks, bool(deterministic), int(deterministic_chunk_rows))

    @staticmethod
    def _check_options(network: Network, deterministic: object, chunk_rows: object) -> None:
        if not isinstance(deterministic, (bool, np.bool_)):
            raise TypeError(f"deterministic must be True or False, got {deterministic!r}")
        check_int(chunk_rows, "deterministic_chunk_rows", 1)

    def _setup(self, trainer: Trainer, ranks: _Ranks, deterministic: bool, chunk_rows: int) -> None:
        self._trainer = trainer
        self._ranks = ranks
        self.deterministic = deterministic
        self.deterministic_chunk_rows = chunk_rows
        net, opt = trainer.network, trainer.optimizer
        ranks.same_on_all_ranks(
            (net.layer_sizes, net.activations, net.output, net.dtype.name, net.dropout), "the network's architecture")
        ranks.same_on_all_ranks((opt.kind, opt._config()), "the optimizer")
        sched = trainer.schedule
        ranks.same_on_all_ranks(None if sched is None else (type(sched).__name__, repr(sched)), "the schedule")
        ranks.same_on_all_ranks((trainer.batch_size, trainer.shuffle, trainer.seed, deterministic, chunk_rows),
                                "(batch_size, shuffle, seed, deterministic, deterministic_chunk_rows)")

    # ------------------------------------------------------------------ the Trainer's attributes

    network = property(lambda self: self._trainer.network, doc="Network: the network trained in place.")
    optimizer = property(lambda self: self._trainer.optimizer, doc="Optimizer: the optimizer in use.")
    schedule = property(lambda self: self._trainer.schedule, doc="Schedule or None.")
    batch_size = property(lambda self: self._trainer.batch_size, doc="int: the global batch size.")
    shuffle = property(lambda self: self._trainer.shuffle, doc="bool: whether each epoch reshuffles.")
    seed = property(lambda self: self._trainer.seed, doc="int: the shuffling seed (rank 0's when None was passed).")
    comm = property(lambda self: self._ranks.comm, doc="mpi4py.MPI.Intracomm: the ranks training together.")
    rank = property(lambda self: self._ranks.rank, doc="int: this process's rank in comm.")
    size = property(lambda self: self._ranks.size, doc="int: the number of ranks.")

    @property
    def lr(self) -> float:
        """float: the optimizer's learning rate."""
        return self._trainer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._trainer.lr = value

    def __repr__(self) -> str:
        t = self._trainer
        return (f"DataParallelTrainer({t.network!r}, optimizer={t.optimizer!r}, batch_size={t.batch_size}, "
                f"shuffle={t.shuffle}, seed={t.seed!r}"
                + (f", schedule={t.schedule!r}" if t.schedule is not None else "")
                + f", ranks={self.size}, deterministic={self.deterministic})")

    # ------------------------------------------------------------------ state shared from rank 0

    def _broadcast_state_from_rank0(self) -> None:
        """Collective: every rank takes rank 0's weights, optimizer state and step count,
        shuffling generator, epoch count and schedule state."""
        t, comm = self._trainer, self._ranks.comm
        net, opt = t.network, t.optimizer
        small = comm.bcast({
            "rng": t._rng.bit_generator.state, "epochs_done": t._epochs_done, "steps": opt.steps, "lr": opt.lr,
            "has_state": opt.state is not None,
            "schedule": None if t.schedule is None or not t.schedule.started else t.schedule.state_dict(),
        }, root=0)
        t._rng.bit_generator.state = small["rng"]
        t._epochs_done = small["epochs_done"]
        opt.steps, opt.lr = small["steps"], small["lr"]
        if small["schedule"] is not None and t.schedule is not None:
            t.schedule.load_state_dict(small["schedule"])
        with net._locked():
            W, b = net._params(for_update=True)
            arrays = list(W + b)
            if small["has_state"]:
                arrays += [a for buffers in opt._state_for(net) for a in buffers]
            for a in arrays:
                comm.Bcast(a, root=0)

    # ------------------------------------------------------------------ fit

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
        check_label_sets: bool = True,
    ) -> History:
        """Train for up to `epochs` passes over the global dataset; collective (every rank calls
        it, with its own shard).

        Parameters
        ----------
        X : array-like of shape (n_rows_on_this_rank, n_features)
            This rank's shard; the global dataset is the concatenation of the shards in rank
            order. Every rank needs at least one row.
        y : array-like
            The targets of this rank's rows, as for :meth:`Trainer.fit`; the same kind on every
            rank (integer labels, or target arrays of one width).
        epochs, verbose, on_nonfinite, early_stopping, restore_best_weights, tol
            As in :meth:`Trainer.fit`, and the same on every rank; progress is printed by rank
            0 only.
        validation_data : tuple (X_val, y_val), optional
            This rank's part of the validation data (any number of rows, zero included: pass
            ``X_val`` of shape (0, n_features)); losses and counts are summed over the ranks.
            Every rank passes it, or none.
        validation_fraction : float in (0, 1), optional
            Hold out this fraction of the *global* rows, drawn as :meth:`Trainer.fit` draws
            it; each rank keeps the held-out rows of its shard as its validation part.
        callbacks : list of callable, optional
            ``fn(epoch, logs)`` after every epoch, on every rank, with rank 0's logs. Returning
            ``False`` on any rank stops every rank after this epoch.
        check_label_sets : bool, default=True
            For a softmax network trained on integer labels, require every rank's shard to hold
            the same set of classes: a class missing on one rank usually means that the labels
            were encoded per shard (e.g. ``np.unique`` on each rank), which silently mixes up
            classes. Pass ``False`` for shards that legitimately miss classes.

        Returns
        -------
        History
            The same on every rank.

        Raises
        ------
        RankFailedError
            On every rank but the failing one, when another rank raised.
        TrainingDivergedError
            On every rank, at a NaN or infinite loss (see the class Notes).
        """
        ranks, t = self._ranks, self._trainer
        net = t.network
        # --- 1. Each rank checks its arguments and its shard; any failure stops all ranks.
        error: Optional[BaseException] = None
        summary: Any = None
        X_arr: Optional[NDArray[Any]] = None
        y_arr: Optional[NDArray[Any]] = None
        try:
            args = self._check_fit_arguments(epochs, verbose, on_nonfinite, validation_fraction, early_stopping,
                                             restore_best_weights, tol, callbacks, check_label_sets)
            X_arr = check_X(X, net.n_features, net.dtype)
            y_arr = net._check_y(y, len(X_arr))
            Xv = yv = None
            if validation_data is not None:
                if validation_fraction is not None:
                    raise ValueError("pass either validation_data or validation_fraction, not both")
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise ValueError("validation_data must be a tuple (X_val, y_val)")
                Xv, yv = self._check_validation_part(validation_data)
            summary = (len(X_arr), y_arr.ndim, y_arr.dtype.kind, y_arr.shape[1:], self._classes_present(y_arr),
                       validation_data is None)
        except Exception as exc:
            error = exc
        ranks.raise_if_any_failed(error, "checking its arguments or its shard")
        assert X_arr is not None and y_arr is not None
        summaries = ranks.comm.allgather(summary)
        # verbose and callbacks may differ (progress on rank 0 only; callbacks need not pickle).
        ranks.same_on_all_ranks({k: v for k, v in args.items() if k not in ("verbose", "callbacks")},
                                "the arguments of fit (epochs, on_nonfinite, validation_fraction, "
                                "early_stopping, restore_best_weights, tol, check_label_sets)")
        self._check_shards_agree(summaries, args["check_label_sets"])
        self._broadcast_state_from_rank0()

        sizes = np.array([s[0] for s in summaries], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        if args["validation_fraction"] is not None:
            X_arr, y_arr, Xv, yv, offsets = self._split_validation(X_arr, y_arr, offsets, args["validation_fraction"])
        return self._train(X_arr, y_arr, Xv, yv, offsets, args)

    def _check_fit_arguments(self, epochs: object, verbose: object, on_nonfinite: object,
                             validation_fraction: object, early_stopping: object, restore_best_weights: object,
                             tol: object, callbacks: object, check_label_sets: object) -> dict[str, Any]:
        if on_nonfinite not in ("raise", "warn"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {on_nonfinite!r}")
        for name, flag in (("restore_best_weights", restore_best_weights), ("check_label_sets", check_label_sets)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        fraction = None
        if validation_fraction is not None:
            fraction = check_positive_float(validation_fraction, "validation_fraction")
            if fraction >= 1:
                raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
        fns = list(callbacks) if callbacks is not None else []  # type: ignore[call-overload]
        for fn in fns:
            if not callable(fn):
                raise TypeError(f"callbacks must be callables fn(epoch, logs), got {fn!r}")
        return {
            "epochs": check_int(epochs, "epochs", 1),
            "verbose": check_verbose(verbose),
            "on_nonfinite": on_nonfinite,
            "validation_fraction": fraction,
            "patience": None if early_stopping is None else check_int(early_stopping, "early_stopping", 1),
            "restore_best_weights": bool(restore_best_weights),
            "tol": check_nonnegative_float(tol, "tol"),
            "check_label_sets": bool(check_label_sets),
            "callbacks": fns,
        }

    def _check_validation_part(self, validation_data: Any) -> tuple[NDArray[Any], NDArray[Any]]:
        """This rank's validation rows, which unlike a training shard may be empty."""
        net = self._trainer.network
        if np.shape(validation_data[0]) == (0, net.n_features):
            return np.empty((0, net.n_features), net.dtype), np.empty(0, np.int64)
        Xv = check_X(validation_data[0], net.n_features, net.dtype, name="X_val")
        yv = net._check_y(validation_data[1], len(Xv), name="y_val", x_name="X_val")
        return Xv, yv

    def _classes_present(self, y: NDArray[Any]) -> Optional[tuple[int, ...]]:
        net = self._trainer.network
        if net.output != "softmax" or y.ndim != 1:
            return None
        return tuple(int(c) for c in np.flatnonzero(np.bincount(y, minlength=net.n_outputs)))

    def _check_shards_agree(self, summaries: list[Any], check_label_sets: bool) -> None:
        """ValueError on every rank when the shards' targets differ in kind or label set, or
        validation data is passed on some ranks only (every rank sees the same `summaries`)."""
        kinds = [(s[1], s[2], s[3]) for s in summaries]

        def describe(kind: tuple[Any, ...]) -> str:
            ndim, dtype_kind, tail = kind
            return "integer labels of shape (n,)" if dtype_kind == "i" else f"real targets of shape (n, {tail[0]})" \
                if ndim == 2 else "real targets of shape (n,)"

        for r, kind in enumerate(kinds):
            if kind != kinds[0]:
                raise ValueError(f"the shards' targets differ: rank 0 gives {describe(kinds[0])}, rank {r} gives "
                                 f"{describe(kind)}; give every rank the same kind of y")
        if check_label_sets:
            for r, s in enumerate(summaries):
                if s[4] != summaries[0][4]:
                    first, this = set(summaries[0][4]), set(s[4])
                    raise ValueError(
                        f"the shards hold different label sets: rank 0 has classes {sorted(first)}, rank {r} has "
                        f"{sorted(this)} (missing {sorted(first - this)}, extra {sorted(this - first)}). Labels "
                        "encoded per shard mix classes up; encode them once for all ranks, or pass "
                        "check_label_sets=False if some shards legitimately lack classes")
        without = [r for r, s in enumerate(summaries) if s[5]]
        if without and len(without) != len(summaries):
            raise ValueError(f"validation_data must be passed on every rank or on none; ranks {without} passed none "
                             "(give a rank without validation rows an X_val of shape (0, n_features))")

    def _split_validation(self, X: NDArray[Any], y: NDArray[Any], offsets: NDArray[np.int64],
                          fraction: float) -> tuple[Any, ...]:
        """Trainer.fit's split, drawn over the global rows; each rank keeps its own rows of
        both parts, so the global training set is again the concatenation in rank order."""
        t, ranks = self._trainer, self._ranks
        n_total = int(offsets[-1])
        n_val = int(np.ceil(fraction * n_total))
        if n_val >= n_total:
            raise ValueError(f"validation_fraction={fraction:g} of {n_total} samples leaves none to train on")
        split = t._rng.permutation(n_total)
        lo, hi = int(offsets[ranks.rank]), int(offsets[ranks.rank + 1])
        is_val = np.zeros(n_total, dtype=bool)
        is_val[split[:n_val]] = True
        mine = is_val[lo:hi]
        train_sizes = np.array([int((~is_val[offsets[r]:offsets[r + 1]]).sum()) for r in range(ranks.size)])
        new_offsets = np.concatenate([[0], np.cumsum(train_sizes)]).astype(np.int64)
        return (np.ascontiguousarray(X[~mine]), np.ascontiguousarray(y[~mine]),
                np.ascontiguousarray(X[mine]), np.ascontiguousarray(y[mine]), new_offsets)

    # ------------------------------------------------------------------ the epoch loop

    def _train(self, X: NDArray[Any], y: NDArray[Any], Xv: Optional[NDArray[Any]], yv: Optional[NDArray[Any]],
               offsets: NDArray[np.int64], args: dict[str, Any]) -> History:
        t, ranks = self._trainer, self._ranks
        comm = ranks.comm
        net, opt = t.network, t.optimizer
        W, b = net._params(for_update=True)
        params = W + b
        state = opt._state_for(net)
        n_total = int(offsets[-1])
        lo, hi = int(offsets[ranks.rank]), int(offsets[ranks.rank + 1])
        batch_size = min(t.batch_size, n_total)
        classifier = net.output != "identity"
        step = _DeterministicStep(self, X, y, offsets, batch_size) if self.deterministic else \
            _AllreduceStep(self, X, y, batch_size)
        has_val = Xv is not None
        eval_ws = net._eval_workspace(max(1, len(Xv))) if Xv is not None else None
        schedule = t.schedule
        if schedule is not None and not schedule.started:
            schedule.start(opt.lr)
        history = History()
        history.stopped_early = False
        self.history = history
        warned = False
        epoch_start = [np.empty_like(a) for a in params]
        best_loss, best_at, best_weights, waited = math.inf, 0, None, 0
        epochs, patience, tol = args["epochs"], args["patience"], args["tol"]
        with Progress(epochs, args["verbose"] if ranks.rank == 0 else 0) as progress:
            for shown in range(1, epochs + 1):
                progress.epoch_start(shown)
                t0 = time.perf_counter()
                epoch = t._epochs_done + 1
                if schedule is not None:
                    opt.lr = schedule.lr
                # The same draw as Trainer.fit, from the same generator state on every rank.
                order = t._rng.permutation(n_total).astype(np.int64, copy=False) if t.shuffle else \
                    np.arange(n_total, dtype=np.int64)
                for saved, a in zip(epoch_start, params):
                    np.copyto(saved, a)
                opt_start = opt._snapshot()
                lr = opt.lr
                loss_sum, n_correct = 0.0, 0
                for batch_index, start in enumerate(range(0, n_total, batch_size)):
                    stop = min(start + batch_size, n_total)
                    key = (t._dropout_seed, epoch, batch_index)  # the batch's dropout masks, as Trainer's
                    grads, batch_loss, batch_correct = step.run(order, start, stop, lo, hi, key)
                    if not (math.isfinite(batch_loss) and all(all_finite(g) for g in grads)):
                        if args["on_nonfinite"] == "raise":
                            t._epochs_done = epoch
                            raise TrainingDivergedError(
                                f"training diverged in epoch {shown}, batch {batch_index + 1} of "
                                f"{-(-n_total // batch_size)}: its loss or gradient was NaN or infinite (on every "
                                f"rank). The weights are those before that batch and trainer.history holds the "
                                f"completed epochs. A smaller lr (now {lr:g}) or scaled inputs usually help; "
                                "fit(..., on_nonfinite='warn') trains on regardless.")
                        if not warned and ranks.rank == 0:
                            warnings.warn(f"training diverged in epoch {shown}: the loss or the gradient is NaN or "
                                          "infinite; going on as on_nonfinite='warn' asks (a smaller lr usually helps)",
                                          RuntimeWarning, stacklevel=2)
                        warned = True
                    self._apply_update(params, grads, state)
                    loss_sum += batch_loss
                    n_correct += batch_correct
                t._epochs_done = epoch
                if args["on_nonfinite"] == "raise" and not all(all_finite(a) for a in params):
                    # Identical weights on every rank: every rank takes this branch together.
                    for a, saved in zip(params, epoch_start):
                        np.copyto(a, saved)
                    opt._restore(opt_start)
                    raise TrainingDivergedError(
                        f"training diverged in epoch {shown}: an update made a weight NaN or infinite. The weights "
                        f"are rolled back to the start of that epoch. A smaller lr (now {lr:g}) usually helps.")

                # --- epoch end: metrics summed over the ranks, then rank 0's logs for everyone.
                val_sums = np.zeros(3)
                error: Optional[BaseException] = None
                if eval_ws is not None and Xv is not None and len(Xv):
                    try:
                        with net._locked():
                            vl, vc, _ = _core.evaluate(eval_ws, W, b, Xv, yv, False)
                        val_sums[:] = vl, vc, len(Xv)
                    except Exception as exc:
                        error = exc
                ranks.raise_if_any_failed(error, f"evaluating its validation rows in epoch {shown}")
                if has_val:
                    comm.Allreduce(self._ranks.MPI.IN_PLACE, val_sums, op=self._ranks.MPI.SUM)
                logs = {"loss": loss_sum / n_total}
                if classifier:
                    logs["accuracy"] = n_correct / n_total
                if has_val:
                    logs["val_loss"] = val_sums[0] / val_sums[2] if val_sums[2] else math.nan
                    if classifier:
                        logs["val_accuracy"] = val_sums[1] / val_sums[2] if val_sums[2] else math.nan
                logs["lr"] = lr
                logs["epoch_time"] = time.perf_counter() - t0
                logs = comm.bcast(logs, root=0)
                monitored = logs["val_loss"] if has_val else logs["loss"]
                if schedule is not None:
                    schedule.step(monitored)
                history.append(**logs)
                progress.epoch_end(shown, logs)
                if math.isfinite(monitored) and monitored < best_loss - tol:
                    best_loss, best_at, waited = monitored, shown, 0
                    if args["restore_best_weights"]:
                        best_weights = [a.copy() for a in params]
                else:
                    waited += 1
                stop_here = patience is not None and waited >= patience
                asked_to_stop, error = False, None
                try:
                    for fn in args["callbacks"]:
                        if fn(shown, dict(logs)) is False:
                            asked_to_stop = True
                except Exception as exc:
                    error = exc
                reports = comm.allgather((None if error is None else _describe(error), asked_to_stop,
                                          self._weights_checksum()))
                ranks._raise_reports([r[0] for r in reports], error, f"in a callback after epoch {shown}")
                if len({r[2] for r in reports}) != 1:
                    raise RuntimeError(f"the ranks' weights differ after epoch {shown} (checksums "
                                       f"{[r[2] for r in reports]}); the MPI library's allreduce gave the ranks "
                                       "different sums. Use deterministic=True, which cannot differ.")
                if (stop_here or any(r[1] for r in reports)) and shown < epochs:
                    history.stopped_early = True
                    break
        if args["restore_best_weights"] and best_weights is not None and best_at != history.epochs:
            with net._locked():
                for a, saved in zip(params, best_weights):
                    np.copyto(a, saved)
        return history

    def _apply_update(self, params: list[NDArray[Any]], grads: list[NDArray[Any]],
                      state: list[list[NDArray[Any]]]) -> None:
        """One optimizer step on every parameter (W_1, ..., W_L, b_1, ..., b_L order of
        `params`), the same native rule Trainer uses; weight decay on weights only."""
        t = self._trainer
        opt, net = t.optimizer, t.network
        spec = opt._spec()
        decay = float(spec.get("weight_decay", 0.0))
        n_layers = len(params) // 2
        with net._locked():
            for i, (p, g) in enumerate(zip(params, grads)):
                layer, is_bias = i % n_layers, i >= n_layers
                # The optimizer's state is ordered W_1, b_1, W_2, b_2, ...
                _core.optimizer_update(p, g, state[2 * layer + int(is_bias)], spec, 0.0 if is_bias else decay)
        opt.steps += 1

    def _weights_checksum(self) -> int:
        crc = 0
        for a in self._trainer.network.weights + self._trainer.network.biases:
            crc = zlib.crc32(np.ascontiguousarray(a).data, crc)
        return crc

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write the training state in :meth:`Trainer.save_checkpoint`'s format, from rank 0
        (on the other ranks this does nothing, so it may be called on every rank or on rank 0
        alone). The state is global: the file loads on any number of ranks."""
        if self._ranks.rank == 0:
            self._trainer.save_checkpoint(path)

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], comm: Any = None, *, deterministic: bool = False,
                        deterministic_chunk_rows: int = 32) -> DataParallelTrainer:
        """Collective: read a checkpoint (of a DataParallelTrainer on any number of ranks, or of
        a :class:`~fastmlp.Trainer`) on rank 0 and build the same trainer on every rank.

        Only rank 0 reads `path` (the ranks need no shared file system); the bytes are
        broadcast. Errors (``OSError``, ``ModelFileError``) are raised on rank 0 and as
        :class:`RankFailedError` on the others.
        """
        ranks = _Ranks(_import_mpi().COMM_WORLD if comm is None else comm)
        data, error = None, None
        if ranks.rank == 0:
            try:
                name = str(path) if os.path.exists(path) or not os.path.exists(str(path) + ".npz") \
                    else str(path) + ".npz"
                with open(name, "rb") as f:
                    data = f.read()
            except Exception as exc:
                error = exc
        ranks.raise_if_any_failed(error, f"reading the checkpoint {str(path)!r}")
        data = ranks.comm.bcast(data, root=0)
        trainer, error = None, None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = os.path.join(tmp, "checkpoint.npz")
                with open(local, "wb") as f:
                    f.write(data)
                trainer = Trainer.load_checkpoint(local)
            cls._check_options(trainer.network, deterministic, deterministic_chunk_rows)
        except Exception as exc:
            error = exc
        ranks.raise_if_any_failed(error, f"loading the checkpoint {str(path)!r}")
        assert trainer is not None
        self = cls.__new__(cls)
        self._setup(trainer, ranks, bool(deterministic), int(deterministic_chunk_rows))
        return self


class _AllreduceStep:
    """One step's gradient: this rank's share computed natively, summed over the ranks by one
    allreduce of a flat buffer (plus a 3-value one for the loss, the correct count and a
    failure flag, started first so that both are in flight together)."""

    def __init__(self, owner: DataParallelTrainer, X: NDArray[Any], y: NDArray[Any], batch_size: int) -> None:
        t = owner._trainer
        net = t.network
        self.owner, self.X, self.y = owner, X, y
        self.ranks = owner._ranks
        self.batch_size = batch_size
        W, b = net._params(for_update=True)
        self.W, self.b = W, b
        self.flat = np.zeros(sum(a.size for a in W + b), dtype=net.dtype)
        bounds = np.cumsum([0] + [a.size for a in W + b])
        # Views into the flat buffer in the order of W + b: what the optimizer reads.
        self.grads = [self.flat[s:e].reshape(a.shape) for s, e, a in zip(bounds[:-1], bounds[1:], W + b)]
        self.scalars = np.zeros(3)
        max_rows = max(1, min(batch_size, len(X)))
        self.ws = net._workspace(max_rows, training=True)
        self.X_rows = np.empty((max_rows, X.shape[1]), dtype=X.dtype)
        self.y_rows = np.empty((max_rows,) + y.shape[1:], dtype=y.dtype)
        self.local: Optional[tuple[NDArray[np.int64], NDArray[np.int64]]] = None
        self.order_id: Optional[int] = None

    def _local_rows(self, order: NDArray[np.int64], lo: int, hi: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(positions in the epoch's order of this rank's rows, their local row numbers), once per epoch."""
        if self.order_id != id(order) or self.local is None:
            positions = np.flatnonzero((order >= lo) & (order < hi))
            self.local = (positions, order[positions] - lo)
            self.order_id = id(order)
        return self.local

    def run(self, order: NDArray[np.int64], start: int, stop: int, lo: int, hi: int,
            key: tuple[int, int, int]) -> tuple[list[NDArray[Any]], float, int]:
        MPI = self.ranks.MPI
        positions, rows = self._local_rows(order, lo, hi)
        first, last = np.searchsorted(positions, [start, stop])
        mine = rows[first:last]
        # Each row's place in the global batch: it keys the row's dropout masks, so a rank draws
        # exactly the masks one process would draw for that row.
        in_batch = positions[first:last] - start
        error: Optional[BaseException] = None
        self.scalars[:] = 0.0
        try:
            if len(mine):
                X_rows = np.take(self.X, mine, axis=0, out=self.X_rows[:len(mine)])
                y_rows = np.take(self.y, mine, axis=0, out=self.y_rows[:len(mine)])
                with self.owner._trainer.network._locked():
                    loss, correct, layer_grads = _core.gradients(self.ws, self.W, self.b, X_rows, y_rows, True,
                                                                 *key, None, in_batch)
                # The mean over this rank's rows, weighted by its share: the allreduce's sum is the
                # gradient of the mean over the whole batch.
                share = len(mine) / (stop - start)
                n_layers = len(layer_grads)
                for k, (dW, db) in enumerate(layer_grads):
                    np.multiply(dW, share, out=self.grads[k])
                    np.multiply(db, share, out=self.grads[n_layers + k])
                self.scalars[:2] = loss, correct
            else:
                self.flat[:] = 0
        except Exception as exc:  # joins the allreduce anyway, flagged, so no rank waits alone
            error = exc
            self.flat[:] = 0
            self.scalars[:] = 0.0, 0.0, 1.0
        comm = self.ranks.comm
        requests = [comm.Iallreduce(MPI.IN_PLACE, self.scalars, op=MPI.SUM),
                    comm.Iallreduce(MPI.IN_PLACE, self.flat, op=MPI.SUM)]
        MPI.Request.Waitall(requests)
        if self.scalars[2] or error is not None:
            self.ranks.raise_if_any_failed(error, "computing its gradient")
        return self.grads, float(self.scalars[0]), int(round(self.scalars[1]))


class _DeterministicStep:
    """One step's gradient, bitwise independent of the number of ranks.

    The batch (positions start..stop of the epoch's order) is cut into chunks of
    ``deterministic_chunk_rows`` consecutive positions; chunk j is computed by rank
    ``j * size // n_chunks``, which first receives the chunk's rows from the ranks holding
    them (Alltoallv). A chunk's gradient then depends on its rows only. Each is scaled to its
    share of the batch and converted to 64-bit integers on a grid of 2^-s per parameter array,
    s chosen from the largest magnitude over all chunks (an allreduce of maxima) so that the sum
    over the chunks cannot overflow; integer sums are exact, so one integer allreduce gives
    every rank the same bits whatever the grouping.
    """

    def __init__(self, owner: DataParallelTrainer, X: NDArray[Any], y: NDArray[Any], offsets: NDArray[np.int64],
                 batch_size: int) -> None:
        t = owner._trainer
        net = t.network
        self.owner, self.X, self.y, self.offsets = owner, X, y, offsets
        self.ranks = owner._ranks
        self.chunk_rows = owner.deterministic_chunk_rows
        self.dtype = net.dtype
        W, b = net._params(for_update=True)
        self.W, self.b = W, b
        self.shapes = [a.shape for a in W + b]
        self.sizes = [a.size for a in W + b]
        self.bounds = np.cumsum([0] + self.sizes)
        n_params = int(self.bounds[-1])
        # Layout: the parameters (W + b order), then the loss, then the correct count.
        self.ints = np.zeros(n_params + 2, dtype=np.int64)
        self.ws = net._workspace(min(batch_size, self.chunk_rows), training=True)
        self.row_width = X.shape[1]
        self.y_width = int(np.prod(y.shape[1:], dtype=np.int64))

    def _exchange(self, send: NDArray[Any], send_counts: NDArray[np.int64], recv_counts: NDArray[np.int64],
                  width: int, tail: tuple[int, ...]) -> NDArray[Any]:
        comm = self.ranks.comm
        recv = np.empty((int(recv_counts.sum()),) + tail, dtype=send.dtype)
        s_displ = np.concatenate([[0], np.cumsum(send_counts)[:-1]]) * width
        r_displ = np.concatenate([[0], np.cumsum(recv_counts)[:-1]]) * width
        comm.Alltoallv([np.ascontiguousarray(send).reshape(-1), (send_counts * width, s_displ)],
                       [recv.reshape(-1), (recv_counts * width, r_displ)])
        return recv

    def run(self, order: NDArray[np.int64], start: int, stop: int, lo: int, hi: int,
            key: tuple[int, int, int]) -> tuple[list[NDArray[Any]], float, int]:
        ranks, MPI = self.ranks, self.ranks.MPI
        size, rank = ranks.size, ranks.rank
        n_rows = stop - start
        global_rows = order[start:stop]
        holder = np.searchsorted(self.offsets, global_rows, side="right") - 1
        chunk = np.arange(n_rows) // self.chunk_rows
        n_chunks = int(chunk[-1]) + 1
        computer = chunk * size // n_chunks  # contiguous runs of chunks per rank, balanced

        # Rows this rank holds go, in position order, to the rank computing their chunk.
        held = np.flatnonzero(holder == rank)
        to = computer[held]
        by_destination = held[np.argsort(to, kind="stable")]
        send_counts = np.bincount(to, minlength=size).astype(np.int64)
        mine = np.flatnonzero(computer == rank)  # positions (in the batch) this rank computes
        recv_counts = np.bincount(holder[mine], minlength=size).astype(np.int64)
        local = global_rows[by_destination] - lo
        X_recv = self._exchange(self.X[local], send_counts, recv_counts, self.row_width, self.X.shape[1:])
        y_recv = self._exchange(self.y[local], send_counts, recv_counts, self.y_width, self.y.shape[1:])
        # Received grouped by source rank, each group in position order: back to position order.
        arrival = np.argsort(holder[mine], kind="stable")
        X_rows = np.empty_like(X_recv)
        y_rows = np.empty_like(y_recv)
        X_rows[arrival] = X_recv
        y_rows[arrival] = y_recv

        n_arrays = len(self.sizes)
        maxima = np.zeros(n_arrays + 3)  # per array, the loss, then flags: failed, not finite
        chunk_results = []
        error: Optional[BaseException] = None
        try:
            net = self.owner._trainer.network
            my_chunks = np.unique(chunk[mine]) if len(mine) else np.empty(0, np.int64)
            first_position = mine[0] if len(mine) else 0
            finite = True
            for j in my_chunks:
                a = int(j * self.chunk_rows - first_position)
                e = min(a + self.chunk_rows, len(mine))
                with net._locked():  # positions mine[a:e] in the batch key the rows' dropout masks
                    loss, correct, layer_grads = _core.gradients(self.ws, self.W, self.b,
                                                                 np.ascontiguousarray(X_rows[a:e]),
                                                                 np.ascontiguousarray(y_rows[a:e]), True, *key, None,
                                                                 np.ascontiguousarray(mine[a:e], dtype=np.int64))
                share = (e - a) / n_rows
                arrays = [dW for dW, _ in layer_grads] + [db for _, db in layer_grads]
                scaled = [np.asarray(g, dtype=np.float64) * share for g in arrays]
                chunk_results.append((scaled, float(loss), int(correct)))
                if not (math.isfinite(loss) and all(all_finite(g) for g in scaled)):
                    finite = False  # flagged on its own: a NaN would drop out of max()
                    continue
                for i, g in enumerate(scaled):
                    if g.size:
                        maxima[i] = max(maxima[i], float(np.abs(g).max()))
                maxima[n_arrays] = max(maxima[n_arrays], loss)
            if not finite:
                maxima[:n_arrays + 1] = 0.0
                maxima[n_arrays + 2] = 1.0
        except Exception as exc:
            error = exc
            maxima[:] = 0.0
            maxima[n_arrays + 1] = 1.0
        ranks.comm.Allreduce(MPI.IN_PLACE, maxima, op=MPI.MAX)
        if maxima[n_arrays + 1]:
            ranks.raise_if_any_failed(error, "computing its gradient")
        if maxima[n_arrays + 2]:  # some chunk's loss or gradient is not finite: as in one process, NaN
            return [np.full(s, np.nan, dtype=self.dtype) for s in self.shapes], math.nan, 0

        # Grid exponents: |value| * 2^s < 2^(61 - headroom), so n_chunks of them sum below 2^61.
        headroom = (n_chunks - 1).bit_length()
        exponents = [61 - headroom - math.frexp(m)[1] if m > 0 else 0 for m in maxima[:n_arrays + 1]]
        ints = self.ints
        ints[:] = 0
        for scaled, loss, correct in chunk_results:
            for i, g in enumerate(scaled):
                ints[self.bounds[i]:self.bounds[i + 1]] += np.rint(np.ldexp(g.reshape(-1), exponents[i])).astype(np.int64)
            ints[-2] += int(np.rint(math.ldexp(loss, exponents[n_arrays])))
            ints[-1] += correct
        ranks.comm.Allreduce(MPI.IN_PLACE, ints, op=MPI.SUM)
        grads = [np.ldexp(ints[self.bounds[i]:self.bounds[i + 1]].astype(np.float64), -exponents[i])
                 .astype(self.dtype).reshape(self.shapes[i]) for i in range(n_arrays)]
        return grads, math.ldexp(float(ints[-2]), -exponents[n_arrays]), int(ints[-1])
