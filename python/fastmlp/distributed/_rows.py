"""A shard's rows as a distributed step reads them, dense or sparse alike: a batch's rows
gathered into buffers allocated once (RowGather), any rows gathered into new arrays in a given
order (take_rows), and rows sent between ranks (exchange_rows, for the deterministic step).

Sparse rows (fastmlp._sparse.CsrRows) are gathered into a compact CSR of those rows only,
never into a row list over the whole shard: the native call checks the structure of every
stored value its X spans (cpp/bindings/sparse.hpp), so a row list over the shard would cost a
pass over all of the shard's nonzeros at every step; a compact batch costs its own nonzeros."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._sparse import CsrRows, Rows

__all__ = ["RowGather", "exchange", "exchange_rows", "take_rows"]


def _positions(X: CsrRows, rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Rows of the view X as rows of its arrays (X.rows maps them when it lists rows)."""
    return rows if X.rows is None else X.rows[rows]


def _lengths(X: CsrRows) -> NDArray[np.int64]:
    """Stored values per row of the view X."""
    lengths = np.diff(X.indptr)
    return lengths if X.rows is None else lengths[X.rows]


def _gather_csr(X: CsrRows, rows: NDArray[np.int64], data: NDArray[Any], indices: NDArray[np.int64],
                indptr: NDArray[np.int64]) -> CsrRows:
    """Rows `rows` of X, in that order, as a compact CSR written into the front of the given
    buffers (large enough). Each row keeps its stored values in their order, so a native
    call sums them as it would in X itself."""
    at = _positions(X, rows)
    starts = X.indptr[at]
    lengths = X.indptr[at + 1] - starts
    n = len(rows)
    indptr[0] = 0
    np.cumsum(lengths, out=indptr[1:n + 1])
    nnz = int(indptr[n])
    # Source of stored value p of the gathered rows: its row's start in X plus its place in the row.
    source = np.repeat(starts - indptr[:n], lengths) + np.arange(nnz, dtype=np.int64)
    np.take(X.indices, source, out=indices[:nnz])
    np.take(X.data, source, out=data[:nnz])
    return CsrRows(data[:nnz], indices[:nnz], indptr[:n + 1], (n, X.shape[1]))


def take_rows(X: Rows, rows: NDArray[np.int64]) -> Rows:
    """Rows `rows` of X in that order, in new arrays (C-contiguous, or a compact CSR)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not isinstance(X, CsrRows):
        return np.take(X, rows, axis=0)
    nnz = int(_lengths(X)[rows].sum())
    return _gather_csr(X, rows, np.empty(nnz, X.dtype), np.empty(nnz, np.int64), np.empty(len(rows) + 1, np.int64))


class RowGather:
    """Gathers up to `max_rows` rows of X per call into buffers allocated once: a dense
    (max_rows, n_features) array, or for sparse X room for the nonzeros of its `max_rows`
    longest rows, which any call's rows fit."""

    def __init__(self, X: Rows, max_rows: int) -> None:
        self.X = X
        if isinstance(X, CsrRows):
            lengths = _lengths(X)
            k = min(max_rows, len(lengths))
            capacity = int(np.partition(lengths, len(lengths) - k)[len(lengths) - k:].sum()) if k else 0
            self.data = np.empty(capacity, dtype=X.dtype)
            self.indices = np.empty(capacity, dtype=np.int64)
            self.indptr = np.empty(max_rows + 1, dtype=np.int64)
        else:
            self.dense = np.empty((max_rows, X.shape[1]), dtype=X.dtype)

    def __call__(self, rows: NDArray[np.int64]) -> Rows:
        """Rows `rows` of X (at most max_rows), in that order; valid until the next call."""
        if isinstance(self.X, CsrRows):
            return _gather_csr(self.X, rows, self.data, self.indices, self.indptr)
        return np.take(self.X, rows, axis=0, out=self.dense[:len(rows)])


def exchange(comm: Any, send: NDArray[Any], send_counts: NDArray[np.int64],
             recv_counts: NDArray[np.int64]) -> NDArray[Any]:
    """Alltoallv of rows of `send` (grouped by destination, send_counts rows each); returns the
    rows received, grouped by source rank (recv_counts rows each)."""
    width = int(np.prod(send.shape[1:], dtype=np.int64))
    recv = np.empty((int(recv_counts.sum()),) + send.shape[1:], dtype=send.dtype)
    s_displ = np.concatenate([[0], np.cumsum(send_counts)[:-1]]) * width
    r_displ = np.concatenate([[0], np.cumsum(recv_counts)[:-1]]) * width
    comm.Alltoallv([np.ascontiguousarray(send).reshape(-1), (send_counts * width, s_displ)],
                   [recv.reshape(-1), (recv_counts * width, r_displ)])
    return recv


def _sums_per_group(values: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Sums of consecutive groups of `values` of sizes `counts` (empty groups sum to 0)."""
    ends = np.cumsum(np.concatenate([[0], values]))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    sums: NDArray[np.int64] = (ends[bounds[1:]] - ends[bounds[:-1]]).astype(np.int64)
    return sums


def exchange_rows(comm: Any, send: Rows, send_counts: NDArray[np.int64], recv_counts: NDArray[np.int64]) -> Rows:
    """:func:`exchange` for X: dense rows in one Alltoallv; sparse rows (a compact CSR) as
    their lengths, then their column indices and values, received as a compact CSR."""
    if not isinstance(send, CsrRows):
        return exchange(comm, send, send_counts, recv_counts)
    lengths = np.diff(send.indptr)
    recv_lengths = exchange(comm, lengths, send_counts, recv_counts)
    send_nnz, recv_nnz = _sums_per_group(lengths, send_counts), _sums_per_group(recv_lengths, recv_counts)
    indices = exchange(comm, send.indices, send_nnz, recv_nnz)
    data = exchange(comm, send.data, send_nnz, recv_nnz)
    indptr = np.concatenate([[0], np.cumsum(recv_lengths)]).astype(np.int64)
    return CsrRows(data, indices, indptr, (len(recv_lengths), send.shape[1]))
