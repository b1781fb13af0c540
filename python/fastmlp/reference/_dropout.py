"""NumPy oracle of inverted dropout's mask: the counter-based generator of cpp/fastmlp/dropout.hpp, element
for element, so that the tests can compare the native masks bit for bit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    _FloatArray: TypeAlias = NDArray[np.floating[Any]]


def _mix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # The native dropout.hpp's mix64 (SplitMix64's finaliser after a Weyl step), on uint64
    # arrays, whose arithmetic wraps modulo 2^64 as C++'s unsigned arithmetic does.
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return out


def dropout_mask(shape: tuple[int, int], p: float, seed: int, epoch: int, batch: int, layer: int,
                 dtype: Any = np.float64, row_positions: ArrayLike | None = None) -> _FloatArray:
    """The multiplier inverted dropout applies to a hidden layer's output in a training batch.

    Element (r, u) is mask element e = position(r) * units + u, where position(r) is
    ``row_positions[r]`` (the row's place in a larger batch) or r itself; e of layer `layer`
    (1-based) is kept when the top 32
    bits of mix64(key ^ e) are below floor((1 - p) 2^32), with key = mix64(mix64(mix64(mix64(
    seed) ^ epoch) ^ batch) ^ layer): a counter-based generator, so the same arguments always
    give the same mask, whatever computes it.

    Returns
    -------
    mask : ndarray of `shape` and `dtype`
        1 / (1 - p) (computed in double, rounded to `dtype`) where kept, 0 where dropped.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p!r}")

    def u64(v: int) -> NDArray[np.uint64]:
        return np.array([v & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)

    key = _mix64(_mix64(_mix64(_mix64(u64(seed)) ^ u64(epoch)) ^ u64(batch)) ^ u64(layer))
    rows, units = shape
    positions: NDArray[np.uint64] = (np.arange(rows) if row_positions is None else np.asarray(row_positions)).astype(
        np.uint64)
    # Unsigned throughout (NumPy's stubs type this sum as float64, hence the explicit cast).
    elements = (positions[:, None] * np.uint64(units) + np.arange(units, dtype=np.uint64)).reshape(-1).astype(np.uint64)
    bits = _mix64(key ^ elements) >> np.uint64(32)
    threshold = np.uint64(math.floor((1.0 - p) * 4294967296.0))
    scale = np.dtype(dtype).type(1.0 / (1.0 - p))
    mask: _FloatArray = np.where(bits < threshold, scale, np.dtype(dtype).type(0)).reshape(shape)
    return mask
