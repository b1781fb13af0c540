"""The AVX2 dropout masks (cpp/fastmlp/dropout.hpp, dropout_avx2): four 64-bit hashes at once from
32-bit products must be the scalar counter-based hash bit for bit, so the masks equal the NumPy
oracle's exactly on every kernel path, at every row width (full vectors and remainders), for keys
and counters that use all 64 bits, and with signed zeros, NaN and infinities passing through as a
product does."""

import numpy as np
import pytest

from fastmlp import _core
from fastmlp import reference as ref

KEYS = [(0, 1, 0, 1), (12345, 7, 3, 2), (2**63 + 5, 2**40, 99, 4), (2**64 - 1, 2**64 - 1, 2**64 - 1, 2**64 - 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("units", [1, 3, 4, 7, 8, 9, 16, 17, 129, 256])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.97])
def test_masks_are_the_oracles_bit_for_bit_on_every_path(dtype, units, p, isa):
    rng = np.random.default_rng(units)
    x = rng.normal(size=(11, units)).astype(dtype)
    x.flat[::7] = -0.0
    x.flat[3::11] = np.inf
    x.flat[5::13] = np.nan
    for key in KEYS:
        got = _core.dropout_apply(x, p, *key)
        mask = ref.dropout_mask(x.shape, p, *key[:3], layer=key[3], dtype=dtype)
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in the kernel
            want = x * mask  # the oracle's mask holds 0 or 1 / (1 - p): the same product
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_positions_far_apart_use_their_own_counters(dtype, isa):
    # Counters near 2^63 and past 2^32: the vector code's 64-bit counter arithmetic must carry.
    x = np.ones((3, 20), dtype=dtype)
    positions = np.array([2**33 + 1, 0, 2**40 - 1], dtype=np.int64)  # the bindings allow < 2^40
    got = _core.dropout_apply(x, 0.5, 9, 8, 7, 1, positions)
    whole = {}
    for r, pos in enumerate(positions):
        # Row r takes the mask elements pos * 20 .. pos * 20 + 19 of the layer's counter space.
        key = _core.dropout_apply(np.ones((1, 20), dtype=dtype), 0.5, 9, 8, 7, 1, np.array([pos]))
        whole[r] = key
        assert got[r].tobytes() == key[0].tobytes()
    assert not all(np.array_equal(whole[0], whole[r]) for r in (1, 2))
