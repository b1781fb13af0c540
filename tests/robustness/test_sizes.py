"""Sizes and native errors: the Workspace's byte count is exact 64-bit arithmetic across the 2^31
boundary, a size that cannot exist or be allocated raises MemoryError quickly (never a crash or a
wrapped small buffer), and an exception inside a parallel region reaches Python (no terminate).
The 2^31 cases use the private hook _core._workspace_bytes, which sizes without allocating."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import fastmlp
from fastmlp import _core

KC, MAX_MR, MAX_NR = 256, 8, 32  # gemm.hpp: kGemmKC, kMaxMR, kMaxNR


# scripts/sanitize.sh preloads ASan, whose allocator aborts on a request above 1 TiB
# (allocation-size-too-big) instead of returning null: the tests that really ask for one skip.
_not_under_asan = pytest.mark.skipif(
    "asan" in os.environ.get("LD_PRELOAD", ""), reason="ASan aborts on huge allocations instead of failing them"
)


def _round64(n: int) -> int:
    return (n + 63) // 64 * 64


def expected_bytes(sizes: list[int], batch: int, itemsize: int) -> int:
    """The Workspace's buffers as mlp.hpp documents them, in Python's unbounded integers."""
    total = 0
    for k in range(1, len(sizes)):
        total += (batch * sizes[k] + sizes[k] * sizes[k - 1] + sizes[k]) * itemsize  # h, dW, db
    total += 2 * batch * max(sizes[1:]) * itemsize  # delta, delta_prev
    total += batch * sizes[-1] * itemsize + batch * 8  # target_batch, label_batch (int64)
    total += batch * itemsize  # weight_batch (sample weights of a shuffled batch)
    gemm_a = max((max(batch, sizes[k]) + MAX_MR) * KC for k in range(1, len(sizes)))
    gemm_b = max((max(sizes[k], sizes[k - 1]) + MAX_NR) * KC for k in range(1, len(sizes)))
    # C^T of a transposed forward product: up to 64 rows, for batches of at least 32 (gemm.hpp)
    transposed = max(min(batch, 64) * sizes[k] for k in range(1, len(sizes))) if batch >= MAX_NR else 0
    return total + _round64(gemm_a * itemsize) + _round64(gemm_b * itemsize) + _round64(transposed * itemsize)


def test_small_workspace_bytes_match_the_documented_buffers():
    for sizes, batch in [([2, 3, 2], 4), ([784, 128, 10], 256), ([1, 1], 1)]:
        for dtype, itemsize in [("float32", 4), ("float64", 8)]:
            assert _core._workspace_bytes(sizes, batch, dtype) == expected_bytes(sizes, batch, itemsize)


_SPLITS = [  # (batch, width) with batch * width at and around 2^31, split every way
    (b, n // b) for n in (2**31 - 1, 2**31, 2**31 + 1, 2**32 + 1) for b in (1, n) + ((2,) if n % 2 == 0 else ())
]


@pytest.mark.parametrize("batch,width", _SPLITS)
@pytest.mark.parametrize("dtype,itemsize", [("float32", 4), ("float64", 8)])
def test_byte_count_is_exact_across_the_2_to_the_31_boundary(batch, width, dtype, itemsize):
    elements = batch * width
    sizes = [3, width, 2]
    got = _core._workspace_bytes(sizes, batch, dtype)
    assert got == expected_bytes(sizes, batch, itemsize)
    assert got > elements * itemsize  # no int32 wrap could ever produce this
    # one more row or unit adds exactly what the formula says, also across the boundary
    assert _core._workspace_bytes([3, width + 1, 2], batch, dtype) == expected_bytes([3, width + 1, 2], batch, itemsize)


@pytest.mark.parametrize(
    "sizes,batch",
    [
        ([2, 2**62, 2], 4),  # batch * width = 2^64 elements: the product itself overflows
        ([2**40, 2**40, 2], 1),  # weight gradient 2^80 elements
        ([2, 2**61, 2], 1),  # 2^61 elements fit, 2^61 * 8 bytes = 2^64 does not
        ([2, 2**59, 2], 1),  # each buffer fits in int64 bytes (2^62), their sum does not
        ([1, 2**63 - 1], 1),  # width at the very top of int64: elements fit, bytes do not
    ],
)
def test_sizes_beyond_int64_raise_memory_error_naming_the_request(sizes, batch):
    for dtype in ("float32", "float64"):
        with pytest.raises(MemoryError,
                           match=r"Workspace for layer sizes \[.*would need more bytes than the address space"):
            _core._workspace_bytes(sizes, batch, dtype)
        with pytest.raises(MemoryError, match=r"would need more bytes"):
            _core.Workspace(sizes, batch, dtype)


def test_huge_workspace_raises_memory_error_quickly():
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"layer sizes \[1099511627776, 1099511627776, 2\] and max_batch 1048576"):
        _core.Workspace([2**40, 2**40, 2], 2**20, "float32")
    assert time.perf_counter() - t0 < 1.0


@_not_under_asan
def test_representable_but_unallocatable_workspace_raises_memory_error():
    # 2^48 float32 activations = 1 PiB: above any user address space, so refused whatever
    # the overcommit policy (a smaller request could be granted lazily and then OOM-kill us)
    request = [2**24, 2**24, 2], 2**24
    need = _core._workspace_bytes(*request, "float32")
    assert need == expected_bytes(*request, 4)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=rf"would need {need} bytes, which could not be allocated"):
        _core.Workspace(*request, "float32")
    assert time.perf_counter() - t0 < 1.0


def test_invalid_sizes_are_still_value_errors():
    for sizes, batch in [([2], 1), ([2, 0], 1), ([2, -3], 1), ([2, 2], 0)]:
        with pytest.raises(ValueError, match=r"sizes|batch"):
            _core._workspace_bytes(sizes, batch, "float32")
    with pytest.raises(ValueError, match="dtype"):
        _core._workspace_bytes([2, 2], 1, "float16")


@_not_under_asan
def test_network_with_an_impossible_size_raises_memory_error():
    # The weights are NumPy arrays, so NumPy refuses first, with a message giving size and shape.
    with pytest.raises(MemoryError, match=r"allocate .*shape"):
        fastmlp.Network([2**40, 2])


def test_a_refused_workspace_leaves_the_process_usable():
    net = fastmlp.Network([4, 3, 2], seed=0)
    X, y = np.zeros((4, 4), np.float32), np.zeros(4, np.int64)
    with pytest.raises(MemoryError):
        _core.Workspace(net.layer_sizes, 2**62, net.dtype.name)
    fastmlp.Trainer(net, lr=0.1, batch_size=2, seed=0).fit(X, y, epochs=1)  # and the process is fine


# ---------------------------------------------------------------- exceptions in parallel regions


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("throw_at", [0, 5, 9])
def test_an_exception_in_a_parallel_region_reaches_python(threads, throw_at):
    before = fastmlp.get_num_threads()
    try:
        fastmlp.set_num_threads(threads)
        with pytest.raises(RuntimeError, match=f"task {throw_at} failed on thread"):
            _core._parallel_raise_test(10, throw_at)
        assert _core._parallel_raise_test(10, -1) == 10  # the pool still works afterwards
    finally:
        fastmlp.set_num_threads(before)


def test_the_throwing_task_ran_on_a_second_thread():
    if not fastmlp.build_info()["openmp"]:
        pytest.skip("serial build")
    before = fastmlp.get_num_threads()
    try:
        fastmlp.set_num_threads(2)
        # the hook holds thread 0 on its first task until thread 1 has started all the others
        with pytest.raises(RuntimeError, match="task 9 failed on thread 1"):
            _core._parallel_raise_test(10, 9)
        for _ in range(50):  # repeatedly: no terminate, no deadlock, no lost pool
            with pytest.raises(RuntimeError):
                _core._parallel_raise_test(64, 3)
    finally:
        fastmlp.set_num_threads(before)
