"""Forward passes over many rows, cut into native calls sized by work, so that Ctrl-C is seen
between two calls (the native forward loop does not poll for signals; the training loop does).
Also the check of the dropout masks' key. It knows nothing of Network; network.py and the
training loop call it with a network's workspace and parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._sparse import Rows
from ._validation import check_int

#: The most rows per native forward call in predict/loss/accuracy and validation: bounds the
#: scratch memory, not the result (rows are independent, so chunking changes no bit of the output).
EVAL_CHUNK = 1024

#: Multiply-adds per native forward call, which sets the rows per call for wide networks: Python
#: runs signal handlers between two calls, so Ctrl-C takes effect within one call (1024 rows of
#: 784-1024-10 are 0.8 G multiply-adds, about 50 ms here). At least EVAL_MIN_ROWS rows per call,
#: so that packing a layer's weights, done once per chunk of rows, stays a small part of the work.
EVAL_MACS_PER_CALL = 1 << 30
EVAL_MIN_ROWS = 64


def eval_call_rows(layer_sizes: Sequence[int]) -> int:
    """Rows per native forward call of a dense prediction for a network of `layer_sizes`: as many
    as EVAL_MACS_PER_CALL multiply-adds allow, at least EVAL_MIN_ROWS. The native call runs them
    in chunks of its workspace's rows (:func:`eval_rows_per_call`, at most EVAL_CHUNK), so that
    a small network predicting 4096 rows makes one call from Python, not four."""
    macs_per_row = sum(i * o for i, o in zip(layer_sizes[:-1], layer_sizes[1:]))
    return max(EVAL_MIN_ROWS, EVAL_MACS_PER_CALL // max(1, macs_per_row))


def eval_rows_per_call(layer_sizes: Sequence[int]) -> int:
    """Rows of a forward workspace for a network of `layer_sizes`, the chunk a native forward
    call runs at a time, and the rows per call where calls are not sized otherwise (see the
    constants above)."""
    return min(EVAL_CHUNK, eval_call_rows(layer_sizes))


def check_dropout_seed(seed: object) -> int:
    """The key of the dropout masks: an int in [0, 2**64) (None means 0), as the native call takes it."""
    if seed is None:
        return 0
    value = check_int(seed, "seed", 0)
    if value >= 2**64:
        raise ValueError(f"seed must be in [0, 2**64): the dropout masks' key is a 64-bit unsigned integer; "
                         f"got {value}")
    return value


def evaluate_rows(
    ws: _core.Workspace, weights: list[NDArray[np.floating[Any]]], biases: list[NDArray[np.floating[Any]]],
    X: Rows, y: NDArray[Any] | None, want_preds: bool, check_finite: bool = False, call_rows: int | None = None,
) -> tuple[float, int, NDArray[np.floating[Any]] | None]:
    """``_core.evaluate`` over X (checked, C-contiguous) in native calls of at most `call_rows`
    rows (default ``ws.max_batch``, the rows of a workspace from ``Network._eval_workspace``,
    sized by :func:`eval_rows_per_call`; more, :func:`eval_call_rows`, for dense predictions
    without targets), so that Ctrl-C is seen between two calls instead of after the whole pass.
    The predictions and the correct count are bitwise those of one call, rows being independent;
    so is the summed loss when each call is one chunk (the default): Python adds the chunks' sums
    in the order the native loop does. X of at most one call is one call, with nothing allocated
    here.
    With `check_finite`, the native call refuses a NaN or infinity in X (ValueError): the
    prediction fast path passes X unchecked but for its type, dtype and shape."""
    n = len(X)
    step = ws.max_batch if call_rows is None else max(ws.max_batch, call_rows)
    if n <= step:
        return _core.evaluate(ws, weights, biases, X, y, want_preds, check_finite)  # positional: no keyword matching
    preds = np.empty((n, ws.layer_sizes[-1]), dtype=X.dtype) if want_preds else None
    loss_sum, n_correct = 0.0, 0
    for start in range(0, n, step):
        stop = min(n, start + step)  # row slices of a C-contiguous array: views, no copies
        chunk_loss, chunk_correct, chunk_preds = _core.evaluate(
            ws, weights, biases, X[start:stop], None if y is None else y[start:stop], want_preds=want_preds,
            check_finite=check_finite)
        loss_sum += chunk_loss
        n_correct += chunk_correct
        if preds is not None:
            preds[start:stop] = chunk_preds
    return loss_sum, n_correct, preds
