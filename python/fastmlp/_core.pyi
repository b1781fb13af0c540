"""Type stubs for fastmlp._core, the pybind11 module built from cpp/bindings/.

Written by hand to match the bindings: the kernel functions keep the dtype of their first array
(float32 or float64, never converted), the whole-network calls work in the Workspace's dtype.
Every parameter is also a keyword; names, order and defaults here are the module's own
(tests/kernels/test_core_interface.py compares them). Holds types only; the behaviour and the checks
live in the C++ and in the docstrings there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, SupportsFloat, SupportsIndex, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from . import BuildInfo
from ._sparse import CsrRows

# X of the whole-network calls: dense rows, or sparse rows (checked by fastmlp._sparse).
_Rows = NDArray[np.floating[Any]] | CsrRows

# A kernel runs in the dtype of its first array and returns arrays of that dtype; every other
# array must match it exactly (the bindings refuse to convert, so no copy can hide an update).
_Float = TypeVar("_Float", np.float32, np.float64)

# The whole-network calls check the arrays against the Workspace's dtype at run time only.
_Params = list[NDArray[np.floating[Any]]]
_Targets = NDArray[np.int64] | NDArray[np.floating[Any]]

__version__: str

# The names each enum of the C++ side accepts, in the order the Python package lists them.
ACTIVATIONS: tuple[str, ...]
OUTPUTS: tuple[str, ...]
OPTIMIZERS: tuple[str, ...]
ISAS: tuple[str, ...]

# ---------------------------------------------------------------- single kernels

def dense_forward(
    x: NDArray[_Float], W: NDArray[_Float], b: NDArray[_Float], activation: str = "identity"
) -> NDArray[_Float]:
    """g(x @ W.T + b) for x (B, IN), W (OUT, IN), b (OUT,); returns (B, OUT)."""

def activation_forward(a: NDArray[_Float], activation: str) -> NDArray[_Float]:
    """h = g(a), elementwise, for a (B, N)."""

def activation_backward(dh: NDArray[_Float], saved: NDArray[_Float], activation: str) -> NDArray[_Float]:
    """da = dh * g'(a); saved is the pre-activation a for gelu and silu, the output h = g(a) for
    every other activation; all (B, N)."""

def output_forward_backward(
    logits: NDArray[_Float], y: NDArray[np.int64] | NDArray[_Float] | None = None, output: str = "softmax"
) -> tuple[NDArray[_Float], float | None, NDArray[_Float] | None, int | None]:
    """(prediction, mean loss, dlogits, correct rows) of the output layer; without y, (prediction, None, None, None)."""

def dropout_apply(
    x: NDArray[_Float], p: SupportsFloat, seed: SupportsIndex, epoch: SupportsIndex, batch: SupportsIndex,
    layer: SupportsIndex, row_positions: NDArray[np.int64] | None = None,
) -> NDArray[_Float]:
    """x * mask / (1 - p) with the training loop's mask for (seed, epoch, batch, layer); x (B, units);
    row_positions: each row's place in the batch the mask belongs to (default 0..B-1)."""

def optimizer_update(
    param: NDArray[_Float], grad: NDArray[_Float], state: list[NDArray[_Float]], optimizer: dict[str, Any],
    weight_decay: SupportsFloat = 0.0,
) -> None:
    """One optimizer step in place on param and its state arrays (see fastmlp.optim)."""

def softmax(logits: NDArray[_Float]) -> NDArray[_Float]:
    """Row-wise softmax of logits (B, K)."""

def softmax_xent_backward(
    logits: NDArray[_Float], y: NDArray[np.int64] | NDArray[_Float]
) -> tuple[float, NDArray[_Float]]:
    """(mean cross-entropy, dlogits = (softmax(logits) - y) / B) for labels y (B,) int64 or targets (B, K)."""

