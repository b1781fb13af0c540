"""Tests of the reference implementations themselves, before anything is compared against them.

The NumPy oracle and the pure-Python version check each other; finite differences, a hand-worked SGD
step and extreme logits check both against the math. Only fastmlp.reference and NumPy are imported, so
this file runs before the native extension is built.
"""

import numpy as np
import pytest

from fastmlp import reference as ref
from fastmlp.reference import pure

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
# Cases run through both implementations: (module, dtype of the NumPy arrays; None for pure lists).
IMPLEMENTATIONS = [
    pytest.param(ref, np.float64, id="numpy-f64"),
    pytest.param(ref, np.float32, id="numpy-f32"),
    pytest.param(pure, None, id="pure"),
]
# NumPy and pure Python use different exp/log/tanh routines and summation orders: they agree to rounding.
AGREE = dict(rtol=1e-12, atol=1e-12)


# --- helpers ----------------------------------------------------------------------------------------


def make_network(sizes, rng):
    weights = [rng.standard_normal((n_out, n_in)) / np.sqrt(n_in) for n_in, n_out in zip(sizes, sizes[1:])]
    biases = [0.5 * rng.standard_normal(n_out) for n_out in sizes[1:]]
    return weights, biases


def make_targets(kind, n_samples, n_classes, rng):
    if kind == "labels":
        return rng.integers(0, n_classes, n_samples)
    # Soft targets with some exact zeros, the case a naive y * log(yhat) turns into 0 * log(0).
    y = rng.dirichlet(np.ones(n_classes), n_samples)
    y[::2] = np.eye(n_classes)[rng.integers(0, n_classes, len(y[::2]))]
    return y


def to_impl(impl, dtype, *arrays):
    """Convert nested lists or arrays into what `impl` takes: arrays of `dtype`, or fresh lists for pure."""
    if impl is pure:
        return [np.asarray(a).tolist() for a in arrays]
    return [np.array(a, dtype=dtype) for a in arrays]


def as_f64(x):
    return np.asarray(x, dtype=np.float64)


def tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else AGREE


def relu_hidden_pre_activations(weights, biases, X):
    h, pre = X, []
    for W, b in zip(weights[:-1], biases[:-1]):
        pre.append(ref.dense_forward(h, W, b))
        h = ref.activation_forward(pre[-1], "relu")
    return pre


def numerical_gradients(loss_fn, params, eps=1e-6):
    """Central differences (L(p + eps) - L(p - eps)) / 2 eps, one parameter at a time, in place."""
    result = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            original = p[idx]
            p[idx] = original + eps
            loss_plus = loss_fn()
            p[idx] = original - eps
            loss_minus = loss_fn()
            p[idx] = original
            g[idx] = (loss_plus - loss_minus) / (2 * eps)
        result.append(g)
    return result


# --- pure Python agrees with NumPy in float64 -------------------------------------------------------


