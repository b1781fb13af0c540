"""The poisson output (exp of the logits, half the Poisson deviance as scikit-learn's
loss="poisson" defines it): the native kernel against the NumPy oracle and against
finite differences in float64, the target check, and a Trainer fit step by step."""

import numpy as np
import pytest

import fastmlp
import fastmlp.reference as ref
from fastmlp import _core

from .test_activations_outputs import fd_check


def _counts(rng, n, k, dtype=np.float64):
    return rng.poisson(2.0, size=(n, k)).astype(dtype)  # zeros included: 0 log 0 = 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_kernel_matches_the_oracle(dtype, rng):
    logits = rng.standard_normal((9, 4)).astype(dtype)
    y = _counts(rng, 9, 4, dtype)
    pred, loss, d, correct = _core.output_forward_backward(logits, y, "poisson")
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(pred, np.exp(logits.astype(np.float64)), **tol)
    ref_loss, ref_d = ref.output_loss_backward(logits, y, "poisson")
    assert loss == pytest.approx(ref_loss, rel=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(d, ref_d, **tol)
    assert correct == 0  # a regression: no accuracy


def test_poisson_loss_is_scikit_learns_half_deviance_and_zero_at_the_mean(rng):
    y = _counts(rng, 6, 2)
    logits = rng.standard_normal((6, 2))
    mu = np.exp(logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_log = np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)
    # scikit-learn's poisson_loss: per output the mean over samples, summed over outputs; the
    # native loss is the mean over all elements, so it is that divided by the outputs.
    expected = np.mean(y_log - y + mu, axis=0).sum() / 2
    assert _core.output_forward_backward(logits, y, "poisson")[1] == pytest.approx(expected, rel=1e-13)
    positive = y + 1.0
    assert _core.output_forward_backward(np.log(positive), positive, "poisson")[1] == pytest.approx(0, abs=1e-14)


def test_network_gradients_of_a_poisson_output_by_finite_differences(rng):
    net = fastmlp.Network([4, 6, 5, 3], activation=["gelu", "tanh"], dtype="float64", seed=2, output="poisson")
    X = rng.standard_normal((7, 4))
    assert fd_check(net, X, _counts(rng, 7, 3)) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_network_gradients_of_a_poisson_output_match_the_oracle(dtype, rng):
    acts = ["silu", "tanh"]
    net = fastmlp.Network([7, 12, 9, 2], activation=acts, dtype=dtype, seed=3, output="poisson")
    X = rng.standard_normal((19, 7)).astype(dtype)
    y = _counts(rng, 19, 2, np.dtype(dtype).type)
    loss, grads = net.gradients(X, y)
    ref_loss, ref_grads = ref.gradients(net.weights, net.biases, acts, X, y, output="poisson")
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-13)
    assert loss == pytest.approx(ref_loss, rel=tol["rtol"])
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(dW, rW, **tol)
        np.testing.assert_allclose(db, rb, **tol)


def test_integer_sample_weights_repeat_rows_for_a_poisson_output(rng):
    net = fastmlp.Network([3, 5, 1], activation="tanh", dtype="float64", seed=1, output="poisson")
    X = rng.standard_normal((8, 3))
    y = _counts(rng, 8, 1)
    w = rng.integers(0, 3, size=8)
    w[0] = 1
    loss, grads = net.gradients(X, y, sample_weight=w.astype(float))
    rep_loss, rep_grads = net.gradients(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    assert loss == pytest.approx(rep_loss, rel=1e-12)
    for (dW, db), (rW, rb) in zip(grads, rep_grads):
        np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-14)


def test_poisson_fit_follows_the_oracle_step_by_step(rng):
    net = fastmlp.Network([5, 8, 2], activation="elu", dtype="float64", seed=4, output="poisson")
    X = rng.standard_normal((23, 5))
    y = _counts(rng, 23, 2)
    W, b = [w.copy() for w in net.weights], [c.copy() for c in net.biases]
    history = fastmlp.Trainer(net, lr=0.05, batch_size=6, shuffle=False).fit(X, y, epochs=2)
    losses = [ref.train_epoch(W, b, "elu", X, y, 6, 0.05, output="poisson") for _ in range(2)]
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    assert history.accuracy == []  # a regression output records no accuracy
    np.testing.assert_allclose(net.predict(X), np.exp(ref.forward(W, b, "elu", X)[-1]), rtol=1e-12)


def test_negative_targets_of_a_poisson_output_are_refused():
    net = fastmlp.Network([2, 3, 1], output="poisson", dtype="float64")
    with pytest.raises(ValueError, match="targets of a poisson output must be >= 0"):
        net.loss(np.zeros((2, 2)), np.array([1.0, -1.0]))
