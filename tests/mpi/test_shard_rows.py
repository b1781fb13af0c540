"""fastmlp.distributed._rows without MPI: a shard's rows gathered for a step (RowGather, take_rows)
and sent between ranks (exchange_rows, here through a one-rank stand-in for the communicator),
dense and sparse, against the dense rows they stand for. tests/mpi/test_distributed.py trains
with them under mpirun."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastmlp._sparse import CsrRows, check_sparse
from fastmlp.distributed._rows import RowGather, exchange_rows, take_rows

sp = pytest.importorskip("scipy.sparse")
F64 = np.dtype(np.float64)


def shard() -> tuple[CsrRows, np.ndarray]:
    """A checked CSR shard with empty rows, unsorted column indices and a column stored twice,
    and its dense rows."""
    rng = np.random.default_rng(0)
    dense = rng.uniform(0.5, 1.0, size=(9, 7)) * (rng.uniform(size=(9, 7)) < 0.4)
    dense[[2, 6]] = 0.0
    X = sp.csr_matrix(dense)
    lo, hi = X.indptr[4], X.indptr[5]
    assert hi - lo >= 2
    X.indices[lo:hi] = X.indices[lo:hi][::-1].copy()  # unsorted within row 4
    X.data[lo:hi] = X.data[lo:hi][::-1].copy()
    # Row 0 gets column 3 a second time (summed, as in toarray()).
    indices = np.concatenate([X.indices[:X.indptr[1]], [3], X.indices[X.indptr[1]:]])
    data = np.concatenate([X.data[:X.indptr[1]], [0.25], X.data[X.indptr[1]:]])
    indptr = np.concatenate([[0], X.indptr[1:] + 1])
    X = sp.csr_matrix((data, indices, indptr), shape=dense.shape)
    return check_sparse(X, 7, F64), X.toarray()


def stored(X: CsrRows, row: int) -> tuple[list[int], list[float]]:
    """The column indices and values row `row` of X stores, in their order."""
    r = row if X.rows is None else int(X.rows[row])
    lo, hi = X.indptr[r], X.indptr[r + 1]
    return X.indices[lo:hi].tolist(), X.data[lo:hi].tolist()


def test_take_rows_is_a_compact_csr_keeping_each_rows_stored_order() -> None:
    X, dense = shard()
    rows = np.array([4, 0, 2, 8, 4, 6], dtype=np.int64)  # any order, repeats and empty rows
    got = take_rows(X, rows)
    assert isinstance(got, CsrRows) and got.rows is None
    assert got.indptr[0] == 0 and got.indptr[-1] == len(got.indices) == len(got.data)
    np.testing.assert_array_equal(got.toarray(), dense[rows])
    for i, r in enumerate(rows):
        assert stored(got, i) == stored(X, int(r))  # the order a native call sums them in


def test_take_rows_of_dense_rows_is_numpys_take() -> None:
    _, dense = shard()
    rows = np.array([3, 1, 3], dtype=np.int64)
    got = take_rows(dense, rows)
    assert isinstance(got, np.ndarray) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, dense[rows])


@pytest.mark.parametrize("view", ["whole", "row_list", "slice"])
def test_row_gather_reuses_its_buffers_and_fits_the_longest_rows(view: str) -> None:
    X, dense = shard()
    if view == "row_list":  # a validation split's training rows, read in place
        picked = np.array([8, 0, 1, 4, 5, 7], dtype=np.int64)
        X, dense = X.take(picked), dense[picked]
    elif view == "slice":
        X, dense = X[3:9], dense[3:9]
    gather = RowGather(X, max_rows=3)
    lengths = [len(stored(X, i)[0]) for i in range(len(X))]
    longest = np.argsort(lengths, kind="stable")[-3:].astype(np.int64)
    assert len(gather.data) == sum(sorted(lengths)[-3:])  # room for the 3 longest rows, no more
    buffers = (gather.data.ctypes.data, gather.indices.ctypes.data, gather.indptr.ctypes.data)
    for rows in (longest, np.array([1], dtype=np.int64), np.arange(len(X) - 3, len(X), dtype=np.int64)):
        got = gather(rows)
        np.testing.assert_array_equal(got.toarray(), dense[rows])
        assert got.data.ctypes.data == buffers[0] and got.indices.ctypes.data == buffers[1]
        assert got.indptr.ctypes.data == buffers[2]
    dense_gather = RowGather(dense, max_rows=3)
    np.testing.assert_array_equal(dense_gather(longest), dense[longest])


class OneRank:
    """The communicator of a single rank: Alltoallv sends every row to itself."""

    def Alltoallv(self, send: list[Any], recv: list[Any]) -> None:  # mpi4py's name for it
        (s, (s_counts, s_displ)), (r, (r_counts, r_displ)) = send, recv
        assert list(s_counts) == list(r_counts) and list(s_displ) == list(r_displ) == [0]
        r[:] = s


@pytest.mark.parametrize("sparse", [True, False])
def test_exchange_rows_delivers_the_rows_sent(sparse: bool) -> None:
    X, dense = shard()
    rows = np.array([0, 4, 2, 7], dtype=np.int64)
    send = take_rows(X if sparse else dense, rows)
    counts = np.array([len(rows)], dtype=np.int64)
    got = exchange_rows(OneRank(), send, counts, counts)
    assert isinstance(got, CsrRows) == sparse
    np.testing.assert_array_equal(got.toarray() if isinstance(got, CsrRows) else got, dense[rows])
    if isinstance(got, CsrRows):
        assert [stored(got, i) for i in range(len(rows))] == [stored(X, int(r)) for r in rows]
