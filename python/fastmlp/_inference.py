"""The forward-pass machinery of Network (predict_proba, predict, loss, accuracy and the
validation pass of fit): the scratch memory, its one sizing rule, and the locked native call.
A mixin, so that network.py keeps the parameters and the public methods and this module the
workspaces; it imports nothing of network.py (no cycle), and reads only the attributes
declared below, which Network sets."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._forward import EVAL_MIN_ROWS, eval_call_rows, eval_rows_per_call, evaluate_rows
from ._lock import FairRLock
from ._sparse import CsrRows, Rows, check_input, sparse_rows_per_call
from ._validation import check_parameters, check_y


def rows_per_call(rows: int, layer_sizes: list[int], X: object = None) -> int:
    """The one sizing rule of the forward passes: how many of `rows` rows (of X) go in one
    native call. A call of at most EVAL_MIN_ROWS rows is one call (no sizing by work); more are
    cut in calls of :func:`eval_rows_per_call` rows, so that Ctrl-C is seen between two; sparse
    rows in calls sized by their nonzeros (larger calls read W_1 fewer times)."""
    if isinstance(X, CsrRows):
        per_call = sparse_rows_per_call(X, layer_sizes)
    else:
        per_call = rows if rows <= EVAL_MIN_ROWS else eval_rows_per_call(layer_sizes)
    return max(1, min(rows, per_call))


# Guards the lazy creation of a network's lock in InferenceMixin._locked (see there).
_LOCK_CREATION = threading.Lock()


class InferenceMixin:
    """Workspaces and the locked forward call of a Network (see the module docstring)."""

    weights: list[NDArray[np.floating[Any]]]
    biases: list[NDArray[np.floating[Any]]]
    _layer_sizes: list[int]
    _dtype: np.dtype[np.floating[Any]]
    _activations: list[str]
    _output: str
    _dropout: list[float]
    # Serializes the native calls that read or write the parameters (see Network's Notes).
    # Reentrant so that a locked method may call another locked method of the same network;
    # fair so that a thread between two epochs of a fit cannot starve the other threads.
    _lock: FairRLock

    def _init_lock(self) -> None:
        """Give this network its own lock. Every way of building a Network must call it:
        ``__init__``, :meth:`copy`, ``__setstate__`` and the load path."""
        self._lock = FairRLock()

    def _locked(self) -> FairRLock:
        """The network's lock, held around every native call on its parameters.

        A network built without ``_init_lock`` (say by a new ``object.__new__`` path) still
        gets one, created under a module-wide lock so that two threads cannot each create
        their own and then run unserialized.
        """
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.get("_lock")
                if lock is None:
                    self._init_lock()
                    lock = self._lock
        return lock

    def _params(
        self, for_update: bool = False
    ) -> tuple[list[NDArray[np.floating[Any]]], list[NDArray[np.floating[Any]]]]:
        """The parameter lists, after checking that user edits kept them usable in place
        (and writeable, when a training step is about to update them)."""
        check_parameters(self.weights, self.biases, self._layer_sizes, self._dtype, for_update)
        return self.weights, self.biases

    def _workspace(self, rows: int, training: bool = False) -> _core.Workspace:
        """Native scratch memory for this architecture; with `training`, room for dropout."""
        return _core.Workspace(self._layer_sizes, max_batch=rows, dtype=self._dtype.name,
                               activations=self._activations, output=self._output,
                               dropout=self._dropout if training else None)

    def _eval_workspace(self, rows: int, X: object = None) -> _core.Workspace:
        """A new workspace for forward passes over `rows` rows (of X) in calls of :func:`evaluate_rows`."""
        return self._workspace(rows_per_call(rows, self._layer_sizes, X))

    def _predict_workspace(self, rows: int) -> _core.Workspace:
        """The scratch memory of predict/loss/accuracy over `rows` dense rows, kept on the network
        and reused, so that a network predicting again at a size it has seen allocates nothing but
        its result. Call it with the network's lock held: the lock is what keeps two threads off
        the one workspace. Sized by :func:`rows_per_call` like :meth:`_eval_workspace` (so Ctrl-C
        is seen as often); built again only when a call needs more rows per native call than it
        holds (it grows, never shrinks: no size is built twice) or when the dtype or the
        architecture changed (a float64 twin in gradcheck)."""
        cache = self.__dict__.get("_predict_cache")
        need = 0
        if cache is not None:
            dtype, sizes, activations, output, max_batch, ws = cache
            if (dtype is self._dtype and sizes is self._layer_sizes and activations is self._activations
                    and output is self._output):
                # More rows than the workspace holds are run in chunks of its rows: it serves
                # whenever it holds one call's chunk (rows_per_call, uncomputed when rows fit).
                if rows <= max_batch or rows_per_call(rows, self._layer_sizes) <= max_batch:
                    return ws  # type: ignore[no-any-return]
                need = max_batch
        need = max(need, rows_per_call(rows, self._layer_sizes))
        ws = self._workspace(need)
        self.__dict__["_predict_cache"] = (self._dtype, self._layer_sizes, self._activations, self._output,
                                           ws.max_batch, ws)
        return ws

    def _fast_rows(self, X: object) -> bool:
        """Whether X may go to the native forward as it is: an ndarray of the network's dtype,
        C-contiguous, 2-D with rows. Its width and finiteness are then checked natively, and a
        refusal sends it through :func:`check_X`, whose message names the problem."""
        return (type(X) is np.ndarray and X.dtype is self._dtype and X.ndim == 2 and X.shape[0] > 0
                and X.flags.c_contiguous)

    def _evaluate_rows(
        self, X: Rows, y: NDArray[Any] | None, want_preds: bool, fast: bool,
    ) -> tuple[float, int, NDArray[np.floating[Any]] | None]:
        """:func:`evaluate_rows` over X with the cached workspace and the live parameter lists,
        under the lock. The native call checks every array; when it refuses one, the Python
        checks run to raise their own message (for X when it came by the fast path). Sparse
        rows take a workspace of their own size (sized by their nonzeros, larger than a dense
        call's), not the cached one, whose rows per call must stay those of dense X."""
        with self._locked():
            sparse = isinstance(X, CsrRows)
            ws = self._eval_workspace(len(X), X) if sparse else self._predict_workspace(len(X))
            # Dense predictions: native calls of eval_call_rows (by work, for Ctrl-C), each run in
            # chunks of the workspace's rows. With targets, one chunk a call, as for sparse rows:
            # Python then adds the chunks' loss sums in the order one native call would, so a
            # loss keeps its bits however X is cut into calls (a sum of calls' sums would not).
            in_chunks = sparse or y is not None or len(X) <= EVAL_MIN_ROWS
            call_rows = None if in_chunks else eval_call_rows(self._layer_sizes)
            try:
                return evaluate_rows(ws, self.weights, self.biases, X, y, want_preds, fast, call_rows)
            except (TypeError, ValueError):
                self._explain_refusal(X, fast)
                raise

    def _explain_refusal(self, X: Rows, fast: bool) -> None:
        """After the native forward refused an array: run the Python checks, whose messages name the
        problem (X's only when it came by the fast path, unchecked), so that they raise instead."""
        if fast:
            check_input(X, self._layer_sizes[0], self._dtype)
        self._params()

    def _forward(self, X: Any) -> NDArray[np.floating[Any]]:
        """The output layer's predictions (n_samples, n_outputs), without dropout."""
        if self._fast_rows(X) and len(X) <= EVAL_MIN_ROWS:
            # A few rows ready as they are: one native call, what _evaluate_rows would make of
            # them, with its layers of calls inlined (they were a tenth of a one-row prediction).
            with self._locked():
                ws = self._predict_workspace(len(X))
                try:
                    return _core.evaluate(ws, self.weights, self.biases, X, None, True, True)[2]
                except (TypeError, ValueError):
                    self._explain_refusal(X, True)
                    raise
        fast = self._fast_rows(X)
        rows = X if fast else check_input(X, self._layer_sizes[0], self._dtype)
        _, _, preds = self._evaluate_rows(rows, None, True, fast)
        assert preds is not None
        return preds

    def _evaluate(self, X: Any, y: Any) -> tuple[float, float]:
        """Mean loss and accuracy over (X, y), without dropout: loss() and accuracy()."""
        fast = self._fast_rows(X)
        rows: Rows = X if fast else check_input(X, self._layer_sizes[0], self._dtype)
        y = check_y(y, len(rows), self._layer_sizes[-1], self._dtype, output=self._output)
        loss_sum, n_correct, _ = self._evaluate_rows(rows, y, False, fast)
        return loss_sum / len(rows), n_correct / len(rows)