def test_activation_names_are_the_documented_ones():
    # The NumPy oracle has every activation the package has; the pure-Python one (a benchmark
    # baseline) keeps the original four, which these cross-checks cover.
    assert tuple(ref.ACTIVATIONS) == ("identity", "relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid",
                                      "softplus")
    assert tuple(pure.ACTIVATIONS) == ACTIVATIONS


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_agree(activation):
    rng = np.random.default_rng(0)
    a = 3 * rng.standard_normal((5, 7))
    dh = rng.standard_normal((5, 7))
    h = ref.activation_forward(a, activation)
    da = ref.activation_backward(dh, h, activation)
    np.testing.assert_allclose(pure.activation_forward(a.tolist(), activation), h, **AGREE)
    np.testing.assert_allclose(pure.activation_backward(dh.tolist(), h.tolist(), activation), da, **AGREE)
    # Vectors are elementwise too.
    np.testing.assert_allclose(pure.activation_forward(a[0].tolist(), activation), h[0], **AGREE)
    da_row = pure.activation_backward(dh[0].tolist(), h[0].tolist(), activation)
    np.testing.assert_allclose(da_row, da[0], **AGREE)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_values_and_derivatives(activation):
    a = np.array([[-2.0, -0.5, 0.5, 2.0]])
    expected_h = {
        "identity": a,
        "relu": np.maximum(a, 0),
        "tanh": np.tanh(a),
        "sigmoid": 1 / (1 + np.exp(-a)),
    }[activation]
    # Derivatives with respect to a, written from a (not from h) as an independent check.
    expected_dg = {
        "identity": np.ones_like(a),
        "relu": (a > 0).astype(float),
        "tanh": 1 / np.cosh(a) ** 2,
        "sigmoid": np.exp(-a) / (1 + np.exp(-a)) ** 2,
    }[activation]
    dh = np.array([[1.0, -2.0, 3.0, -4.0]])
    for impl in (ref, pure):
        h = impl.activation_forward(a.tolist() if impl is pure else a, activation)
        np.testing.assert_allclose(as_f64(h), expected_h, rtol=1e-14)
        da = impl.activation_backward(dh.tolist() if impl is pure else dh, h, activation)
        np.testing.assert_allclose(as_f64(da), dh * expected_dg, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_kernels_agree(activation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5))
    W = rng.standard_normal((3, 5))
    b = rng.standard_normal(3)
    da = rng.standard_normal((6, 3))
    h = ref.dense_forward(x, W, b, activation)
    np.testing.assert_allclose(h, ref.activation_forward(x @ W.T + b, activation), **AGREE)
    np.testing.assert_allclose(pure.dense_forward(x.tolist(), W.tolist(), b.tolist(), activation), h, **AGREE)

    dh = ref.dense_backward_input(da, W)
    np.testing.assert_allclose(pure.dense_backward_input(da.tolist(), W.tolist()), dh, **AGREE)
    dW, db = ref.dense_backward_params(da, x)
    dW_pure, db_pure = pure.dense_backward_params(da.tolist(), x.tolist())
    np.testing.assert_allclose(dW_pure, dW, **AGREE)
    np.testing.assert_allclose(db_pure, db, **AGREE)
    # dW is the sum over the batch of outer products da_b h_b^T.
    np.testing.assert_allclose(dW, sum(np.outer(d, xb) for d, xb in zip(da, x)), **AGREE)


def test_dense_forward_default_activation_is_identity():
    x, W, b = [[1.0, -2.0]], [[1.0, 1.0]], [0.5]
    assert pure.dense_forward(x, W, b) == [[-0.5]]
    np.testing.assert_array_equal(ref.dense_forward(np.array(x), np.array(W), np.array(b)), [[-0.5]])


@pytest.mark.parametrize("kind", ["labels", "targets"])
def test_softmax_and_cross_entropy_agree(kind):
    rng = np.random.default_rng(2)
    logits = 4 * rng.standard_normal((7, 5))
    y = make_targets(kind, 7, 5, rng)
    probs = ref.softmax(logits)
    np.testing.assert_allclose(pure.softmax(logits.tolist()), probs, **AGREE)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), **AGREE)

    loss, dlogits = ref.softmax_xent_backward(logits, y)
    loss_pure, dlogits_pure = pure.softmax_xent_backward(logits.tolist(), y.tolist())
    assert type(loss) is float and type(loss_pure) is float
    np.testing.assert_allclose(loss_pure, loss, **AGREE)
    np.testing.assert_allclose(dlogits_pure, dlogits, **AGREE)

    Y = np.eye(5)[y] if kind == "labels" else y
    np.testing.assert_allclose(loss, np.mean(-np.sum(Y * np.log(probs), axis=1)), **AGREE)
    np.testing.assert_allclose(dlogits, (probs - Y) / 7, **AGREE)
    # The rows of softmax - y sum to 0 because both rows sum to 1.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-15)


