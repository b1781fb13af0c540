"""The nine hidden activations and the three output layers: native kernels against the NumPy
oracle (float32 and float64, every kernel path), against PyTorch's definitions where it is
installed, float64 central differences through whole networks, and the user-facing semantics of
the sigmoid and identity outputs (shapes, predictions, errors)."""

import math

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp import reference as ref

ACTIVATIONS = ref.ACTIVATIONS
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def saved_for(activation, a, h):
    """What the native backward takes: the pre-activation for gelu/silu, the output otherwise."""
    return a if activation in ref.TAKES_PREACTIVATION else h


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_kernels_match_the_oracle(activation, dtype, isa, rng):
    # Odd widths reach the vector loops' tails; the values cover both signs, zero and the tails.
    a = (rng.standard_normal((7, 37)) * 4).astype(dtype)
    a[0, :5] = [0.0, -0.0, 1e-30, -1e-30, 30.0]
    h = _core.activation_forward(a, activation)
    np.testing.assert_allclose(h, ref.activation_forward(a, activation), **TOL[dtype])
    assert h.dtype == dtype
    dh = rng.standard_normal(a.shape).astype(dtype)
    da = _core.activation_backward(dh, saved_for(activation, a, h), activation)
    expected = ref.activation_backward(dh, ref.activation_forward(a, activation), activation, a=a)
    np.testing.assert_allclose(da, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_are_finite_for_any_finite_input(activation, dtype, isa):
    big = np.finfo(dtype).max
    a = np.array([[-big, -1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4, big]], dtype=dtype)
    if activation in ("identity", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus"):
        a = a[:, 1:-1]  # these are unbounded: h = a itself near the top, so only a**2 terms could overflow
    h = _core.activation_forward(a, activation)
    assert np.isfinite(h).all(), (activation, h)
    da = _core.activation_backward(np.ones_like(a), saved_for(activation, a, h), activation)
    assert np.isfinite(da).all(), (activation, da)


def test_relu_family_derivatives_at_zero_are_pytorchs():
    a = np.zeros((1, 3))
    ones = np.ones_like(a)
    assert (_core.activation_backward(ones, _core.activation_forward(a, "relu"), "relu") == 0).all()
    assert (_core.activation_backward(ones, _core.activation_forward(a, "leaky_relu"), "leaky_relu") == 0.01).all()
    assert (_core.activation_backward(ones, _core.activation_forward(a, "elu"), "elu") == 1).all()
    assert (_core.activation_backward(ones, a, "gelu") == 0.5).all()
    assert (_core.activation_backward(ones, a, "silu") == 0.5).all()


def test_activations_by_hand():
    a = np.array([[-2.0, 1.0]])
    np.testing.assert_allclose(_core.activation_forward(a, "leaky_relu"), [[-0.02, 1.0]])
    np.testing.assert_allclose(_core.activation_forward(a, "elu"), [[math.expm1(-2.0), 1.0]])
    np.testing.assert_allclose(_core.activation_forward(a, "softplus"),
                               [[math.log1p(math.exp(-2)), math.log1p(math.e)]])
    phi = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    np.testing.assert_allclose(_core.activation_forward(a, "gelu"), [[-2 * phi(-2), phi(1)]], rtol=1e-15)
    np.testing.assert_allclose(_core.activation_forward(a, "silu"), [[-2 / (1 + math.e**2), 1 / (1 + math.exp(-1))]])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_match_torch(activation):
    torch = pytest.importorskip("torch")
    fns = {"identity": lambda t: t, "relu": torch.relu, "leaky_relu": torch.nn.functional.leaky_relu,
           "elu": torch.nn.functional.elu, "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu,
           "tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": torch.nn.functional.softplus}
    a = np.concatenate([np.linspace(-30, 30, 601), [0.0]]).reshape(1, -1)
    t = torch.tensor(a, requires_grad=True)
    out = fns[activation](t)
    out.sum().backward()
    h = _core.activation_forward(a, activation)
    # torch's softplus returns a itself above 20 (its threshold); log1p(e^-a) < 2.1e-9 there
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=1e-12, atol=3e-9 if activation == "softplus" else 1e-15)
    da = _core.activation_backward(np.ones_like(a), saved_for(activation, a, h), activation)
    np.testing.assert_allclose(da, t.grad.numpy(), rtol=1e-12, atol=3e-9 if activation == "softplus" else 1e-15)


# ---------------------------------------------------------------- output layers

def targets_for(output, rng, n, k, dtype):
    if output == "softmax":
        return rng.integers(0, k, n).astype(np.int64)
    if output == "sigmoid":
        return (rng.random((n, k)) < 0.5).astype(dtype)
    return rng.standard_normal((n, k)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_output_kernels_match_the_oracle(output, dtype, rng, isa):
    logits = (rng.standard_normal((9, 5)) * 3).astype(dtype)
    y = targets_for(output, rng, 9, 5, dtype)
    pred, loss, d, _ = _core.output_forward_backward(logits, y, output)
    np.testing.assert_allclose(pred, ref.output_forward(logits, output), **TOL[dtype])
    ref_loss, ref_d = ref.output_loss_backward(logits, y, output)
    assert loss == pytest.approx(ref_loss, rel=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(d, ref_d, **TOL[dtype])


def test_sigmoid_bce_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0]])
    y = np.array([[0.0, 1.0, 1.0]])
    pred, loss, d, _ = _core.output_forward_backward(logits, y, "sigmoid")
    assert np.isfinite(loss) and loss == pytest.approx((1e4 + 1e4 + math.log(2)) / 3)
    np.testing.assert_allclose(d, [[1 / 3, -1 / 3, -0.5 / 3]])
    np.testing.assert_array_equal(pred, [[1.0, 0.0, 0.5]])


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_output_losses_match_torch(output, rng):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((6, 3)) * 4
    y = targets_for(output, rng, 6, 3, np.float64)
    t = torch.tensor(logits, requires_grad=True)
    fn = torch.nn.BCEWithLogitsLoss() if output == "sigmoid" else torch.nn.MSELoss()
    out = fn(t, torch.tensor(y))
    out.backward()
    _, loss, d, _ = _core.output_forward_backward(logits, y, output)
    assert loss == pytest.approx(out.item(), rel=1e-13)
    np.testing.assert_allclose(d, t.grad.numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- whole networks

def fd_check(net, X, y, eps=1e-6):
    """Central differences of net.loss on every parameter of a float64 net vs net.gradients."""
    _, grads = net.gradients(X, y)
    worst = 0.0
    for arrays, which in ((net.weights, 0), (net.biases, 1)):
        for k, p in enumerate(arrays):
            flat = p.reshape(-1)
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + eps
                up = net.loss(X, y)
                flat[i] = keep - eps
                down = net.loss(X, y)
                flat[i] = keep
                numeric = (up - down) / (2 * eps)
                analytic = grads[k][which].reshape(-1)[i]
                worst = max(worst, abs(numeric - analytic) / max(1e-3, abs(numeric), abs(analytic)))
    return worst


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_network_gradients_by_finite_differences_for_every_activation(activation, rng):
    net = fastmlp.Network([4, 6, 5, 3], activation=activation, dtype="float64", seed=1)
    X = rng.standard_normal((7, 4))
    y = rng.integers(0, 3, 7)
    assert fd_check(net, X, y) < 1e-6


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_network_gradients_by_finite_differences_for_each_output(output, rng):
    net = fastmlp.Network([4, 6, 5, 3], activation=["gelu", "tanh"], dtype="float64", seed=2, output=output)
    X = rng.standard_normal((7, 4))
    y = targets_for(output, rng, 7, 3, np.float64)
    assert fd_check(net, X, y) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_network_gradients_match_the_oracle_with_mixed_activations(output, dtype, isa, rng):
    acts = ["silu", "leaky_relu", "softplus"]
    net = fastmlp.Network([13, 40, 33, 17, 4], activation=acts, dtype=dtype, seed=3, output=output)
    X = rng.standard_normal((29, 13)).astype(dtype)
    y = targets_for(output, rng, 29, 4, np.dtype(dtype).type)
    loss, grads = net.gradients(X, y)
    ref_loss, ref_grads = ref.gradients(net.weights, net.biases, acts, X, y, output=output)
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-13)
    assert loss == pytest.approx(ref_loss, rel=tol["rtol"])
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(dW, rW, **tol)
        np.testing.assert_allclose(db, rb, **tol)


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_fit_follows_the_oracle_step_by_step(output, rng):
    net = fastmlp.Network([5, 8, 2], activation="elu", dtype="float64", seed=4, output=output)
    X = rng.standard_normal((23, 5))
    y = targets_for(output, rng, 23, 2, np.float64)
    W, b = [w.copy() for w in net.weights], [c.copy() for c in net.biases]
    history = fastmlp.Trainer(net, lr=0.05, batch_size=6, shuffle=False).fit(X, y, epochs=2)
    losses = [ref.train_epoch(W, b, "elu", X, y, 6, 0.05, output=output) for _ in range(2)]
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    assert (history.accuracy != []) == (output == "sigmoid")


