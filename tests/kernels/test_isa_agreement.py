"""The AVX-512 path gives the AVX2 path's bits: its GEMM micro-kernel (cpp/fastmlp/gemm_avx512.hpp)
computes every element as the same FMA chain in k order, and every other kernel is the AVX2 code.
Checked on products that reach each branch of the driver and of gemm()'s choice of kernel (one row,
outputs narrower and wider than half a 32-wide sliver, edge tiles, several blocks of k, a packed A,
row tasks), at 1 to 3 threads, and on whole training runs (the SGD step inside the micro-kernel,
Adam, gathered minibatch rows) in both dtypes. The oracle comparisons of every path are in
test_kernels.py and the other kernel tests; this file pins the two vector paths to each other,
so that a model trained on one machine is bitwise the model trained on the other."""

import numpy as np
import pytest

import fastmlp
import fastmlp.optim
from fastmlp import _core
from tests.helpers import gemm_products

pytestmark = pytest.mark.skipif(fastmlp.build_info()["isa_available"] != "avx512",
                                reason="this CPU has no AVX-512 path to compare with the AVX2 one")

# (rows, in, out): one row; outputs 10 and 16 (the AVX2 kernel) and 17 and 33 (the AVX-512 one,
# edge slivers); K of 1040 (five blocks of k); a k stride of 520 (da^T packed); A of 600 KiB
# (row tasks); 1030 outputs (contiguous rows of A packed); rows not a multiple of 8.
SHAPES = [(1, 784, 128), (1, 300, 40), (37, 50, 10), (37, 50, 16), (37, 50, 17), (29, 71, 33), (96, 1040, 300),
          (300, 37, 520), (500, 300, 100), (128, 256, 256), (20, 40, 1030)]


def on(isa, fn):
    before = _core.get_isa()
    _core.set_isa(isa)
    try:
        return fn()
    finally:
        _core.set_isa(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,IN,OUT", SHAPES)
def test_products_on_avx512_are_bitwise_those_of_avx2(rng, threads, dtype, B, IN, OUT):
    x = rng.uniform(-1, 1, (B, IN)).astype(dtype)
    W = rng.uniform(-1, 1, (OUT, IN)).astype(dtype)
    b = rng.uniform(-1, 1, OUT).astype(dtype)
    da = rng.uniform(-1, 1, (B, OUT)).astype(dtype)
    h_prev = np.tanh(rng.uniform(-1, 1, (B, IN))).astype(dtype)
    threads(1)
    want = [a.tobytes() for a in on("avx2", lambda: gemm_products(x, W, b, da, h_prev, ("relu", "gelu")))]
    for n in (1, 2, 3):
        threads(n)
        got = [a.tobytes() for a in on("avx512", lambda: gemm_products(x, W, b, da, h_prev, ("relu", "gelu")))]
        assert got == want, n


def train(dtype, optimizer, hidden):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 40)).astype(dtype)
    y = rng.integers(0, 5, size=300)
    net = fastmlp.Network([40, hidden, 64, 5], activation="relu", dtype=np.dtype(dtype).name, seed=3)
    opt = fastmlp.optim.SGD(lr=0.05) if optimizer == "sgd" else fastmlp.optim.Adam(lr=0.01)
    fastmlp.Trainer(net, batch_size=32, shuffle=True, seed=5, optimizer=opt).fit(X, y, epochs=2)
    return [w.tobytes() for w in net.weights] + [b.tobytes() for b in net.biases]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,hidden", [("sgd", 96), ("adam", 1040)])
def test_training_on_avx512_is_bitwise_that_of_avx2(threads, dtype, optimizer, hidden):
    threads(1)
    want = on("avx2", lambda: train(dtype, optimizer, hidden))
    for n in (1, 2):
        threads(n)
        assert on("avx512", lambda: train(dtype, optimizer, hidden)) == want, n

