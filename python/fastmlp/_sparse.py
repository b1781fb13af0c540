"""Sparse X (scipy.sparse CSR matrices and arrays; CSC, COO and the rest converted once to CSR)
checked into :class:`CsrRows`, the form the native calls take, whose first layer then runs over
the nonzeros only (cpp/fastmlp/sparse.hpp). Recognised by duck typing: scipy is never imported
here, and stays optional. Nothing here touches a network or trains; docs/sparse.md is the guide."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
from numpy.typing import NDArray

from ._validation import _is_sparse, check_X, finite_array


class CsrRows:
    """Rows of a checked CSR matrix: ``data`` (the network's dtype), ``indices`` and ``indptr``
    (int64), ``shape`` (n_rows, n_features) and ``rows``: None, or int64 positions of the rows
    this view lists (a row selection read in place, as the validation split needs). Row slices
    and row selections are views: the arrays are never copied."""

    __slots__ = ("data", "indices", "indptr", "rows", "shape")

    def __init__(self, data: NDArray[Any], indices: NDArray[np.int64], indptr: NDArray[np.int64],
                 shape: tuple[int, int], rows: Optional[NDArray[np.int64]] = None) -> None:
        self.data, self.indices, self.indptr, self.shape, self.rows = data, indices, indptr, shape, rows

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def __array__(self, dtype: object = None, copy: object = None) -> NDArray[Any]:
        # Defined so that type checkers count CsrRows among array-likes, never to densify implicitly.
        raise TypeError("sparse rows are never densified implicitly; call toarray()")

    def __len__(self) -> int:
        return self.shape[0] if self.rows is None else len(self.rows)

    def __getitem__(self, part: slice) -> CsrRows:
        """Rows part (a slice with step 1) of this view."""
        start, stop, step = part.indices(len(self))
        if step != 1:
            raise ValueError("CsrRows slices take consecutive rows")
        stop = max(start, stop)
        if self.rows is not None:
            return CsrRows(self.data, self.indices, self.indptr, self.shape, self.rows[start:stop])
        # indptr's offsets stay absolute: the slice of indptr is the view of those rows
        return CsrRows(self.data, self.indices, self.indptr[start:stop + 1], (stop - start, self.shape[1]))

    def take(self, rows: NDArray[np.int64]) -> CsrRows:
        """The rows `rows` of this view, as a view (nothing copied but the row list)."""
        picked = rows if self.rows is None else self.rows[rows]
        return CsrRows(self.data, self.indices, self.indptr, self.shape, np.ascontiguousarray(picked, dtype=np.int64))

    def toarray(self) -> NDArray[Any]:
        """The dense rows (for tests and small inputs; training never calls it)."""
        rows = np.arange(self.shape[0]) if self.rows is None else self.rows
        out = np.zeros((len(rows), self.shape[1]), dtype=self.dtype)
        for i, r in enumerate(rows):
            lo, hi = self.indptr[r], self.indptr[r + 1]
            np.add.at(out[i], self.indices[lo:hi], self.data[lo:hi])
        return out


def copy_rows(X: CsrRows, rows: NDArray[np.int64]) -> CsrRows:
    """The rows `rows` of X (in that order) as a new compact CsrRows: their nonzeros copied in
    storage order, a fresh indptr from 0, no row list. For the callers that need rows without
    a row list (a native training epoch refuses one): a copy of those rows' nonzeros only,
    never a dense array. :meth:`CsrRows.take` is the copy-free view where a row list is fine."""
    picked = np.asarray(rows, dtype=np.int64) if X.rows is None else X.rows[rows]
    starts = X.indptr[picked]
    lengths = X.indptr[picked + 1] - starts
    indptr = np.zeros(len(picked) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # The k-th kept nonzero of a row sits at start + k in X and at indptr[row] + k here.
    positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.int64)
    return CsrRows(X.data[positions], X.indices[positions], indptr, (len(picked), X.shape[1]))


#: Multiply-adds per native forward call over sparse rows, and the most rows per call. A call reads
#: most of W_1 once whatever its rows (their nonzeros hit most of its cache lines), so sparse rows go
#: in calls far larger than dense ones; the cap bounds the activations' scratch memory.
SPARSE_EVAL_MACS_PER_CALL = 1 << 30
SPARSE_EVAL_MAX_ROWS = 16384


def sparse_rows_per_call(X: CsrRows, layer_sizes: list[int]) -> int:
    """Rows per native forward call over X (at least 64; see the constants above)."""
    lengths = np.diff(X.indptr)
    nonzeros = int(lengths.sum() if X.rows is None else lengths[X.rows].sum())
    per_row = max(1.0, nonzeros / max(1, len(X))) * layer_sizes[1] + sum(
        i * o for i, o in zip(layer_sizes[1:-1], layer_sizes[2:]))
    return int(min(SPARSE_EVAL_MAX_ROWS, max(64, SPARSE_EVAL_MACS_PER_CALL // per_row)))


#: What the public calls take as X: a dense array (checked by check_X) or sparse rows.
Rows = Union[NDArray[np.floating[Any]], CsrRows]


def is_sparse(X: object) -> bool:
    """Whether X is a sparse matrix/array (or already CsrRows), recognised without importing scipy."""
    return isinstance(X, CsrRows) or _is_sparse(X)


def check_input(X: object, n_features: int, dtype: np.dtype[np.floating[Any]], name: str = "X") -> Rows:
    """X checked for a network: sparse input as CsrRows (see :func:`check_sparse`), anything else
    as check_X makes it (a C-contiguous array of `dtype`)."""
    if is_sparse(X):
        return check_sparse(X, n_features, dtype, name)
    return check_X(X, n_features, dtype, name)


def _integer_array(value: object, what: str) -> NDArray[Any]:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be a 1-d array of integers, got dtype {arr.dtype} with shape {arr.shape}")
    return arr


def check_sparse(X: object, n_features: int, dtype: np.dtype[np.floating[Any]], name: str = "X") -> CsrRows:
    """X (a scipy.sparse matrix or array, or anything with ``tocsr()``) as CsrRows of `dtype`.

    CSR input is used in place when its values already have `dtype` and its index arrays are
    int64; otherwise the values (or the index arrays) are converted once. Other formats are
    converted to CSR once (``X.tocsr()``). Indices may be unsorted and repeated (repeats are
    summed), stored zeros are allowed. Its structure is checked here, before anything runs:
    ValueError for an indptr that does not start at 0, decreases or does not end at the
    number of stored values, and for column indices outside [0, n_features)."""
    if isinstance(X, CsrRows):
        return X
    if getattr(X, "format", None) != "csr" or not hasattr(X, "indptr"):
        X = X.tocsr()  # type: ignore[attr-defined]  # CSC, COO, ...: converted once (docs/sparse.md)
    shape = tuple(int(s) for s in X.shape)  # type: ignore[attr-defined]
    if len(shape) != 2:
        raise ValueError(f"Network expects {name} of shape (n_samples, {n_features}), got a sparse {name} with "
                         f"shape {shape}")
    n_rows, n_cols = shape
    if n_cols != n_features:
        raise ValueError(f"Network expects {n_features} input features, got {name} with shape {shape}")
    if n_rows == 0:
        raise ValueError(f"{name} has 0 samples (shape {shape}); at least 1 is required")
    indptr = _integer_array(X.indptr, f"{name}.indptr")  # type: ignore[attr-defined]
    indices = _integer_array(X.indices, f"{name}.indices")  # type: ignore[attr-defined]
    values = np.asarray(X.data)  # type: ignore[attr-defined]
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise TypeError(f"{name}'s stored values must be real numbers, got dtype {values.dtype}")
    if len(indptr) != n_rows + 1:
        raise ValueError(f"{name}.indptr must have n_rows + 1 = {n_rows + 1} entries, got {len(indptr)}")
    if len(indices) != len(values):
        raise ValueError(f"{name}.indices and {name}.data must have the same length, got {len(indices)} and "
                         f"{len(values)}")
    if indptr[0] != 0:
        raise ValueError(f"{name}.indptr must start at 0, got {indptr[0]}")
    steps = np.diff(indptr)
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(f"{name}.indptr must be non-decreasing, but indptr[{i + 1}] = {indptr[i + 1]} < "
                         f"indptr[{i}] = {indptr[i]}")
    nnz = int(indptr[-1])
    if nnz != len(indices):
        raise ValueError(f"{name}.indptr must end at the number of stored values, {len(indices)}, got {nnz}")
    if nnz:
        lo, hi = indices.min(), indices.max()  # compared in the input's own type: nothing is narrowed first
        if lo < 0 or hi >= n_features:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} has a column index {bad} outside [0, {n_features}) (its shape is {shape}): "
                             f"the sparse structure is corrupt")
    data = finite_array(values, dtype, name)
    return CsrRows(data, np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(indptr, dtype=np.int64),
                   (n_rows, n_cols))
