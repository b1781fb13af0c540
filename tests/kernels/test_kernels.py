"""Each native kernel alone against the NumPy oracle (fastmlp.reference), in float32 and
float64, over edge shapes: batch 1, width 1, widths that are not multiples of the SIMD or
tile sizes, and widths past 1000. The oracle runs in float64 on the same inputs."""

import numpy as np
import pytest

from fastmlp import _core
from fastmlp import reference as ref

DTYPES = [np.float32, np.float64]


# Runs each test of this file on every micro-kernel path the CPU supports.
pytestmark = pytest.mark.usefixtures("isa")

ACTIVATIONS = ["identity", "relu", "tanh", "sigmoid"]
# (batch, fan-in, fan-out): 1s, SIMD edges (7, 8, 9, 17), tile edges (31, 33, 255, 257), > 1000.
SHAPES = [
    (1, 1, 1), (1, 7, 3), (2, 8, 2), (3, 9, 5), (4, 16, 4), (5, 17, 9), (7, 33, 31),
    (16, 64, 33), (17, 255, 10), (33, 257, 65), (8, 1025, 7), (3, 1500, 1100), (64, 100, 1024),
]


def close(got, want, dtype, n_terms=1):
    """Native result vs float64 oracle: error budget grows with the number of summed terms."""
    assert got.dtype == dtype and got.shape == want.shape
    eps = np.finfo(dtype).eps
    scale = np.abs(want).max(initial=0.0) + 1.0
    np.testing.assert_allclose(got, want, rtol=8 * eps * np.sqrt(n_terms), atol=8 * eps * np.sqrt(n_terms) * scale)


