"""The two ways a DataParallelTrainer computes one step's gradient over the ranks: one
allreduce of each rank's share (AllreduceStep), or a grouping of the rows into fixed chunks
added as integers so that the bits do not depend on the rank count (DeterministicStep); and
the optimizer update every rank then applies. The epoch loop and the checks live elsewhere.
Each rank reads its rows of X in place (through `rows`, its training rows, when a validation
split holds some out), gathering only a batch's rows at a time; X is a dense array or sparse
rows (CsrRows), which _rows.py gathers and exchanges alike."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from .. import _core
from .._sparse import CsrRows, Rows
from .._validation import all_finite
from ..network import Network
from ..optim import Optimizer
from ._ranks import Ranks
from ._rows import RowGather, exchange, exchange_rows, take_rows

__all__ = ["AllreduceStep", "DeterministicStep", "apply_update"]


def apply_update(net: Network, opt: Optimizer, params: list[NDArray[Any]], grads: list[NDArray[Any]],
                 state: list[list[NDArray[Any]]]) -> None:
    """One optimizer step on every parameter (W_1, ..., W_L, b_1, ..., b_L order of
    `params`), the same native rule Trainer uses; weight decay on weights only."""
    spec = opt._spec()
    decay = float(spec.get("weight_decay", 0.0))
    n_layers = len(params) // 2
    with net._locked():
        for i, (p, g) in enumerate(zip(params, grads)):
            layer, is_bias = i % n_layers, i >= n_layers
            # The optimizer's state is ordered W_1, b_1, W_2, b_2, ...
            _core.optimizer_update(p, g, state[2 * layer + int(is_bias)], optimizer=spec,
                                   weight_decay=0.0 if is_bias else decay)
    opt.steps += 1


class AllreduceStep:
    """One step's gradient: this rank's share computed natively, summed over the ranks by one
    allreduce of a flat buffer (plus a 3-value one for the loss, the correct count and a
    failure flag, started first so that both are in flight together)."""

    def __init__(self, ranks: Ranks, net: Network, X: Rows, y: NDArray[Any],
                 rows: Optional[NDArray[np.int64]], batch_size: int) -> None:
        self.net, self.X, self.y, self.rows = net, X, y, rows
        self.ranks = ranks
        self.batch_size = batch_size
        W, b = net._params(for_update=True)
        self.W, self.b = W, b
        self.flat = np.zeros(sum(a.size for a in W + b), dtype=net.dtype)
        bounds = np.cumsum([0] + [a.size for a in W + b])
        # Views into the flat buffer in the order of W + b: what the optimizer reads.
        self.grads = [self.flat[s:e].reshape(a.shape) for s, e, a in zip(bounds[:-1], bounds[1:], W + b)]
        self.scalars = np.zeros(3)
        max_rows = max(1, min(batch_size, len(X) if rows is None else len(rows)))
        self.ws = net._workspace(max_rows, training=True)
        self.gather = RowGather(X, max_rows)
        self.y_rows = np.empty((max_rows,) + y.shape[1:], dtype=y.dtype)
        self.local: Optional[tuple[NDArray[np.int64], NDArray[np.int64]]] = None
        # The order the cache is for, held (not its id: a freed order's id can come back).
        self.order: Optional[NDArray[np.int64]] = None

    def _local_rows(self, order: NDArray[np.int64], lo: int, hi: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(positions in the epoch's order of this rank's rows, their local row numbers), once per epoch."""
        if self.order is not order or self.local is None:
            positions = np.flatnonzero((order >= lo) & (order < hi))
            local = order[positions] - lo  # among this rank's training rows; in X through self.rows
            self.local = (positions, local if self.rows is None else self.rows[local])
            self.order = order
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
                X_rows = self.gather(mine)
                y_rows = np.take(self.y, mine, axis=0, out=self.y_rows[:len(mine)])
                with self.net._locked():
                    loss, correct, layer_grads = _core.gradients(
                        self.ws, self.W, self.b, X_rows, y_rows, training=True, dropout_seed=key[0], epoch=key[1],
                        batch_index=key[2], sample_weight=None, dropout_rows=in_batch)
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
        return self.grads, float(self.scalars[0]), round(self.scalars[1])


class DeterministicStep:
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

    def __init__(self, ranks: Ranks, net: Network, X: Rows, y: NDArray[Any],
                 rows: Optional[NDArray[np.int64]], offsets: NDArray[np.int64], batch_size: int,
                 chunk_rows: int) -> None:
        self.net, self.X, self.y, self.rows, self.offsets = net, X, y, rows, offsets
        self.ranks = ranks
        self.chunk_rows = chunk_rows
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
        local = global_rows[by_destination] - lo  # among this rank's training rows
        if self.rows is not None:
            local = self.rows[local]  # ... and so in X
        comm = ranks.comm
        X_recv = exchange_rows(comm, take_rows(self.X, local), send_counts, recv_counts)
        y_recv = exchange(comm, self.y[local], send_counts, recv_counts)
        # Received grouped by source rank, each group in position order: back to position order
        # (the row at position `arrival[i]` is the i-th received).
        arrival = np.argsort(holder[mine], kind="stable")
        received = np.empty_like(arrival)
        received[arrival] = np.arange(len(arrival))
        X_rows = take_rows(X_recv, received)
        y_rows = np.take(y_recv, received, axis=0)

        n_arrays = len(self.sizes)
        maxima = np.zeros(n_arrays + 3)  # per array, the loss, then flags: failed, not finite
        chunk_results = []
        error: Optional[BaseException] = None
        try:
            net = self.net
            my_chunks = np.unique(chunk[mine]) if len(mine) else np.empty(0, np.int64)
            first_position = mine[0] if len(mine) else 0
            finite = True
            for j in my_chunks:
                a = int(j * self.chunk_rows - first_position)
                e = min(a + self.chunk_rows, len(mine))
                # Row slices: contiguous arrays, or a CSR view spanning the chunk's nonzeros only.
                X_chunk = X_rows[a:e] if isinstance(X_rows, CsrRows) else np.ascontiguousarray(X_rows[a:e])
                with net._locked():  # positions mine[a:e] in the batch key the rows' dropout masks
                    loss, correct, layer_grads = _core.gradients(
                        self.ws, self.W, self.b, X_chunk, np.ascontiguousarray(y_rows[a:e]),
                        training=True, dropout_seed=key[0], epoch=key[1], batch_index=key[2], sample_weight=None,
                        dropout_rows=np.ascontiguousarray(mine[a:e], dtype=np.int64))
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
                rounded = np.rint(np.ldexp(g.reshape(-1), exponents[i]))
                ints[self.bounds[i]:self.bounds[i + 1]] += rounded.astype(np.int64)
            ints[-2] += int(np.rint(math.ldexp(loss, exponents[n_arrays])))
            ints[-1] += correct
        ranks.comm.Allreduce(MPI.IN_PLACE, ints, op=MPI.SUM)
        grads = [np.ldexp(ints[self.bounds[i]:self.bounds[i + 1]].astype(np.float64), -exponents[i])
                 .astype(self.dtype).reshape(self.shapes[i]) for i in range(n_arrays)]
        return grads, math.ldexp(float(ints[-2]), -exponents[n_arrays]), int(ints[-1])
