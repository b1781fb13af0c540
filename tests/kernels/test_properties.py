"""Property-based tests (hypothesis) of the kernels and of prediction, in float32 and float64,
over random shapes (batch 1-40, widths 1-70) and bounded finite elements, on every kernel path
the CPU has (the `isa` fixture). Derandomized with a fixed example budget: CI runs the same
examples every time, and the file takes a few seconds.

Properties: softmax rows are probabilities and do not change when a constant is added to a row;
softmax cross-entropy's loss is >= 0 and its gradient rows sum to 0 within [-1/B, 1/B];
dense_forward with identity and b = 0 is linear in x; prediction is bitwise independent of how
the rows are batched and of the memory layout of X; sgd_update is bitwise param - lr * grad."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastmlp
from fastmlp import _core

ACTIVATIONS = ["identity", "relu", "tanh", "sigmoid"]
DTYPES = [np.float32, np.float64]

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

batches = st.integers(1, 40)
widths = st.integers(1, 70)


# Runs each property on every micro-kernel path the CPU supports.
pytestmark = pytest.mark.usefixtures("isa")


def floats(dtype, limit):
    """Finite elements in [-limit, limit], representable in dtype."""
    return st.floats(-limit, limit, allow_nan=False, allow_infinity=False, width=32 if dtype == np.float32 else 64)


def matrix(data, dtype, shape, limit=10.0):
    return data.draw(arrays(dtype, shape, elements=floats(dtype, limit)))


def bits(a):
    """The raw bits of a float array, so that -0.0 != 0.0 and the comparison is truly bitwise."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def assert_bitwise(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(bits(got), bits(want))


# ---------------------------------------------------------------- softmax

@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), B=batches, K=widths)
def test_softmax_rows_are_probabilities(isa, data, dtype, B, K):
    logits = matrix(data, dtype, (B, K), limit=100.0)
    p = _core.softmax(logits)
    eps = np.finfo(dtype).eps
    assert p.dtype == dtype and p.shape == (B, K)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=4 * eps * (K + 1))


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), B=batches, K=widths)
def test_softmax_ignores_a_constant_added_to_a_row(isa, data, dtype, B, K):
    logits = matrix(data, dtype, (B, K), limit=100.0)
    c = data.draw(arrays(dtype, (B, 1), elements=floats(dtype, 1e3)))
    shifted = logits + c  # rounded in dtype: each logit moves by at most half an ulp of |x + c|
    p, q = _core.softmax(logits), _core.softmax(shifted)
    eps = np.finfo(dtype).eps
    # An input perturbation of u (absolute) in each logit changes p_i by at most a factor e^{2u}.
    u = np.spacing(np.abs(shifted).max(axis=1, keepdims=True)).astype(np.float64)
    rtol = 2 * u + 8 * eps * (K + 1)
    assert (np.abs(q.astype(np.float64) - p) <= rtol * p + 8 * (K + 1) * np.finfo(dtype).tiny).all(), \
        f"max diff {np.abs(q.astype(np.float64) - p).max()}"


# ---------------------------------------------------------------- softmax cross-entropy

@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), B=batches, K=widths)
def test_softmax_xent_backward_loss_and_gradient_bounds(isa, data, dtype, B, K):
    logits = matrix(data, dtype, (B, K), limit=100.0)
    y = data.draw(arrays(np.int64, B, elements=st.integers(0, K - 1)))
    loss, grad = _core.softmax_xent_backward(logits, y)
    eps = np.finfo(dtype).eps
    assert loss >= 0
    assert grad.dtype == dtype and grad.shape == (B, K)
    bound = dtype(1) / dtype(B)
    assert ((grad >= -bound) & (grad <= bound)).all(), f"grad outside [-1/B, 1/B]: {grad.min()}, {grad.max()}"
    np.testing.assert_allclose(grad.sum(axis=1, dtype=np.float64), 0.0, rtol=0, atol=4 * eps * (K + 1) / B)


# ---------------------------------------------------------------- dense_forward