def data(rng, shape, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("B,IN,OUT", SHAPES)
def test_dense_forward(rng, dtype, activation, B, IN, OUT):
    x, W, b = data(rng, (B, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    got = _core.dense_forward(x, W, b, activation)
    want = ref.dense_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), activation)
    close(got, want, dtype, IN)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_forward_and_backward(rng, dtype, activation):
    a = data(rng, (13, 37), dtype, -6, 6)
    a[0, :4] = [0.0, -0.0, 1e-30, -1e-30]
    h = _core.activation_forward(a, activation)
    close(h, ref.activation_forward(a.astype(np.float64), activation), dtype)
    dh = data(rng, a.shape, dtype)
    da = _core.activation_backward(dh, h, activation)
    close(da, ref.activation_backward(dh.astype(np.float64), h.astype(np.float64), activation), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_activations_at_extremes(dtype, activation):
    big = np.finfo(dtype).max
    a = np.array([[-big, -1e4, -88.8, -20.0, 0.0, 20.0, 88.8, 1e4, big]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow in the oracle either
        want = ref.activation_forward(a.astype(np.float64), activation)
    h = _core.activation_forward(a, activation)
    assert np.isfinite(h).all()
    close(h, want, dtype)
    da = _core.activation_backward(np.ones_like(a), h, activation)
    assert np.isfinite(da).all() and (da >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,IN,OUT", SHAPES)
def test_dense_backward_input(rng, dtype, B, IN, OUT):
    da, W = data(rng, (B, OUT), dtype), data(rng, (OUT, IN), dtype)
    got = _core.dense_backward_input(da, W)
    close(got, ref.dense_backward_input(da.astype(np.float64), W.astype(np.float64)), dtype, OUT)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("B,IN,OUT", [(1, 1, 1), (5, 17, 9), (33, 257, 65), (3, 1500, 11)])
def test_dense_backward_input_fused_with_g_prime(rng, dtype, activation, B, IN, OUT):
    da, W = data(rng, (B, OUT), dtype), data(rng, (OUT, IN), dtype)
    h_prev = _core.activation_forward(data(rng, (B, IN), dtype, -3, 3), activation)
    got = _core.dense_backward_input(da, W, h_prev, activation)
    dh = ref.dense_backward_input(da.astype(np.float64), W.astype(np.float64))
    close(got, ref.activation_backward(dh, h_prev.astype(np.float64), activation), dtype, OUT)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,IN,OUT", SHAPES)
def test_dense_backward_params(rng, dtype, B, IN, OUT):
    da, h_prev = data(rng, (B, OUT), dtype), data(rng, (B, IN), dtype)
    dW, db = _core.dense_backward_params(da, h_prev)
    want_dW, want_db = ref.dense_backward_params(da.astype(np.float64), h_prev.astype(np.float64))
    close(dW, want_dW, dtype, B)
    close(db, want_db, dtype, B)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,K", [(1, 2), (3, 3), (7, 10), (64, 17), (5, 1001)])
@pytest.mark.parametrize("target_kind", ["labels", "one_hot", "soft"])
def test_softmax_xent_backward(rng, dtype, B, K, target_kind, isa):
    logits = data(rng, (B, K), dtype, -5, 5)
    labels = rng.integers(0, K, size=B)
    if target_kind == "labels":
        y = labels.astype(np.int64)
    elif target_kind == "one_hot":
        y = np.eye(K, dtype=dtype)[labels]
    else:
        y = rng.uniform(0, 1, size=(B, K))
        y = (y / y.sum(axis=1, keepdims=True)).astype(dtype)
    loss, dlogits = _core.softmax_xent_backward(logits, y)
    y64 = y if target_kind == "labels" else y.astype(np.float64)
    want_loss, want_d = ref.softmax_xent_backward(logits.astype(np.float64), y64)
    assert isinstance(loss, float)
    assert loss == pytest.approx(want_loss, rel=20 * np.finfo(dtype).eps * np.sqrt(K))
    close(dlogits, want_d, dtype, K)
    # The gradient rows of (yhat - y)/B sum to zero.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=10 * np.finfo(dtype).eps * np.sqrt(K))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_is_stable_at_huge_logits(dtype, isa):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [-1e4, -1e4, -1e4], [3e38, -3e38, 0.0]], dtype=dtype)
    y = np.array([1, 1, 2, 0], dtype=np.int64)
    loss, d = _core.softmax_xent_backward(logits, y)
    assert np.isfinite(d).all()
    # Row losses: 2e4 (wrong by 2e4), 0, log 3, 0 -> mean.
    assert loss == pytest.approx((2e4 + 0.0 + np.log(3.0) + 0.0) / 4, rel=1e-6)
    p = _core.softmax(logits)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(p[2], np.full(3, 1 / 3, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(rng, dtype, isa):
    logits = data(rng, (9, 13), dtype, -30, 30)
    close(_core.softmax(logits), ref.softmax(logits.astype(np.float64)), dtype, 13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [2, 3, 4, 8, 9, 17])
def test_softmax_underflows_and_propagates_nan_as_libm_does(dtype, K, isa):
    """The vector exp of the AVX2 path stops at its clamp (-87.3 in float, -708 in double); exponents
    below it must still give libm's tiny or zero probabilities, on every path and at every position
    of a row (the vector body and the padded tail), and a NaN logit must stay NaN."""
    gaps = np.array([0.0, -1.0, -80.0, -87.5, -95.0, -103.5, -200.0, -700.0, -707.9, -720.0, -746.0, -1e4],
                    np.float64)
    for shift in range(K):
        logits = np.roll(np.resize(gaps, K), shift).astype(dtype)
        logits[shift] = 0.0  # the row's max, so every exponent is exactly the gap
        want = np.exp(logits.astype(np.float64))
        want = (want / want.sum()).astype(dtype)
        got = _core.softmax(logits[None, :])[0]
        np.testing.assert_allclose(got, want, rtol=8 * np.finfo(dtype).eps, atol=0)
        assert ((got == 0) == (want == 0)).all(), (got, want)
    nan_row = np.zeros((1, K), dtype)
    nan_row[0, K // 2] = np.nan
    assert np.isnan(_core.softmax(nan_row)[0, K // 2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (16385,), (33, 257)])
def test_sgd_update(rng, dtype, shape):
    param, grad = data(rng, shape, dtype), data(rng, shape, dtype)
    want = param.copy()
    ref.sgd_update(want, grad, 0.05)  # same precision, same operations: bitwise equal
    _core.sgd_update(param, grad, 0.05)
    np.testing.assert_array_equal(param, want)


def test_kernels_accept_empty_batches(rng):
    W, b = data(rng, (4, 3), np.float32), data(rng, 4, np.float32)
    assert _core.dense_forward(np.empty((0, 3), np.float32), W, b, "relu").shape == (0, 4)
    dW, db = _core.dense_backward_params(np.empty((0, 4), np.float32), np.empty((0, 3), np.float32))
    assert (dW == 0).all() and (db == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_are_bitwise_identical_for_any_thread_count(rng, threads, dtype):
    # Large enough that every kernel splits its work across threads.
    B, IN, OUT = 96, 1031, 300
    x, W, b = data(rng, (B, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    da = data(rng, (B, OUT), dtype)
    h_prev = _core.activation_forward(x, "tanh")
    results = []
    for n in (1, 2, 3):
        threads(n)
        p = W.copy()
        _core.sgd_update(p, W, 0.1)
        results.append([
            _core.dense_forward(x, W, b, "relu"),
            _core.dense_backward_input(da, W, h_prev, "tanh"),
            *_core.dense_backward_params(da, h_prev),
            p,
        ])
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert a.tobytes() == c.tobytes()


def test_bindings_never_convert(rng):
    W64 = data(rng, (4, 3), np.float64)
    with pytest.raises(TypeError):
        _core.dense_forward(data(rng, (2, 3), np.float32), W64, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.dense_forward(np.asfortranarray(data(rng, (5, 3), np.float32)), W64.astype(np.float32),
                            np.zeros(4, np.float32))
    p = np.zeros(3, np.float32)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="not writeable"):
        _core.sgd_update(p, np.ones(3, np.float32), 0.1)
    with pytest.raises(ValueError, match="outside"):
        _core.softmax_xent_backward(np.zeros((2, 3), np.float32), np.array([0, 3], np.int64))
    with pytest.raises(ValueError, match="unknown activation"):
        _core.activation_forward(np.zeros((1, 1), np.float32), "swish")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_float32_activations_are_accurate_to_a_few_ulp_everywhere(activation):
    # A dense grid over the whole interesting range, and tiny magnitudes where tanh(x) ~ x.
    grid = np.concatenate([np.linspace(-20, 20, 400_001),
                           np.logspace(-30, 1.3, 20_000), -np.logspace(-30, 1.3, 20_000)])
    a = grid.astype(np.float32).reshape(1, -1)
    h = _core.activation_forward(a, activation).astype(np.float64)
    want = ref.activation_forward(a.astype(np.float64), activation)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(h - want) / ulp) <= 4


@pytest.mark.parametrize("dtype,tol", [(np.float32, 3e-6), (np.float64, 1e-14)])
def test_weight_gradient_over_a_long_batch_stays_accurate(rng, dtype, tol):
    # dW sums B outer products: one float32 chain of 60,000 terms drifts to ~1e-5 relative; the
    # engine adds per-k-block chains instead, which keeps it near 1e-6.
    B, IN, OUT = 60_000, 16, 6
    da = rng.uniform(0.0, 1.0, size=(B, OUT)).astype(dtype)  # same-sign terms: the worst case for drift
    h = rng.uniform(0.0, 1.0, size=(B, IN)).astype(dtype)
    dW, _db = _core.dense_backward_params(da, h)
    want_dW, _want_db = ref.dense_backward_params(da.astype(np.float64), h.astype(np.float64))
    assert np.max(np.abs(dW - want_dW) / np.abs(want_dW)) < tol


# The GEMM engine reads A in place when its k range spans little memory and packs it otherwise
# (gemm.hpp, kDirectASpanBytes = 256 KiB over up to kGemmKC = 256 values of k). In da^T h the k
# stride of A is OUT: OUT = 300 with a batch of 700 rows (3 blocks of 234) takes the packed path, OUT = 40 the
# in-place one; both must agree with the oracle and be bitwise independent of the thread count.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,IN,OUT", [(700, 37, 300), (700, 37, 40), (513, 130, 129)])
def test_weight_gradient_on_packed_and_in_place_paths(rng, threads, dtype, B, IN, OUT):
    da, h_prev = data(rng, (B, OUT), dtype), data(rng, (B, IN), dtype)
    want_dW, want_db = ref.dense_backward_params(da.astype(np.float64), h_prev.astype(np.float64))
    results = []
    for n in (1, 2, 3):
        threads(n)
        dW, db = _core.dense_backward_params(da, h_prev)
        close(dW, want_dW, dtype, B)
        close(db, want_db, dtype, B)
        results.append(dW.tobytes())
    assert results[0] == results[1] == results[2]


# With several blocks of k and A read in place, a thread takes its slivers of B in groups whose
# strip of C stays in L2 (gemm.hpp, kGemmCStripBytes: 31 slivers for a 264-row block), every
# block of k per group. A batch of 264 rows, K = 300 (two blocks) and 1040 float32 (520 float64)
# outputs make 65 slivers: groups of 31, 31 and 3 on one thread, and on each of two or three.
@pytest.mark.parametrize("dtype", DTYPES)
def test_products_taken_in_groups_of_slivers(rng, threads, dtype):
    B, K = 264, 300
    OUT = 1040 if dtype == "float32" else 520
    x, W, b = data(rng, (B, K), dtype), data(rng, (OUT, K), dtype), data(rng, OUT, dtype)
    da, W2 = data(rng, (B, K), dtype), data(rng, (K, OUT), dtype)  # dh = da W2: K = 300 deep, OUT wide
    want_h = ref.dense_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), "identity")
    want_dh = ref.dense_backward_input(da.astype(np.float64), W2.astype(np.float64))
    got = []
    for n in (1, 2, 3):
        threads(n)
        h, dh = _core.dense_forward(x, W, b, "identity"), _core.dense_backward_input(da, W2)
        close(h, want_h, dtype, K)
        close(dh, want_dh, dtype, K)
        got.append((h.tobytes(), dh.tobytes()))
    assert got[0] == got[1] == got[2]


# A product whose A (read in place) is larger than 512 KiB and whose B, packed whole for one
# block of k, is small is shared by rows at 2 and 3 threads (gemm.hpp, kRowTasksMinABytes):
# B packed between barriers, row tasks over every column. A prediction of 1024 rows of 784
# features is one; the others have edge tiles in both directions (M % 6, N % NR) and one or
# several blocks of k. The bits must be those of one thread (column tasks) and of the oracle.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["identity", "relu"])
@pytest.mark.parametrize("B,IN,OUT", [(1024, 784, 128), (500, 300, 100), (3001, 60, 9)])
def test_dense_forward_shared_by_rows(rng, isa, threads, dtype, activation, B, IN, OUT):
    x, W, b = data(rng, (B, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    want = ref.dense_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), activation)
    got = []
    for n in (1, 2, 3):
        threads(n)
        h = _core.dense_forward(x, W, b, activation)
        close(h, want, dtype, IN)
        got.append(h.tobytes())
    assert got[0] == got[1] == got[2]


# The forward product packs B = W^T with 8 x 8 register transposes for whole 16-wide slivers
# and element by element for the rest: fan-ins around multiples of 8 and of the 256-deep k
# block (cut into equal blocks: 257 = 128 + 129), fan-outs around multiples of 16, on both
# sides of every edge.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("IN", [7, 8, 9, 255, 256, 257, 511, 512, 513, 1031])
@pytest.mark.parametrize("OUT", [15, 16, 17, 48])
def test_dense_forward_transposed_packing_edges(rng, threads, dtype, IN, OUT):
    B = 13
    x, W, b = data(rng, (B, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    want = ref.dense_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), "identity")
    got = []
    for n in (1, 2):
        threads(n)
        got.append(_core.dense_forward(x, W, b, "identity"))
        close(got[-1], want, dtype, IN)
    assert got[0].tobytes() == got[1].tobytes()


# The input gradient below a narrow layer (K = OUT small) runs its epilogue once per row of a
# thread's block instead of once per tile row; the fused g' must still be applied everywhere.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("B,IN,OUT", [(128, 128, 10), (131, 259, 10), (7, 2000, 3)])
def test_dense_backward_input_narrow_layer_epilogue(rng, threads, dtype, activation, B, IN, OUT):
    da, W = data(rng, (B, OUT), dtype), data(rng, (OUT, IN), dtype)
    h_prev = _core.activation_forward(data(rng, (B, IN), dtype, -3, 3), activation)
    dh = ref.dense_backward_input(da.astype(np.float64), W.astype(np.float64))
    want = ref.activation_backward(dh, h_prev.astype(np.float64), activation)
    got = []
    for n in (1, 2):
        threads(n)
        got.append(_core.dense_backward_input(da, W, h_prev, activation))
        close(got[-1], want, dtype, OUT)
    assert got[0].tobytes() == got[1].tobytes()


# One row (one sample predicted) runs the one-row micro-kernel where the ISA has one: over
# several blocks of k (1500 = 6 x 250), more slivers than it takes at once, a partial sliver;
# W read in place (float32 AVX2) for groups of 1, 2, 3 and 4 full slivers, with and without
# k left over past a multiple of 8 (784 = 4 x 196; 9; 20), and packed where a sliver is partial.
ONE_ROW_SHAPES = [(1, 784, 128), (1, 1500, 100), (1, 33, 1100), (1, 257, 5), (1, 100, 48), (1, 20, 32), (1, 9, 16)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["identity", "relu"])
@pytest.mark.parametrize("B,IN,OUT", ONE_ROW_SHAPES)
def test_dense_forward_of_one_row_is_that_row_of_a_batch(rng, isa, dtype, activation, B, IN, OUT):
    x, W, b = data(rng, (9, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    batch = _core.dense_forward(x, W, b, activation)
    for r in (0, 8):
        got = _core.dense_forward(x[r:r + 1], W, b, activation)
        np.testing.assert_array_equal(got, batch[r:r + 1])  # the same chain per element, bit for bit
        want = ref.dense_forward(x[r:r + 1].astype(np.float64), W.astype(np.float64), b.astype(np.float64),
                                 activation)
        close(got, want, dtype, IN)


# A batch of 32 or 64 rows with at least twice as many outputs is computed transposed, C^T =
# W X^T (dense.hpp, gemm.hpp: transposed_forward_pays): the same chain per element as the direct
# product, so its rows are bitwise those of a batch one row longer (33, 65: direct). Shapes: one
# and six blocks of k (1500), an edge sliver of W's rows (130 outputs), row tasks with B packed
# whole per thread (AVX-512, one sliver of 32 columns) and column tasks (AVX2, two of 16).
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["identity", "relu", "gelu"])
@pytest.mark.parametrize("B,IN,OUT", [(32, 784, 128), (64, 300, 130), (32, 20, 64), (32, 1500, 70)])
def test_dense_forward_transposed_is_the_direct_product(rng, isa, threads, dtype, activation, B, IN, OUT):
    x, W, b = data(rng, (B + 1, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    threads(1)
    direct = _core.dense_forward(x, W, b, activation)[:B]
    want = ref.dense_forward(x[:B].astype(np.float64), W.astype(np.float64), b.astype(np.float64), activation)
    for n in (1, 2, 3):
        threads(n)
        got = _core.dense_forward(x[:B], W, b, activation)
        close(got, want, dtype, IN)
        np.testing.assert_array_equal(got, direct)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,IN", [(40, 1500), (300, 65), (1, 1)])
def test_dense_backward_params_of_one_output(rng, isa, dtype, B, IN):
    # dW = da^T h is then a product of one row (M = OUT = 1): the one-row kernel, k = the batch.
    da, h_prev = data(rng, (B, 1), dtype), data(rng, (B, IN), dtype)
    dW, db = _core.dense_backward_params(da, h_prev)
    want_dW, want_db = ref.dense_backward_params(da.astype(np.float64), h_prev.astype(np.float64))
    close(dW, want_dW, dtype, B)
    close(db, want_db, dtype, B)