def dense_backward_input(
    da: NDArray[_Float], W: NDArray[_Float], h_prev: NDArray[_Float] | None = None, activation: str = "identity"
) -> NDArray[_Float]:
    """dh = da @ W for da (B, OUT), W (OUT, IN); with h_prev (B, IN), returns dh * g'(h_prev) instead."""

def dense_backward_params(da: NDArray[_Float], h_prev: NDArray[_Float]) -> tuple[NDArray[_Float], NDArray[_Float]]:
    """(dW = da.T @ h_prev, db = da.sum(0)) for da (B, OUT), h_prev (B, IN)."""

def all_finite(a: NDArray[_Float]) -> bool:
    """Whether every value of a C-contiguous float32 or float64 array is finite: one pass shared
    between the native threads, no temporary (the check of X in every fit and prediction)."""

def sgd_update(param: NDArray[_Float], grad: NDArray[_Float], lr: SupportsFloat) -> None:
    """In place: param -= lr * grad."""

# ---------------------------------------------------------------- a network's scratch memory

class Workspace:
    """Scratch buffers for batches of up to max_batch rows through one network architecture."""

    def __init__(
        self,
        layer_sizes: Sequence[SupportsIndex],
        max_batch: SupportsIndex,
        dtype: str,
        activations: Sequence[str] | None = None,
        output: str = "softmax",
        dropout: Sequence[float] | None = None,
    ) -> None:
        """MemoryError, naming the request and its byte count, if the buffers cannot be allocated."""
    @property
    def layer_sizes(self) -> list[int]: ...
    @property
    def activations(self) -> list[str]: ...
    @property
    def output(self) -> str: ...
    @property
    def dropout(self) -> list[float]: ...
    @property
    def max_batch(self) -> int: ...
    @property
    def dtype(self) -> str:
        """'float32' or 'float64'."""

# Private test hooks (tests/robustness/test_sizes.py). MemoryError, not ValueError, for a size that cannot
# exist or be allocated: the request is valid, the machine just cannot hold it.

def _workspace_bytes(
    layer_sizes: Sequence[SupportsIndex],
    max_batch: SupportsIndex,
    dtype: str,
    activations: Sequence[str] | None = None,
    output: str = "softmax",
    dropout: Sequence[float] | None = None,
) -> int:
    """Bytes a Workspace(layer_sizes, max_batch, dtype) allocates, from the constructor's own
    sizing code, without allocating. MemoryError when the total does not fit in 64 bits."""

def _workspaces_built() -> int:
    """Workspaces built since import (a test hook: prediction reuses its workspace)."""

def _avx2_usable_for_bits(leaf1_ecx: int, leaf7_ebx: int, xcr0: int, has_leaf7: bool) -> bool:
    """Whether CPUID/XGETBV bits like these allow the AVX2+FMA kernels (a test hook of isa.hpp)."""

def _avx512_usable_for_bits(leaf1_ecx: int, leaf7_ebx: int, xcr0: int, has_leaf7: bool) -> bool:
    """Whether CPUID/XGETBV bits like these allow the AVX-512 kernels (a test hook of isa.hpp)."""

def _parallel_raise_test(n_tasks: SupportsIndex, throw_at: SupportsIndex) -> int:
    """Runs n_tasks tasks in a parallel_for; task throw_at raises RuntimeError. Returns tasks run."""

def _set_claim_order(order: str) -> str:
    """Test hook: the order threads claim tasks in ('forward', 'reversed', 'interleaved'); returns the previous."""

def _set_share_governor(on: bool) -> bool:
    """Test hook: turn off (or on) the governor that keeps work on one thread while sharing does not pay."""

def _share_governor_report(
    start_ns: SupportsIndex, end_ns: SupportsIndex, busy_ns: SupportsIndex, longest_task_ns: SupportsIndex = 0
) -> bool:
    """Test hook: feed the governor one shared region's times (and the calling thread's longest
    task); returns whether work now stays on one thread."""