@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), B=batches, IN=widths, OUT=widths)
def test_dense_forward_identity_is_linear(isa, data, dtype, B, IN, OUT):
    x1, x2 = matrix(data, dtype, (B, IN)), matrix(data, dtype, (B, IN))
    W = matrix(data, dtype, (OUT, IN))
    b = np.zeros(OUT, dtype=dtype)
    f = lambda x: _core.dense_forward(x, W, b, "identity").astype(np.float64)  # noqa: E731
    got, want = f(x1 + x2), f(x1) + f(x2)
    eps = np.finfo(dtype).eps
    # Each side is a dot product of IN terms (plus the rounding of x1 + x2): error <= ~IN eps sum|x||W|.
    scale = (np.abs(x1.astype(np.float64)) + np.abs(x2)) @ np.abs(W.astype(np.float64)).T
    tol = 4 * (IN + 2) * eps * scale + 4 * IN * np.finfo(dtype).tiny
    assert (np.abs(got - want) <= tol).all(), f"max excess {(np.abs(got - want) - tol).max()}"


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), activation=st.sampled_from(ACTIVATIONS),
       B=batches, IN=widths, OUT=widths)
def test_dense_forward_row_alone_is_bitwise_the_same(isa, data, dtype, activation, B, IN, OUT):
    x, W, b = matrix(data, dtype, (B, IN)), matrix(data, dtype, (OUT, IN)), matrix(data, dtype, (OUT,))
    whole = _core.dense_forward(x, W, b, activation)
    for r in range(B):
        assert_bitwise(_core.dense_forward(x[r:r + 1], W, b, activation), whole[r:r + 1])


# ---------------------------------------------------------------- prediction: batches and layouts

@st.composite
def networks(draw):
    dtype = draw(st.sampled_from(DTYPES))
    sizes = [draw(widths)] + draw(st.lists(widths, max_size=2)) + [draw(st.integers(2, 70))]
    activation = draw(st.sampled_from(ACTIVATIONS))
    net = fastmlp.Network(sizes, activation=activation, dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)))
    for b in net.biases:  # non-zero biases, so they take part in every row
        b[...] = np.random.default_rng(len(b)).uniform(-0.5, 0.5, len(b))
    return net


@PROPERTY
@given(data=st.data(), net=networks(), B=batches)
def test_predict_proba_is_bitwise_independent_of_the_batch_split(isa, data, net, B):
    X = matrix(data, net.dtype.type, (B, net.n_features), limit=5.0)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, B - 1), max_size=5)))) if B > 1 else []
    whole = net.predict_proba(X)  # empty pieces are left out: predict_proba refuses 0 rows
    pieces = [net.predict_proba(X[lo:hi]) for lo, hi in zip([0] + cuts, cuts + [B])]
    assert_bitwise(np.concatenate(pieces), whole)


@PROPERTY
@given(data=st.data(), net=networks(), B=batches)
def test_predict_proba_is_bitwise_independent_of_the_memory_layout(isa, data, net, B):
    X = matrix(data, net.dtype.type, (B, net.n_features), limit=5.0)
    want = net.predict_proba(np.ascontiguousarray(X))
    assert_bitwise(net.predict_proba(np.asfortranarray(X)), want)
    reversed_rows = np.ascontiguousarray(X)[::-1]
    assert_bitwise(net.predict_proba(reversed_rows)[::-1], want)
    big = np.zeros((2 * B, 3 * net.n_features), dtype=X.dtype)
    big[::2, 1::3] = X
    strided = big[::2, 1::3]
    assert not strided.flags.c_contiguous or (B == 1 and net.n_features == 1)
    assert_bitwise(net.predict_proba(strided), want)


# ---------------------------------------------------------------- sgd_update

@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), B=batches, N=widths)
def test_sgd_update_with_zero_lr_changes_no_bit(isa, data, dtype, B, N):
    param = data.draw(arrays(dtype, (B, N), elements=floats(dtype, 1e3)))
    grad = matrix(data, dtype, (B, N), limit=1e3)
    before = param.copy()
    _core.sgd_update(param, grad, 0.0)
    assert_bitwise(param, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_update_with_zero_lr_keeps_a_negative_zero(isa, dtype):
    param = np.array([-0.0, -0.0, -0.0], dtype=dtype)
    grad = np.array([1.0, -0.0, -2.0], dtype=dtype)
    _core.sgd_update(param, grad, 0.0)
    assert_bitwise(param, np.array([-0.0, -0.0, -0.0], dtype=dtype))


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), B=batches, N=widths,
       lr=st.floats(1e-6, 10.0, allow_nan=False, allow_infinity=False))
def test_sgd_update_is_bitwise_numpy(isa, data, dtype, B, N, lr):
    param, grad = matrix(data, dtype, (B, N), limit=1e3), matrix(data, dtype, (B, N), limit=1e3)
    want = param - dtype(lr) * grad  # NumPy in the same dtype: one product, one difference
    _core.sgd_update(param, grad, lr)
    assert_bitwise(param, want)
