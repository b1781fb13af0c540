"""The native backward pass is the derivative of the native loss: central finite differences
in float64 (relative error < 1e-6) for every activation, with labels and with target
distributions; and the native gradients equal the NumPy oracle's in float32 and float64."""

import numpy as np
import pytest

import fastmlp
from fastmlp import reference as ref

ACTIVATIONS = ["identity", "relu", "tanh", "sigmoid"]


def pre_activations(net, X):
    """a_k of every hidden layer (the points where relu has its kink)."""
    out, h = [], X
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        a = h @ W.T + b
        out.append(a)
        h = ref.activation_forward(a, net.activation)
    return out


def smooth_problem(sizes, activation, batch, targets, seed):
    """A float64 network and batch whose hidden pre-activations all stay 1e-3 away from 0."""
    for attempt in range(100):
        rng = np.random.default_rng(seed + 1000 * attempt)
        net = fastmlp.Network(sizes, activation=activation, dtype="float64", seed=seed + attempt)
        for b in net.biases:
            b[...] = rng.uniform(-0.5, 0.5, size=b.shape)
        X = rng.normal(size=(batch, sizes[0]))
        if all(np.abs(a).min() > 1e-3 for a in pre_activations(net, X)) or activation != "relu":
            break
    if targets:
        y = rng.uniform(0.1, 1.0, size=(batch, sizes[-1]))
        y /= y.sum(axis=1, keepdims=True)
    else:
        y = rng.integers(0, sizes[-1], size=batch)
    return net, X, y


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [[7, 13, 5, 4], [3, 1, 2], [6, 3]])
@pytest.mark.parametrize("batch", [1, 6])
@pytest.mark.parametrize("targets", [False, True])
def test_gradients_match_central_differences(activation, sizes, batch, targets, isa):
    net, X, y = smooth_problem(sizes, activation, batch, targets, seed=len(sizes) * 10 + batch)
    loss, grads = net.gradients(X, y)
    assert loss == pytest.approx(net.loss(X, y), rel=1e-14)
    eps = 1e-6
    for k, (dW, db) in enumerate(grads):
        for param, analytic in ((net.weights[k], dW), (net.biases[k], db)):
            numeric = np.empty_like(param)
            for idx in np.ndindex(param.shape):
                saved = param[idx]
                param[idx] = saved + eps
                up = net.loss(X, y)
                param[idx] = saved - eps
                down = net.loss(X, y)
                param[idx] = saved
                numeric[idx] = (up - down) / (2 * eps)
            err = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(numeric), 1e-12)
            assert err < 1e-6, f"layer {k}: relative error {err:.2e}"
            np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_the_oracle(dtype, activation, isa):
    rng = np.random.default_rng(7)
    net = fastmlp.Network([37, 65, 17, 10], activation=activation, dtype=dtype, seed=3)
    X = rng.normal(size=(33, 37)).astype(dtype)
    y = rng.integers(0, 10, size=33)
    loss, grads = net.gradients(X, y)
    w64 = [W.astype(np.float64) for W in net.weights]
    b64 = [b.astype(np.float64) for b in net.biases]
    want_loss, want = ref.gradients(w64, b64, activation, X.astype(np.float64), y)
    tol = 2e-5 if dtype == "float32" else 1e-12
    assert loss == pytest.approx(want_loss, rel=tol)
    for (dW, db), (wW, wb) in zip(grads, want):
        assert dW.dtype == np.dtype(dtype) and db.dtype == np.dtype(dtype)
        scale = max(np.abs(wW).max(), np.abs(wb).max())
        np.testing.assert_allclose(dW, wW, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(db, wb, rtol=tol, atol=tol * scale)


def test_softmax_gradient_identity():
    # da_L = (yhat - y) / B, so for a network without hidden layers dW = da^T X exactly.
    rng = np.random.default_rng(0)
    net = fastmlp.Network([5, 4], dtype="float64", seed=0)
    X, y = rng.normal(size=(9, 5)), rng.integers(0, 4, size=9)
    _, [(dW, db)] = net.gradients(X, y)
    da = (net.predict_proba(X) - np.eye(4)[y]) / 9
    np.testing.assert_allclose(dW, da.T @ X, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, da.sum(axis=0), rtol=1e-12, atol=1e-15)


def test_gradients_are_repeatable():
    rng = np.random.default_rng(1)
    net = fastmlp.Network([20, 30, 5], activation="tanh", seed=1)
    X, y = rng.normal(size=(16, 20)), rng.integers(0, 5, size=16)
    first = net.gradients(X, y)
    second = net.gradients(X, y)
    assert first[0] == second[0]
    for (a, b), (c, d) in zip(first[1], second[1]):
        assert a.tobytes() == c.tobytes() and b.tobytes() == d.tobytes()