def test_sgd_update_agrees_and_is_in_place():
    rng = np.random.default_rng(3)
    W, dW = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    b, db = rng.standard_normal(3), rng.standard_normal(3)
    expected_W, expected_b = W - 0.1 * dW, b - 0.1 * db

    W_pure, b_pure = W.tolist(), b.tolist()
    rows = list(W_pure)
    assert pure.sgd_update(W_pure, dW.tolist(), 0.1) is None
    assert pure.sgd_update(b_pure, db.tolist(), 0.1) is None
    assert all(r is s for r, s in zip(W_pure, rows))  # rows mutated, not replaced
    np.testing.assert_allclose(W_pure, expected_W, **AGREE)
    np.testing.assert_allclose(b_pure, expected_b, **AGREE)

    W_view = W
    assert ref.sgd_update(W, dW, 0.1) is None
    assert ref.sgd_update(b, db, 0.1) is None
    assert W is W_view
    np.testing.assert_allclose(W, expected_W, **AGREE)
    np.testing.assert_allclose(b, expected_b, **AGREE)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["labels", "targets"])
@pytest.mark.parametrize("sizes", [[7, 13, 5, 4], [3, 2]], ids=["3-layers", "1-layer"])
def test_network_functions_agree(activation, kind, sizes):
    rng = np.random.default_rng(4)
    weights, biases = make_network(sizes, rng)
    X = rng.standard_normal((9, sizes[0]))
    y = make_targets(kind, 9, sizes[-1], rng)
    W_pure, b_pure = [W.tolist() for W in weights], [b.tolist() for b in biases]
    X_pure, y_pure = X.tolist(), y.tolist()

    hs_pure = pure.forward(W_pure, b_pure, activation, X_pure)
    hs = ref.forward(weights, biases, activation, X)
    assert len(hs_pure) == len(hs) == len(sizes)
    for h_pure, h in zip(hs_pure, hs):
        np.testing.assert_allclose(h_pure, h, **AGREE)
    np.testing.assert_allclose(
        pure.predict_proba(W_pure, b_pure, activation, X_pure),
        ref.predict_proba(weights, biases, activation, X),
        **AGREE,
    )
    np.testing.assert_allclose(
        pure.loss(W_pure, b_pure, activation, X_pure, y_pure),
        ref.loss(weights, biases, activation, X, y),
        **AGREE,
    )
    loss_pure, grads_pure = pure.gradients(W_pure, b_pure, activation, X_pure, y_pure)
    loss, grads = ref.gradients(weights, biases, activation, X, y)
    np.testing.assert_allclose(loss_pure, loss, **AGREE)
    assert len(grads_pure) == len(grads) == len(sizes) - 1
    for (dW_pure, db_pure), (dW, db), W, b in zip(grads_pure, grads, weights, biases):
        assert dW.shape == W.shape and db.shape == b.shape
        np.testing.assert_allclose(dW_pure, dW, **AGREE)
        np.testing.assert_allclose(db_pure, db, **AGREE)

    loss_pure = pure.train_step(W_pure, b_pure, activation, X_pure, y_pure, 0.3)
    loss = ref.train_step(weights, biases, activation, X, y, 0.3)
    np.testing.assert_allclose(loss_pure, loss, **AGREE)
    order = rng.permutation(9)
    loss_pure = pure.train_epoch(W_pure, b_pure, activation, X_pure, y_pure, 4, 0.3, order=order.tolist())
    loss = ref.train_epoch(weights, biases, activation, X, y, 4, 0.3, order=order)
    np.testing.assert_allclose(loss_pure, loss, **AGREE)
    for W_p, b_p, W, b in zip(W_pure, b_pure, weights, biases):
        np.testing.assert_allclose(W_p, W, **AGREE)
        np.testing.assert_allclose(b_p, b, **AGREE)


