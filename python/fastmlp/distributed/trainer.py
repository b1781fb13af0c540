"""DataParallelTrainer: data-parallel training over MPI of one network on data sharded over
the ranks of a communicator, giving the weights that :class:`fastmlp.Trainer` gives in one
process on the concatenated shards. This module holds the trainer's settings, its checks and
checkpoints; the epochs run through the shared fit loop (fastmlp._fit_loop) with the steps of
_epochs.py and _steps.py. mpi4py is imported only when a trainer is built.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._fit_loop import RowEvaluator, check_fit_options, run_fit
from .._sparse import CsrRows, Rows, check_input
from .._validation import check_bool, check_int, check_seed
from ..history import History
from ..network import Network
from ..optim import Optimizer
from ..schedules import Schedule
from ..trainer import Trainer
from ._epochs import DistributedEpochs
from ._ranks import Ranks, import_mpi
from ._shards import ShardSummary, check_shards_agree, check_validation_part, classes_present, split_shards

__all__ = ["DataParallelTrainer"]


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

    **Sparse shards**: ``X`` (and ``validation_data``) may be scipy.sparse matrices, as for
    :class:`~fastmlp.Trainer`; each rank gathers its rows of a batch into a compact CSR of those
    rows and the first layer runs over their nonzeros. The weights equal those of training on
    the densified shards (float64 to about 1e-12). Every rank's shard is then sparse.

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
        ranks = Ranks(import_mpi().COMM_WORLD if comm is None else comm)
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
        check_bool(deterministic, "deterministic")
        check_int(chunk_rows, "deterministic_chunk_rows", 1)

    def _setup(self, trainer: Trainer, ranks: Ranks, deterministic: bool, chunk_rows: int) -> None:
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
        net, opt, state = t.network, t.optimizer, t.training_state
        small = comm.bcast({
            "rng": state.rng_state(), "epochs_done": state.epochs_done, "steps": opt.steps, "lr": opt.lr,
            "has_state": opt.state is not None,
            "schedule": None if t.schedule is None or not t.schedule.started else t.schedule.state_dict(),
        }, root=0)
        state.set_rng_state(small["rng"])
        state.epochs_done = small["epochs_done"]
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
        X : array-like or scipy.sparse matrix of shape (n_rows_on_this_rank, n_features)
            This rank's shard; the global dataset is the concatenation of the shards in rank
            order. Every rank needs at least one row. A sparse shard (CSR read in place;
            other formats converted once, as :meth:`Trainer.fit` takes them) runs the first
            layer over its nonzeros; then every rank's shard must be sparse.
        y : array-like
            The targets of this rank's rows, as for :meth:`Trainer.fit`; the same kind on every
            rank (integer labels, or target arrays of one width).
        epochs, verbose, on_nonfinite, early_stopping, restore_best_weights, tol
            As in :meth:`Trainer.fit`, and the same on every rank; progress is printed by rank
            0 only.
        validation_data : tuple (X_val, y_val), optional
            This rank's part of the validation data (any number of rows, zero included: pass
            ``X_val`` of shape (0, n_features)), dense or sparse; losses and counts are summed
            over the ranks.
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
        summary: Optional[ShardSummary] = None
        X_arr: Optional[Rows] = None
        y_arr: Optional[NDArray[Any]] = None
        Xv = yv = None
        try:
            options = check_fit_options(epochs, verbose, on_nonfinite, validation_data, validation_fraction,
                                        early_stopping, restore_best_weights, tol, callbacks)
            label_sets = check_bool(check_label_sets, "check_label_sets")
            # Dense, or sparse (scipy.sparse, checked into CsrRows: a malformed structure is a
            # ValueError here, carried to every rank like any other bad shard).
            X_arr = check_input(X, net.n_features, net.dtype)
            y_arr = net._check_y(y, len(X_arr))
            if validation_data is not None:
                Xv, yv = check_validation_part(net, validation_data)
            summary = ShardSummary(len(X_arr), y_arr.ndim, y_arr.dtype.kind, y_arr.shape[1:],
                                   classes_present(net, y_arr), validation_data is None,
                                   isinstance(X_arr, CsrRows))
        except Exception as exc:
            error = exc
        ranks.raise_if_any_failed(error, "checking its arguments or its shard")
        assert X_arr is not None and y_arr is not None
        summaries: list[ShardSummary] = ranks.comm.allgather(summary)
        # verbose and callbacks may differ (progress on rank 0 only; callbacks need not pickle).
        ranks.same_on_all_ranks({**options.comparable(), "check_label_sets": label_sets},
                                "the arguments of fit (epochs, on_nonfinite, validation_fraction, "
                                "early_stopping, restore_best_weights, tol, check_label_sets)")
        check_shards_agree(summaries, label_sets)
        self._broadcast_state_from_rank0()

        offsets = np.concatenate([[0], np.cumsum([s.n_rows for s in summaries])]).astype(np.int64)
        rows = None
        evaluator = None if Xv is None or yv is None else RowEvaluator(net, Xv, yv, None)
        if options.validation_fraction is not None:
            # Both parts of the shard are read in place through row lists (no copy of X).
            split = split_shards(t.training_state, offsets, ranks.rank, options.validation_fraction)
            rows, offsets = split.train_rows, split.train_offsets
            evaluator = RowEvaluator(net, X_arr, y_arr, split.val_rows)
        runner = DistributedEpochs(ranks, net, t.optimizer, t.schedule, t.training_state, t.shuffle, options,
                                   X_arr, y_arr, rows, offsets, t.batch_size, evaluator,
                                   self.deterministic_chunk_rows if self.deterministic else None)
        self.history = History()
        return run_fit(runner, options, self.history)

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
        ranks = Ranks(import_mpi().COMM_WORLD if comm is None else comm)
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