def test_sigmoid_output_semantics(rng):
    X = rng.standard_normal((50, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)  # (n,) with one output unit
    net = fastmlp.Network([3, 8, 1], output="sigmoid", seed=0)
    fastmlp.Trainer(net, lr=0.5, batch_size=10, seed=0).fit(X, y, epochs=40)
    proba = net.predict_proba(X)
    assert proba.shape == (50, 1) and ((proba > 0) & (proba < 1)).all()
    pred = net.predict(X)
    assert pred.shape == (50,) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, (proba[:, 0] > 0.5).astype(int))
    assert net.accuracy(X, y) == pytest.approx(np.mean(pred == y)) and net.accuracy(X, y) > 0.9
    # multi-label: (n, K) predictions, exact-match accuracy
    Y = np.stack([y, 1 - y, np.ones_like(y)], axis=1)
    multi = fastmlp.Network([3, 8, 3], output="sigmoid", seed=0)
    fastmlp.Trainer(multi, lr=0.5, batch_size=10, seed=0).fit(X, Y, epochs=40)
    assert multi.predict(X).shape == (50, 3)
    assert multi.accuracy(X, Y) == pytest.approx(np.mean((multi.predict(X) == Y).all(axis=1)))


def test_identity_output_semantics(rng):
    X = rng.standard_normal((60, 2))
    y = 3 * X[:, 0] - X[:, 1] + 0.5
    net = fastmlp.Network([2, 16, 1], output="identity", activation="tanh", dtype="float64", seed=0)
    history = fastmlp.Trainer(net, lr=0.05, batch_size=10, seed=0).fit(X, y, epochs=100)
    assert history.accuracy == [] and history.loss[-1] < 0.05 * history.loss[0]
    pred = net.predict(X)
    assert pred.shape == (60,) and pred.dtype == np.float64
    assert net.loss(X, y) == pytest.approx(np.mean((pred - y) ** 2), rel=1e-12)
    with pytest.raises(ValueError, match="predict_proba is for classifiers"):
        net.predict_proba(X)
    with pytest.raises(ValueError, match="accuracy is for classifiers"):
        net.accuracy(X, y)
    wide = fastmlp.Network([2, 4, 3], output="identity", seed=0)
    assert wide.predict(X).shape == (60, 3)