@pytest.mark.parametrize("impl", [ref, pure], ids=["numpy", "pure"])
def test_labels_and_one_hot_targets_are_the_same_loss(impl):
    rng = np.random.default_rng(5)
    weights, biases = make_network([4, 6, 3], rng)
    X = rng.standard_normal((5, 4))
    labels = rng.integers(0, 3, 5)
    net = [W.tolist() for W in weights], [b.tolist() for b in biases]
    if impl is ref:
        net, X_in, y_labels, y_onehot = (weights, biases), X, labels, np.eye(3)[labels]
    else:
        X_in, y_labels, y_onehot = X.tolist(), labels.tolist(), np.eye(3)[labels].tolist()
    loss_l, grads_l = impl.gradients(*net, "tanh", X_in, y_labels)
    loss_t, grads_t = impl.gradients(*net, "tanh", X_in, y_onehot)
    assert loss_l == pytest.approx(loss_t, rel=1e-15)
    for (dW_l, db_l), (dW_t, db_t) in zip(grads_l, grads_t):
        np.testing.assert_allclose(as_f64(dW_l), as_f64(dW_t), rtol=1e-15, atol=1e-17)
        np.testing.assert_allclose(as_f64(db_l), as_f64(db_t), rtol=1e-15, atol=1e-17)


# --- gradients against central finite differences (float64) -----------------------------------------


@pytest.mark.parametrize("impl", [ref, pure], ids=["numpy", "pure"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["labels", "targets"])
@pytest.mark.parametrize("sizes", [[7, 13, 5, 4], [3, 1, 2]], ids=["7-13-5-4", "3-1-2"])
@pytest.mark.parametrize("n_samples", [1, 6])
def test_gradients_match_finite_differences(impl, activation, kind, sizes, n_samples):
    for seed in range(100):
        rng = np.random.default_rng(seed)
        weights, biases = make_network(sizes, rng)
        X = rng.standard_normal((n_samples, sizes[0]))
        if activation != "relu":
            break
        # relu has a kink at 0: a pre-activation within eps * |h| of it would make the difference
        # quotient straddle the kink, so draw until every hidden pre-activation is clear of it.
        if all(np.abs(a).min() > 1e-3 for a in relu_hidden_pre_activations(weights, biases, X)):
            break
    else:
        pytest.fail("no draw kept the relu pre-activations away from 0")
    y = make_targets(kind, n_samples, sizes[-1], rng)

    if impl is pure:
        # Rebuilt from the arrays on every call, so the perturbations made in place reach pure too.
        def args():
            W_lists, b_lists = [W.tolist() for W in weights], [b.tolist() for b in biases]
            return W_lists, b_lists, activation, X.tolist(), y.tolist()
    else:
        def args():
            return weights, biases, activation, X, y

    def loss_fn():
        return impl.loss(*args())

    loss, grads = impl.gradients(*args())
    assert loss == loss_fn()

    params = [p for W, b in zip(weights, biases) for p in (W, b)]
    analytic = np.concatenate([as_f64(g).ravel() for dW, db in grads for g in (dW, db)])
    numeric = np.concatenate([g.ravel() for g in numerical_gradients(loss_fn, params)])
    rel_err = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(numeric), 1e-12)
    assert rel_err < 1e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


# --- one SGD step worked by hand --------------------------------------------------------------------