def _claim_sequence(phases: Sequence[SupportsIndex], ends: str = "f") -> list[list[int]]:
    """Test hook: the tasks of consecutive phases of the sizes given, in the order claimed, the
    k-th claim from the front or the back of its phase as ends[k % len(ends)] ('f'/'b') says."""

# ---------------------------------------------------------------- whole-network calls

_State = list[list[NDArray[np.floating[Any]]]]

def train_batch(
    workspace: Workspace,
    weights: _Params,
    biases: _Params,
    X: _Rows,
    y: _Targets,
    optimizer: dict[str, Any],
    state: _State,
    dropout_seed: SupportsIndex = 0,
    epoch: SupportsIndex = 0,
    batch_index: SupportsIndex = 0,
    sample_weight: NDArray[np.floating[Any]] | None = None,
) -> tuple[float, int]:
    """One optimizer step on one batch, in place. Returns (summed loss before the step, correct count)."""

def train_epoch(
    workspace: Workspace,
    weights: _Params,
    biases: _Params,
    X: _Rows,
    y: _Targets,
    order: NDArray[np.int64] | None,
    batch_size: SupportsIndex,
    optimizer: dict[str, Any],
    state: _State,
    stop_on_nonfinite: bool = False,
    dropout_seed: SupportsIndex = 0,
    epoch: SupportsIndex = 0,
    sample_weight: NDArray[np.floating[Any]] | None = None,
) -> tuple[float, int, int, int, bool | None]:
    """One epoch of minibatch training over the rows of X in `order` (None: in order), in place.
    Returns (summed pre-update loss, correct count, rows seen, steps taken, parameters finite:
    True/False when the last batch was trained, else None). Ctrl-C stops it after a batch; with
    stop_on_nonfinite, so does the first batch with a NaN/inf loss, before its update (then rows
    seen < len(X) and no exception)."""

def gradients(
    workspace: Workspace,
    weights: _Params,
    biases: _Params,
    X: _Rows,
    y: _Targets,
    training: bool = False,
    dropout_seed: SupportsIndex = 0,
    epoch: SupportsIndex = 0,
    batch_index: SupportsIndex = 0,
    sample_weight: NDArray[np.floating[Any]] | None = None,
    dropout_rows: NDArray[np.int64] | None = None,
) -> tuple[float, int, list[tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]]]:
    """Gradients of the batch-mean loss. Returns (summed loss, correct count, [(dW, db), ...])."""

# The third element is None exactly when want_preds is False: the overloads say so to callers
# that pass a literal, the last one covers a flag only known at run time.
@overload
def evaluate(
    workspace: Workspace,
    weights: _Params,
    biases: _Params,
    X: _Rows,
    y: _Targets | None = None,
    want_preds: Literal[True] = True,
    check_finite: bool = False,
) -> tuple[float, int, NDArray[np.floating[Any]]]: ...
@overload
def evaluate(
    workspace: Workspace,
    weights: _Params,
    biases: _Params,
    X: _Rows,
    y: _Targets | None,
    want_preds: Literal[False],
    check_finite: bool = False,
) -> tuple[float, int, None]: ...
@overload
def evaluate(
    workspace: Workspace,
    weights: _Params,
    biases: _Params,
    X: _Rows,
    y: _Targets | None = None,
    want_preds: bool = True,
    check_finite: bool = False,
) -> tuple[float, int, NDArray[np.floating[Any]] | None]:
    """Forward pass (no dropout) in chunks of max_batch rows. Returns (summed loss, correct
    count, predictions or None). With check_finite, a NaN or infinity in X is a ValueError."""

# ---------------------------------------------------------------- process-wide settings

def set_num_threads(n: SupportsIndex) -> None:
    """Use n threads (1 <= n <= INT_MAX, else ValueError) from now on, process-wide; in a process
    created by fork() it warns and stays on one thread."""

def get_num_threads() -> int: ...
def set_isa(name: str) -> None:
    """Use the 'generic', 'avx2' or 'avx512' kernels from now on, process-wide."""

def get_isa() -> str: ...
def build_info() -> BuildInfo: ...
