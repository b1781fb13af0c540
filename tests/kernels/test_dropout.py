"""Inverted dropout: the native masks against the NumPy oracle's counter-based generator
(bitwise), their statistics, gradients through them (oracle and finite differences), training
with them (oracle, determinism over thread counts and fit splits), and inference without them."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp import reference as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_native_masks_are_the_oracles_bit_for_bit(p, dtype):
    x = np.ones((37, 129), dtype=dtype)
    for key in [(0, 1, 0, 1), (12345, 7, 3, 2), (2**63 + 5, 2**40, 99, 4)]:
        got = _core.dropout_apply(x, p, *key)
        want = ref.dropout_mask(x.shape, p, *key[:3], layer=key[3], dtype=dtype)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_kept_fraction_and_scale(p):
    x = np.full((400, 500), 3.0)
    out = _core.dropout_apply(x, p, 1, 2, 3, 1)
    kept = out != 0
    n = kept.size
    # binomial: the kept fraction is within 5 standard deviations of 1 - p
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(out[kept], 3.0 / (1 - p))
    # the mean is preserved in expectation (inverted dropout)
    assert out.mean() == pytest.approx(3.0, rel=5 * np.sqrt(p / ((1 - p) * n)))


def test_masks_differ_between_keys_and_are_not_correlated():
    x = np.ones((100, 100))
    masks = [_core.dropout_apply(x, 0.5, *key) != 0 for key in
             [(0, 1, 0, 1), (1, 1, 0, 1), (0, 2, 0, 1), (0, 1, 1, 1), (0, 1, 0, 2)]]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            agree = (masks[i] == masks[j]).mean()
            assert 0.45 < agree < 0.55, (i, j, agree)
    # neighbouring elements are independent too
    m = masks[0].reshape(-1).astype(float)
    assert abs(np.corrcoef(m[:-1], m[1:])[0, 1]) < 0.05


def test_nan_stays_visible_through_a_dropped_unit():
    x = np.full((4, 64), np.inf)
    out = _core.dropout_apply(x, 0.5, 0, 1, 0, 1)
    assert np.isnan(out).any() and np.isinf(out).any()  # inf * 0 is NaN, as in PyTorch


def dropout_net(dtype="float64", p=(0.3, 0.6), acts=("tanh", "gelu"), output="softmax", seed=0):
    return fastmlp.Network([6, 20, 16, 3], activation=list(acts), dtype=dtype, seed=seed, output=output,
                           dropout=list(p))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_gradients_match_the_oracle(dtype, isa, rng):
    net = dropout_net(dtype)
    X = rng.standard_normal((11, 6)).astype(dtype)
    y = rng.integers(0, 3, 11)
    loss, grads = net.gradients(X, y, training=True, seed=5)
    # The oracle's key for gradients(training=True, seed=s) is (s, epoch 0, batch 0).
    ref_loss, ref_grads = ref.gradients(net.weights, net.biases, net.activations, X, y, dropout=net.dropout,
                                        dropout_key=(5, 0, 0))
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-14)
    assert loss == pytest.approx(ref_loss, rel=tol["rtol"])
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(dW, rW, **tol)
        np.testing.assert_allclose(db, rb, **tol)
    # and it is not the gradient without dropout
    _, plain = net.gradients(X, y)
    assert not np.allclose(plain[0][0], grads[0][0])


def test_training_gradients_by_finite_differences(rng):
    net = dropout_net()
    X = rng.standard_normal((9, 6))
    y = rng.integers(0, 3, 9)
    _, grads = net.gradients(X, y, training=True, seed=3)
    eps, worst = 1e-6, 0.0
    for k, W in enumerate(net.weights):
        flat = W.reshape(-1)
        for i in range(0, flat.size, 7):
            keep = flat[i]
            flat[i] = keep + eps
            up = net.loss(X, y, training=True, seed=3)
            flat[i] = keep - eps
            down = net.loss(X, y, training=True, seed=3)
            flat[i] = keep
            numeric = (up - down) / (2 * eps)
            analytic = grads[k][0].reshape(-1)[i]
            worst = max(worst, abs(numeric - analytic) / max(1e-3, abs(numeric)))
    assert worst < 1e-6


def test_inference_is_deterministic_and_dropout_free(rng):
    net = dropout_net()
    X = rng.standard_normal((10, 6))
    y = rng.integers(0, 3, 10)
    twin = fastmlp.Network([6, 20, 16, 3], activation=["tanh", "gelu"], dtype="float64", seed=0)
    np.testing.assert_array_equal(net.predict_proba(X), twin.predict_proba(X))
    assert net.loss(X, y) == twin.loss(X, y)
    np.testing.assert_array_equal(net.gradients(X, y)[1][0][0], twin.gradients(X, y)[1][0][0])
    assert net.loss(X, y, training=True, seed=1) != net.loss(X, y)
    assert net.loss(X, y, training=True, seed=1) == net.loss(X, y, training=True, seed=1)


def test_fit_follows_the_oracle_with_the_documented_keys(rng):
    net = dropout_net()
    X = rng.standard_normal((30, 6))
    y = rng.integers(0, 3, 30)
    W, b = [w.copy() for w in net.weights], [c.copy() for c in net.biases]
    trainer = fastmlp.Trainer(net, lr=0.1, batch_size=8, shuffle=False, seed=42)
    trainer.fit(X, y, epochs=2)
    trainer.fit(X, y, epochs=1)  # epochs count across fits: this one is epoch 3
    for epoch in (1, 2, 3):
        ref.train_epoch(W, b, net.activations, X, y, 8, 0.1, dropout=net.dropout, dropout_seed=42, epoch=epoch)
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_with_dropout_is_bitwise_the_same_for_any_thread_count(dtype, threads, rng):
    X = rng.standard_normal((512, 64)).astype(dtype)
    y = rng.integers(0, 10, 512)
    results = []
    for n in (1, 2):
        threads(n)
        net = fastmlp.Network([64, 256, 256, 10], dtype=dtype, seed=0, dropout=0.5)
        fastmlp.Trainer(net, lr=0.05, batch_size=128, seed=9, optimizer=None).fit(X, y, epochs=2)
        results.append([a.tobytes() for a in net.weights + net.biases])
    assert results[0] == results[1]


def test_same_seed_same_weights_and_other_seed_other_weights(rng):
    X = rng.standard_normal((64, 6))
    y = rng.integers(0, 3, 64)

    def train(seed):
        net = dropout_net(seed=0)
        fastmlp.Trainer(net, lr=0.1, batch_size=16, seed=seed).fit(X, y, epochs=2)
        return [a.tobytes() for a in net.weights]

    assert train(1) == train(1)
    assert train(1) != train(2)


def test_two_fits_equal_one_fit_with_dropout(rng):
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    a, b = dropout_net(), dropout_net()
    ta = fastmlp.Trainer(a, lr=0.1, batch_size=16, seed=4)
    ta.fit(X, y, epochs=2)
    ta.fit(X, y, epochs=2)
    fastmlp.Trainer(b, lr=0.1, batch_size=16, seed=4).fit(X, y, epochs=4)
    assert [w.tobytes() for w in a.weights] == [w.tobytes() for w in b.weights]


def test_step_uses_dropout_and_fresh_masks_each_call(rng):
    X = rng.standard_normal((8, 6))
    y = rng.integers(0, 3, 8)
    net = dropout_net()
    W, b = [w.copy() for w in net.weights], [c.copy() for c in net.biases]
    trainer = fastmlp.Trainer(net, lr=0.1, seed=11)
    for j in range(2):  # step() number j uses the key (seed, 0, j)
        trainer.step(X, y)
        ref.train_step(W, b, net.activations, X, y, 0.1, dropout=net.dropout, dropout_key=(11, 0, j))
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_dropout_regularises_a_memorising_network(rng):
    # 40 noisy points, a wide network: without dropout the training loss goes to ~0; with it, not.
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    plain = fastmlp.Network([6, 128, 3], seed=0)
    dropped = fastmlp.Network([6, 128, 3], seed=0, dropout=0.5)
    for net in (plain, dropped):
        fastmlp.Trainer(net, lr=0.3, batch_size=8, seed=0).fit(X, y, epochs=150)
    assert plain.loss(X, y) < dropped.loss(X, y)


def test_a_seed_wider_than_64_bits_still_trains(rng):
    X = rng.standard_normal((16, 6))
    y = rng.integers(0, 3, 16)
    a, b = dropout_net(), dropout_net()
    fastmlp.Trainer(a, lr=0.1, seed=2**64 + 5).fit(X, y, epochs=1)
    fastmlp.Trainer(b, lr=0.1, seed=2**64 + 5).fit(X, y, epochs=1)
    assert [w.tobytes() for w in a.weights] == [w.tobytes() for w in b.weights]


def test_row_positions_take_the_masks_of_those_rows_of_the_whole_batch():
    # What a data-parallel rank does: rows 3, 0 and 6 of a batch of 8, computed alone, get the
    # masks those rows get when the whole batch is computed.
    x = np.ones((8, 37))
    whole = _core.dropout_apply(x, 0.4, 9, 2, 5, 1)
    positions = np.array([3, 0, 6], dtype=np.int64)
    part = _core.dropout_apply(x[:3].copy(), 0.4, 9, 2, 5, 1, positions)
    np.testing.assert_array_equal(part, whole[positions])
    np.testing.assert_array_equal(part, ref.dropout_mask((3, 37), 0.4, 9, 2, 5, layer=1, row_positions=positions))
    with pytest.raises(ValueError, match=r"dropout_rows\[1\] = -1"):
        _core.dropout_apply(x[:2].copy(), 0.4, 9, 2, 5, 1, np.array([0, -1], dtype=np.int64))


def test_gradients_of_a_part_of_a_batch_sum_to_the_whole(rng):
    # Gradients over disjoint parts of a batch, each part with its rows' positions, weighted by
    # their share, add up to the gradient of the whole batch: dropout included.
    net = dropout_net()
    X = rng.standard_normal((12, 6))
    y = rng.integers(0, 3, 12)
    ws = net._workspace(12, training=True)
    _, _, whole = _core.gradients(ws, net.weights, net.biases, X, y, True, 4, 1, 2)
    total = [np.zeros_like(dW) for dW, _ in whole]
    for part in (np.array([0, 5, 7, 11]), np.array([1, 2, 3, 4, 6, 8, 9, 10])):
        _, _, grads = _core.gradients(ws, net.weights, net.biases, X[part], y[part], True, 4, 1, 2, None, part)
        for t, (dW, _) in zip(total, grads):
            t += dW * len(part) / 12
    for t, (dW, _) in zip(total, whole):
        np.testing.assert_allclose(t, dW, rtol=1e-12, atol=1e-15)