@pytest.mark.parametrize("impl, dtype", IMPLEMENTATIONS)
def test_one_sgd_step_worked_by_hand(impl, dtype):
    # A 2-2-2 relu network on a batch of two, with numbers chosen so every step is exact in binary:
    #   X = [[1, 2], [-1, -2]], labels y = [1, 0]
    #   a_1 = X W_1^T + b_1 = [[0.5 + 0.5 + 0.25, -0.5 + 1 - 0.25], [-1 + 0.25, 0.5 - 1 - 0.25]]
    #       = [[1.25, 0.25], [-0.75, -0.75]]      -> h_1 = [[1.25, 0.25], [0, 0]] (sample 2 fully off)
    #   logits = h_1 W_2^T + b_2 = [[1.25 - 0.5 + 0.25, 0.75 + 0.25], [0.25, 0.25]] = [[1, 1], [0.25, 0.25]]
    #   yhat = 0.5 everywhere, so each sample's loss is log 2 and so is the mean.
    #   da_2 = (yhat - onehot(y)) / 2 = [[0.25, -0.25], [-0.25, 0.25]]
    #   dW_2 = da_2^T h_1 = only sample 1: [[0.25 * 1.25, 0.25 * 0.25], [-0.25 * 1.25, -0.25 * 0.25]]
    #   db_2 = column sums = [0, 0]
    #   dh_1 = da_2 W_2 = [[0.25, -0.5 - 0.75], [-0.25, 0.5 + 0.75]] = [[0.25, -1.25], [-0.25, 1.25]]
    #   da_1 = dh_1 * 1[h_1 > 0] = [[0.25, -1.25], [0, 0]]
    #   dW_1 = da_1^T X = [[0.25, 0.5], [-1.25, -2.5]];  db_1 = [0.25, -1.25]
    #   with lr = 0.5: W -= dW / 2, b -= db / 2.
    X, y = [[1.0, 2.0], [-1.0, -2.0]], [1, 0]
    W1, b1 = [[0.5, 0.25], [-0.5, 0.5]], [0.25, -0.25]
    W2, b2 = [[1.0, -2.0], [0.0, 3.0]], [0.25, 0.25]
    X, W1, b1, W2, b2 = to_impl(impl, dtype, X, W1, b1, W2, b2)
    y = list(y) if impl is pure else np.array(y)
    weights, biases = [W1, W2], [b1, b2]
    tol = tolerance(dtype)

    np.testing.assert_allclose(as_f64(impl.predict_proba(weights, biases, "relu", X)), 0.5, **tol)
    loss, ((dW1, db1), (dW2, db2)) = impl.gradients(weights, biases, "relu", X, y)
    assert loss == pytest.approx(np.log(2.0), rel=tol["rtol"])
    np.testing.assert_allclose(as_f64(dW2), [[0.3125, 0.0625], [-0.3125, -0.0625]], **tol)
    np.testing.assert_allclose(as_f64(db2), [0.0, 0.0], **tol)
    np.testing.assert_allclose(as_f64(dW1), [[0.25, 0.5], [-1.25, -2.5]], **tol)
    np.testing.assert_allclose(as_f64(db1), [0.25, -1.25], **tol)

    loss = impl.train_step(weights, biases, "relu", X, y, 0.5)
    assert loss == pytest.approx(np.log(2.0), rel=tol["rtol"])  # the loss before the update
    np.testing.assert_allclose(as_f64(W1), [[0.375, 0.0], [0.125, 1.75]], **tol)
    np.testing.assert_allclose(as_f64(b1), [0.125, 0.375], **tol)
    np.testing.assert_allclose(as_f64(W2), [[0.84375, -2.03125], [0.15625, 3.03125]], **tol)
    np.testing.assert_allclose(as_f64(b2), [0.25, 0.25], **tol)
    # Sample 1 is now classified with logits [-7.453125, 12.453125]; sample 2 is still off (log 2).
    after = impl.loss(weights, biases, "relu", X, y)
    expected_after = (np.log1p(np.exp(-19.90625)) + np.log(2.0)) / 2
    assert after == pytest.approx(expected_after, rel=tol["rtol"])
    if dtype is not None:
        assert all(p.dtype == dtype for p in weights + biases)


# --- numerical stability at extreme inputs ----------------------------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("impl, dtype", IMPLEMENTATIONS)
def test_softmax_cross_entropy_stable_at_huge_logits(impl, dtype):
    logits = [[1e4, -1e4], [-1e4, 1e4], [1e4, 1e4], [-1e4, -1e4]]
    (logits_in,) = to_impl(impl, dtype, logits)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs = as_f64(impl.softmax(logits_in))
        assert np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(probs, [[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5]])

        (one_row,) = to_impl(impl, dtype, [[1e4, -1e4]])
        for y in ([1], [[0.0, 1.0]]):
            y_in = y if impl is pure else np.array(y)
            loss, dlogits = impl.softmax_xent_backward(one_row, y_in)
            assert loss == 2e4
            np.testing.assert_array_equal(as_f64(dlogits), [[1.0, -1.0]])
        # A zero target at a logit whose probability underflows to 0 contributes 0, not 0 * log(0) = nan.
        y_in = [[1.0, 0.0]] if impl is pure else np.array([[1.0, 0.0]])
        loss, dlogits = impl.softmax_xent_backward(one_row, y_in)
        assert loss == 0.0
        np.testing.assert_array_equal(as_f64(dlogits), [[0.0, 0.0]])

        y_in = [0, 1, 0, 1] if impl is pure else np.array([0, 1, 0, 1])
        loss, dlogits = impl.softmax_xent_backward(logits_in, y_in)
        assert np.isfinite(loss) and np.all(np.isfinite(as_f64(dlogits)))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("impl, dtype", IMPLEMENTATIONS)
