"""A DataParallelTrainer's epochs for the shared fit loop (fastmlp._fit_loop): the step loop
over the global batches (a gradient strategy from _steps, then the same update on every rank),
the validation sums over the ranks, and the collectives that make every rank log, stop and
fail alike. Argument checks and the loop itself are not here."""

from __future__ import annotations

import math
import zlib
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from .._fit_loop import EpochResult, EpochRunner, EpochStart, FitOptions, RowEvaluator, TrainingDivergedError
from .._sparse import Rows
from .._training_state import TrainingState
from .._validation import all_finite
from ..network import Network
from ..optim import Optimizer
from ..schedules import Schedule
from ._ranks import Ranks, describe
from ._steps import AllreduceStep, DeterministicStep, apply_update

__all__ = ["DistributedEpochs"]


class DistributedEpochs(EpochRunner):
    """One epoch = the global batches in the epoch's order, each a collective gradient and the
    same optimizer step on every rank; validation = each rank's rows, summed over the ranks."""

    def __init__(self, ranks: Ranks, net: Network, opt: Optimizer, schedule: Optional[Schedule],
                 state: TrainingState, shuffle: bool, options: FitOptions, X: Rows, y: NDArray[Any],
                 rows: Optional[NDArray[np.int64]], offsets: NDArray[np.int64], batch_size: int,
                 evaluator: Optional[RowEvaluator], deterministic_chunk_rows: Optional[int]) -> None:
        self.ranks = ranks
        self.network, self.optimizer, self.schedule, self.state, self.shuffle = net, opt, schedule, state, shuffle
        self.n_rows = int(offsets[-1])
        self.lo, self.hi = int(offsets[ranks.rank]), int(offsets[ranks.rank + 1])
        self.batch_size = min(batch_size, self.n_rows)
        self.evaluator = evaluator
        self.has_validation = evaluator is not None
        self.shows_progress = ranks.rank == 0  # progress and warnings from rank 0 only
        self.on_nonfinite = options.on_nonfinite
        self.shown = 0
        self.W, self.b = net._params(for_update=True)
        self.opt_state = opt._state_for(net)
        self.step: AllreduceStep | DeterministicStep = \
            DeterministicStep(ranks, net, X, y, rows, offsets, self.batch_size, deterministic_chunk_rows) \
            if deterministic_chunk_rows is not None else AllreduceStep(ranks, net, X, y, rows, self.batch_size)

    def run_epoch(self, epoch: int, shown: int, permutation: Optional[NDArray[np.int64]],
                  start: EpochStart) -> EpochResult:
        # The same order as Trainer.fit's, from the same generator state on every rank.
        self.shown = shown
        order = permutation if permutation is not None else np.arange(self.n_rows, dtype=np.int64)
        params = self.W + self.b
        lr = self.optimizer.lr
        loss_sum, n_correct, finite = 0.0, 0, True
        n_batches = -(-self.n_rows // self.batch_size)
        for batch_index, first in enumerate(range(0, self.n_rows, self.batch_size)):
            last = min(first + self.batch_size, self.n_rows)
            key = (self.state.dropout_seed, epoch, batch_index)  # the batch's dropout masks, as Trainer's
            grads, batch_loss, batch_correct = self.step.run(order, first, last, self.lo, self.hi, key)
            if not (math.isfinite(batch_loss) and all(all_finite(g) for g in grads)):
                finite = False
                if self.on_nonfinite == "raise":
                    raise TrainingDivergedError(
                        f"training diverged in epoch {shown}, batch {batch_index + 1} of {n_batches}: its loss or "
                        f"gradient was NaN or infinite (on every rank). The weights are those before that batch "
                        f"and trainer.history holds the completed epochs. A smaller lr (now {lr:g}) or scaled "
                        "inputs usually help; fit(..., on_nonfinite='warn') trains on regardless.")
            apply_update(self.network, self.optimizer, params, grads, self.opt_state)
            loss_sum += batch_loss
            n_correct += batch_correct
        if self.on_nonfinite == "raise" and not all(all_finite(a) for a in params):
            # Identical weights on every rank: every rank takes this branch together.
            start.put_back_weights_and_optimizer()
            raise TrainingDivergedError(
                f"training diverged in epoch {shown}: an update made a weight NaN or infinite. The weights "
                f"are rolled back to the start of that epoch. A smaller lr (now {lr:g}) usually helps.")
        return EpochResult(loss_sum, n_correct, self.n_rows, finite)

    def validate(self) -> tuple[float, float, float]:
        """Each rank's part (possibly empty), the sums added over the ranks."""
        sums = np.zeros(3)
        error: Optional[BaseException] = None
        if self.evaluator is not None and self.evaluator.n_rows:
            try:
                loss, correct = self.evaluator(self.W, self.b)
                sums[:] = loss, correct, self.evaluator.n_rows
            except Exception as exc:  # carried into the collective, so no rank waits alone
                error = exc
        self.ranks.raise_if_any_failed(error, f"evaluating its validation rows in epoch {self.shown}")
        MPI = self.ranks.MPI
        self.ranks.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        return float(sums[0]), float(sums[1]), float(sums[2])

    def agree_on_logs(self, logs: dict[str, float]) -> dict[str, float]:
        agreed: dict[str, float] = self.ranks.comm.bcast(logs, root=0)
        return agreed

    def agree_to_stop(self, shown: int, error: Optional[BaseException], asked: bool) -> bool:
        """A callback failing on any rank fails all; one asking to stop on any rank stops all.
        The weights' checksums are compared on the way: they must be bitwise equal."""
        reports = self.ranks.comm.allgather((None if error is None else describe(error), asked,
                                             self.weights_checksum()))
        self.ranks.raise_reports([r[0] for r in reports], error, f"in a callback after epoch {shown}")
        if len({r[2] for r in reports}) != 1:
            raise RuntimeError(f"the ranks' weights differ after epoch {shown} (checksums "
                               f"{[r[2] for r in reports]}); the MPI library's allreduce gave the ranks "
                               "different sums. Use deterministic=True, which cannot differ.")
        return any(r[1] for r in reports)

    def weights_checksum(self) -> int:
        crc = 0
        for a in self.W + self.b:
            crc = zlib.crc32(np.ascontiguousarray(a).data, crc)
        return crc