@pytest.mark.parametrize("output,y,pattern", [
    ("sigmoid", np.array([[0.0], [2.0]]), r"must lie in \[0, 1\]"),
    ("sigmoid", np.array([0, 1]), r"takes y of shape \(2, 2\)"),
    ("identity", np.array([[np.nan, 0.0], [0.0, 0.0]]), r"contains NaN"),
    ("identity", np.zeros((2, 3)), r"takes y of shape \(2, 2\)"),
    ("identity", np.zeros((3, 2)), r"y has 3 rows but X has 2 samples"),
])
def test_bad_targets_for_the_other_outputs_are_refused(output, y, pattern):
    k = 1 if y.ndim == 2 and y.shape[1] == 1 else 2
    net = fastmlp.Network([3, 4, k], output=output, seed=0)
    before = [w.copy() for w in net.weights]
    with pytest.raises(ValueError, match=pattern):
        fastmlp.Trainer(net).fit(np.zeros((2, 3)), y)
    assert all((a == b).all() for a, b in zip(before, net.weights))


def test_one_output_unit_is_refused_for_a_softmax_but_fine_otherwise():
    with pytest.raises(ValueError, match=r"softmax output needs at least 2 classes.*output='sigmoid'"):
        fastmlp.Network([3, 1])
    assert fastmlp.Network([3, 1], output="sigmoid").n_outputs == 1
    assert fastmlp.Network([3, 1], output="identity").n_outputs == 1


def test_per_layer_activations_are_used_layer_by_layer(rng):
    acts = ["relu", "tanh", "gelu"]
    net = fastmlp.Network([6, 5, 5, 5, 3], activation=acts, dtype="float64", seed=0)
    X = rng.standard_normal((4, 6))
    np.testing.assert_allclose(net.predict_proba(X), ref.predict_proba(net.weights, net.biases, acts, X), rtol=1e-12)
    assert net.activations == acts and net.activation == acts
    # the same weights under one activation everywhere give other outputs
    assert not np.allclose(ref.predict_proba(net.weights, net.biases, "relu", X), net.predict_proba(X))