def test_sigmoid_stable_at_huge_inputs(impl, dtype):
    a = [[1e4, -1e4, 800.0, -800.0, 0.0]]
    (a_in,) = to_impl(impl, dtype, a)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        h = impl.activation_forward(a_in, "sigmoid")
        np.testing.assert_array_equal(as_f64(h), [[1.0, 0.0, 1.0, 0.0, 0.5]])
        (dh,) = to_impl(impl, dtype, [[1.0] * 5])
        da = impl.activation_backward(dh, h, "sigmoid")
        np.testing.assert_array_equal(as_f64(da), [[0.0, 0.0, 0.0, 0.0, 0.25]])
    # Just inside the range where exp(-|a|) is representable, the tiny side keeps its value.
    h = impl.activation_forward(to_impl(impl, np.float64, [[-30.0]])[0], "sigmoid")
    np.testing.assert_allclose(as_f64(h), np.exp(-30.0) / (1 + np.exp(-30.0)), rtol=1e-14)


# --- train_epoch is consecutive train_step calls ----------------------------------------------------


@pytest.mark.parametrize("impl, dtype", IMPLEMENTATIONS)
@pytest.mark.parametrize("use_order", [False, True], ids=["order=None", "permutation"])
def test_train_epoch_is_consecutive_train_steps(impl, dtype, use_order):
    rng = np.random.default_rng(6)
    weights, biases = make_network([4, 5, 3], rng)
    X = rng.standard_normal((10, 4))
    y = rng.integers(0, 3, 10)
    order = rng.permutation(10) if use_order else None
    rows = order if use_order else np.arange(10)
    batch_size = 4  # batches of 4, 4 and a last partial batch of 2

    W_epoch, b_epoch = to_impl(impl, dtype, *weights), to_impl(impl, dtype, *biases)
    (X_in,) = to_impl(impl, dtype, X)
    y_in = y.tolist() if impl is pure else y
    order_in = None if order is None else (order.tolist() if impl is pure else order)
    epoch_loss = impl.train_epoch(W_epoch, b_epoch, "sigmoid", X_in, y_in, batch_size, 0.5, order=order_in)

    W_step, b_step = to_impl(impl, dtype, *weights), to_impl(impl, dtype, *biases)
    total = 0.0
    for start in (0, 4, 8):
        batch = rows[start:start + batch_size]
        (X_b,) = to_impl(impl, dtype, X[batch])
        y_b = y[batch].tolist() if impl is pure else y[batch]
        total += impl.train_step(W_step, b_step, "sigmoid", X_b, y_b, 0.5) * len(batch)
    assert len(batch) == 2

    # The same operations in the same order: equal to the last bit.
    assert epoch_loss == total / 10
    for p_epoch, p_step in zip(W_epoch + b_epoch, W_step + b_step):
        np.testing.assert_array_equal(as_f64(p_epoch), as_f64(p_step))
    for p_epoch, p_start in zip(W_epoch + b_epoch, weights + biases):
        assert not np.array_equal(as_f64(p_epoch), p_start)


# --- dtypes and errors ------------------------------------------------------------------------------


