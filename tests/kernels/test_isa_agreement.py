"""The AVX-512 path gives the AVX2 path's bits: its GEMM micro-kernel (cpp/fastmlp/gemm_avx512.hpp)
computes every element as the same FMA chain in k order; float gelu and silu (cpp/fastmlp/vecmath_avx512.hpp)
do the AVX2 code's operations 16 lanes at a time; every other kernel is the AVX2 code.
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


ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus"]


def activation_inputs(dtype, n):
    """n values of a over every branch of the vector code: both sides of gelu's |a| = 0.75 and
    16 and of exp's clamps, zeros, subnormals, huge values, infinities and NaN; then a spread
    of ordinary values. One row of n: the tail of a row (n % 16) takes the padded path."""
    special = [0.0, -0.0, 0.75, -0.75, np.nextafter(0.75, 1), -np.nextafter(0.75, 1), 16.0, -16.0, 13.2, -13.2,
               88.7, -87.3, 100.0, -100.0, 1e-40, -1e-40, 1e-7, -1e-7, 3e38, -3e38, np.inf, -np.inf, np.nan]
    rng = np.random.default_rng(n)
    spread = rng.normal(size=n) * rng.choice([0.1, 1.0, 4.0, 30.0], size=n)
    values = np.concatenate([special, spread])[:n]
    return values.astype(dtype).reshape(1, n)


# Lengths: shorter than one AVX-512 vector, exactly one, one and a bit, and long with a tail.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n", [7, 16, 23, 1000])
def test_activations_on_avx512_are_bitwise_those_of_avx2(dtype, activation, n):
    a = activation_inputs(dtype, n)
    dh = np.random.default_rng(1).normal(size=a.shape).astype(dtype)
    saved = a if activation in ("gelu", "silu") else on("avx2", lambda: _core.activation_forward(a, activation))

    def both():
        return (_core.activation_forward(a, activation).tobytes(),
                _core.activation_backward(dh, saved, activation).tobytes())

    assert on("avx512", both) == on("avx2", both)


def train(dtype, optimizer, hidden, activation="relu"):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 40)).astype(dtype)
    y = rng.integers(0, 5, size=300)
    net = fastmlp.Network([40, hidden, 64, 5], activation=activation, dtype=np.dtype(dtype).name, seed=3)
    opt = fastmlp.optim.SGD(lr=0.05) if optimizer == "sgd" else fastmlp.optim.Adam(lr=0.01)
    fastmlp.Trainer(net, batch_size=32, shuffle=True, seed=5, optimizer=opt).fit(X, y, epochs=2)
    return [w.tobytes() for w in net.weights] + [b.tobytes() for b in net.biases]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,hidden,activation",
                         [("sgd", 96, "relu"), ("adam", 1040, "relu"), ("sgd", 96, "gelu"), ("adam", 100, "silu")])
def test_training_on_avx512_is_bitwise_that_of_avx2(threads, dtype, optimizer, hidden, activation):
    threads(1)
    want = on("avx2", lambda: train(dtype, optimizer, hidden, activation))
    for n in (1, 2):
        threads(n)
        assert on("avx512", lambda: train(dtype, optimizer, hidden, activation)) == want, n

