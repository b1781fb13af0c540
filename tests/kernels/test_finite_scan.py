"""The NaN/inf scan of the input checks (fastmlp._core.all_finite, cpp/fastmlp/finite.hpp:
all_finite_shared): every C-contiguous float32/float64 X that a fit or a prediction takes is
scanned natively, in 64 Ki-value chunks shared between threads; anything else takes NumPy's path
in fastmlp._validation.all_finite. Either way one NaN or infinity anywhere is found, and no
finite value (huge ones whose sum overflows, subnormals, negative zero) is taken for one."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp._validation import all_finite

CHUNK = 64 * 1024
N = 3 * CHUNK + 5  # three whole chunks and a short fourth
POSITIONS = [0, 15, 16, CHUNK - 1, CHUNK, 2 * CHUNK + 7, N - 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_the_native_scan_finds_one_nonfinite_value_anywhere(threads, dtype, value, n_threads):
    threads(n_threads)
    x = np.random.default_rng(0).normal(size=N).astype(dtype)
    assert _core.all_finite(x) is True
    for i in POSITIONS:
        y = x.copy()
        y[i] = value
        assert _core.all_finite(y) is False, i
        assert _core.all_finite(y.reshape(1, N)) is False, i  # any shape: the values in memory order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_finite_value_is_taken_for_a_nonfinite_one(dtype):
    info = np.finfo(dtype)
    # Their sum overflows (the reason NumPy's path needs a second, exact pass); each is finite.
    huge = np.full(4 * CHUNK, info.max, dtype=dtype)
    assert _core.all_finite(huge) is True and all_finite(huge) is True
    tiny = np.array([info.smallest_subnormal, -info.smallest_subnormal, -0.0, 0.0, info.min], dtype=dtype)
    assert _core.all_finite(tiny) is True
    assert _core.all_finite(np.empty((0, 7), dtype=dtype)) is True
    assert _core.all_finite(np.array(1.5, dtype=dtype)) is True  # zero dimensions: one value


def test_the_native_scan_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.all_finite(np.zeros(3, dtype=np.float16))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.all_finite(np.zeros((4, 4))[:, ::2])


@pytest.mark.parametrize("make", [
    pytest.param(lambda x: x, id="C-contiguous float64 (native)"),
    pytest.param(lambda x: x.astype(np.float32), id="C-contiguous float32 (native)"),
    pytest.param(lambda x: np.asfortranarray(x), id="Fortran order (NumPy)"),
    pytest.param(lambda x: x[:, ::2], id="a strided view (NumPy)"),
    pytest.param(lambda x: x.astype(np.float16), id="float16 (NumPy)"),
    pytest.param(lambda x: x.astype(">f8"), id="big-endian (NumPy)"),
])
def test_the_input_check_finds_a_nan_on_either_path(make):
    x = np.random.default_rng(1).normal(size=(300, 64))
    assert all_finite(make(x)) is True
    x[157, 40] = np.nan
    assert not all_finite(make(x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_refuses_a_nan_in_x_before_any_weight_changes(dtype):
    net = fastmlp.Network([20, 8, 3], dtype=dtype, seed=0)
    before = [w.copy() for w in net.weights]
    X = np.random.default_rng(2).normal(size=(5000, 20)).astype(dtype)
    y = np.arange(5000) % 3
    X[4999, 19] = np.nan  # the last value of the last chunk
    with pytest.raises(ValueError, match="X contains NaN"):
        fastmlp.Trainer(net, batch_size=64).fit(X, y, epochs=1)
    for w, b in zip(net.weights, before):
        np.testing.assert_array_equal(w, b)