def test_numpy_functions_keep_float32():
    rng = np.random.default_rng(7)
    f32 = np.float32
    weights, biases = make_network([4, 5, 3], rng)
    weights, biases = [W.astype(f32) for W in weights], [b.astype(f32) for b in biases]
    X = rng.standard_normal((6, 4)).astype(f32)
    y = rng.integers(0, 3, 6)
    a = rng.standard_normal((6, 5)).astype(f32)
    for activation in ACTIVATIONS:
        h = ref.activation_forward(a, activation)
        assert h.dtype == f32
        assert ref.activation_backward(a, h, activation).dtype == f32
        assert ref.dense_forward(X, weights[0], biases[0], activation).dtype == f32
        assert all(h.dtype == f32 for h in ref.forward(weights, biases, activation, X))
    assert ref.softmax(a).dtype == f32
    loss, dlogits = ref.softmax_xent_backward(a[:, :3], y)
    assert type(loss) is float and dlogits.dtype == f32
    _, dlogits = ref.softmax_xent_backward(a[:, :3], np.eye(3)[y])  # float64 targets, float32 logits
    assert dlogits.dtype == f32
    assert ref.dense_backward_input(a, weights[1].T).dtype == f32
    assert all(g.dtype == f32 for g in ref.dense_backward_params(a, X))
    assert ref.predict_proba(weights, biases, "tanh", X).dtype == f32
    assert type(ref.loss(weights, biases, "tanh", X, y)) is float
    loss, grads = ref.gradients(weights, biases, "tanh", X, y)
    assert type(loss) is float and all(g.dtype == f32 for pair in grads for g in pair)
    assert type(ref.train_step(weights, biases, "tanh", X, y, 0.1)) is float
    assert type(ref.train_epoch(weights, biases, "tanh", X, y, 4, 0.1)) is float
    assert all(p.dtype == f32 for p in weights + biases)


@pytest.mark.parametrize("impl", [ref, pure], ids=["numpy", "pure"])
def test_unknown_activation_names_the_valid_ones(impl):
    X, W, b = [[1.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]
    X, W, b = to_impl(impl, np.float64, X, W, b)
    y = [0] if impl is pure else np.array([0])
    calls = [
        lambda: impl.activation_forward(X, "swish"),
        lambda: impl.activation_backward(X, X, "swish"),
        lambda: impl.dense_forward(X, W, b, "swish"),
        # A one-layer network never applies a hidden activation; the name is still checked.
        lambda: impl.forward([W], [b], "swish", X),
        lambda: impl.predict_proba([W, W], [b, b], "swish", X),
        lambda: impl.loss([W, W], [b, b], "swish", X, y),
        lambda: impl.gradients([W, W], [b, b], "swish", X, y),
        lambda: impl.train_step([W, W], [b, b], "swish", X, y, 0.1),
        lambda: impl.train_epoch([W, W], [b, b], "swish", X, y, 1, 0.1),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="swish") as excinfo:
            call()
        assert all(repr(name) in str(excinfo.value) for name in ACTIVATIONS)


@pytest.mark.parametrize("impl", [ref, pure], ids=["numpy", "pure"])
@pytest.mark.parametrize("bad_y", [[0, 3], [-1, 0], [0.0, 1.0]], ids=["too-large", "negative", "float"])
def test_bad_labels_are_rejected(impl, bad_y):
    logits = [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]
    if impl is ref:
        logits, bad_y = np.array(logits), np.array(bad_y)
    with pytest.raises(ValueError, match="label"):
        impl.softmax_xent_backward(logits, bad_y)


@pytest.mark.parametrize("impl", [ref, pure], ids=["numpy", "pure"])
def test_train_epoch_rejects_an_order_that_is_not_a_permutation(impl):
    X, W, b = to_impl(impl, np.float64, [[1.0], [2.0], [3.0]], [[1.0], [-1.0]], [0.0, 0.0])
    y = [0, 1, 0] if impl is pure else np.array([0, 1, 0])
    for order in ([0, 0, 1], [0, 1], [0, 1, 3]):
        with pytest.raises(ValueError, match="permutation"):
            impl.train_epoch([W], [b], "relu", X, y, 2, 0.1, order=order)
