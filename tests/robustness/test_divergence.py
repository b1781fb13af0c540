"""Divergence: the first NaN/inf loss or update stops fit with an error naming the epoch and
the batch, and the weights are rolled back, bitwise, to their state before that batch;
on_nonfinite="warn" warns once and trains on."""

import warnings

import numpy as np
import pytest

import fastmlp
from tests.helpers import diverged_batch, snapshot


def data(scale=100.0, n=60, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 8)) * scale).astype(np.float32), rng.integers(0, 3, size=n)


def state_after_steps(X, y, lr, batch_size, n_steps):
    """A twin network after the first n_steps SGD steps over consecutive batches."""
    net = fastmlp.Network([8, 16, 3], seed=0)
    trainer = fastmlp.Trainer(net, lr=lr, batch_size=batch_size, shuffle=False)
    for i in range(n_steps):
        trainer.step(X[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size])
    return snapshot(net)


@pytest.mark.parametrize("lr", [1e30, 1e38])  # a NaN loss after a huge step / an update that overflows to inf
def test_divergence_raises_and_rolls_back_to_the_last_finite_state(lr):
    X, y = data()
    net = fastmlp.Network([8, 16, 3], seed=0)
    trainer = fastmlp.Trainer(net, lr=lr, batch_size=10, shuffle=False)
    with pytest.raises(fastmlp.TrainingDivergedError, match=r"epoch 1, batch \d+ of 6") as info:
        trainer.fit(X, y, epochs=3)
    _epoch, batch = diverged_batch(info)
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)
    assert snapshot(net) == state_after_steps(X, y, lr, 10, batch - 1)
    assert trainer.history.epochs == 0
    assert isinstance(info.value, FloatingPointError)


def test_an_update_that_overflows_on_the_last_batch_is_rolled_back():
    X, y = data(n=10)
    net = fastmlp.Network([8, 16, 3], seed=0)
    before = snapshot(net)
    trainer = fastmlp.Trainer(net, lr=1e38, batch_size=10, shuffle=False)  # one batch per epoch
    with pytest.raises(fastmlp.TrainingDivergedError, match=r"epoch 1, batch 1 of 1"):
        trainer.fit(X, y, epochs=2)
    assert snapshot(net) == before


def test_divergence_in_a_later_epoch_keeps_the_completed_ones_and_replays_the_shuffled_order():
    X, y = data(scale=1.0, n=64)
    net = fastmlp.Network([8, 16, 3], seed=0)
    trainer = fastmlp.Trainer(net, lr=0.05, batch_size=8, seed=3)
    trainer.fit(X, y, epochs=2)
    trainer.lr = 1e38
    with pytest.raises(fastmlp.TrainingDivergedError, match=r"epoch 1, batch \d+ of 8"):
        trainer.fit(X * 1e3, y, epochs=2)
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)


def test_warn_keeps_training_and_warns_once():
    X, y = data()
    net = fastmlp.Network([8, 16, 3], seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fastmlp.Trainer(net, lr=1e30, batch_size=10).fit(X, y, epochs=3, on_nonfinite="warn")
    diverged = [w for w in caught if issubclass(w.category, RuntimeWarning) and "diverged" in str(w.message)]
    assert len(diverged) == 1
    assert history.epochs == 3 and not np.isfinite(history.loss[-1])


def test_finite_training_is_untouched_by_the_check():
    X, y = data(scale=1.0)
    a, b = fastmlp.Network([8, 16, 3], seed=0), fastmlp.Network([8, 16, 3], seed=0)
    fastmlp.Trainer(a, lr=0.1, batch_size=7, seed=1).fit(X, y, epochs=3)
    fastmlp.Trainer(b, lr=0.1, batch_size=7, seed=1).fit(X, y, epochs=3, on_nonfinite="warn")
    assert snapshot(a) == snapshot(b)


def test_on_nonfinite_must_be_known():
    X, y = data()
    with pytest.raises(ValueError, match="on_nonfinite"):
        fastmlp.Trainer(fastmlp.Network([8, 16, 3], seed=0)).fit(X, y, on_nonfinite="ignore")


def test_the_rollback_replays_the_shuffled_epoch_bitwise(monkeypatch):
    # Pretend the weights stop being finite from the 4th step of an epoch on: the roll-back must
    # find that by replaying prefixes of the shuffled epoch, and land bitwise on the state after
    # 3 steps, which a twin computes with Trainer.step over the same permutation.
    X, y = data(scale=1.0, n=50)
    batch, seed = 6, 11
    order = np.random.default_rng(seed).permutation(50)
    twin = fastmlp.Network([8, 16, 3], seed=0)
    stepper = fastmlp.Trainer(twin, lr=0.1, batch_size=batch, shuffle=False)
    states = [snapshot(twin)]
    for k in range(9):
        rows = order[k * batch:(k + 1) * batch]
        stepper.step(X[rows], y[rows])
        states.append(snapshot(twin))
    finite_states = {b"".join(s) for s in states[:4]}
    monkeypatch.setattr(fastmlp.trainer, "_all_finite",
                        lambda arrays: b"".join(a.tobytes() for a in arrays) in finite_states)
    native = fastmlp._core.train_epoch

    def unchecked(*args, **kwargs):  # hide the native loop's own finiteness check: _all_finite decides
        return native(*args, **kwargs)[:4] + (None,)

    monkeypatch.setattr(fastmlp._core, "train_epoch", unchecked)
    net = fastmlp.Network([8, 16, 3], seed=0)
    with pytest.raises(fastmlp.TrainingDivergedError, match=r"epoch 1, batch 4 of 9"):
        fastmlp.Trainer(net, lr=0.1, batch_size=batch, seed=seed).fit(X, y, epochs=1)
    assert snapshot(net) == states[3]


# The native epoch reports whether the parameters it leaves are finite (True/False; None when
# it stopped before its last batch), checked as the update writes them (for plain SGD inside
# the GEMM's micro-kernels). fit relies on it instead of scanning every parameter each epoch.
def native_epoch(net, X, y, optimizer, batch_size=7, stop_on_nonfinite=True, order=None):
    ws = net._workspace(batch_size)
    return fastmlp._core.train_epoch(ws, net.weights, net.biases, X, y, order, batch_size, optimizer._spec(),
                                     optimizer._state_for(net), stop_on_nonfinite, 0, 1, None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [lambda: fastmlp.optim.SGD(lr=0.05), lambda: fastmlp.optim.SGD(lr=0.0),
                                  lambda: fastmlp.optim.Adam(lr=1e-3)])
@pytest.mark.parametrize("sizes", [[8, 16, 3], [300, 70, 9]])  # edge tiles only / full and edge tiles
def test_the_native_epoch_reports_finite_parameters(dtype, make, sizes, isa):
    rng = np.random.default_rng(1)
    net = fastmlp.Network(sizes, seed=0, dtype=dtype)
    X, y = rng.standard_normal((40, sizes[0])).astype(dtype), rng.integers(0, sizes[-1], size=40)
    _, _, n_seen, n_steps, finite = native_epoch(net, X, y, make(), order=rng.permutation(40))
    assert (n_seen, n_steps, finite) == (40, 6, True)


# [16, 48, 96, 6] has only full tiles (float32 6 x 16, float64 6 x 8): the micro-kernels alone
# must see the overflow (the biases do not overflow here); [8, 16, 3] only edge tiles.
@pytest.mark.parametrize("sizes", [[8, 16, 3], [16, 48, 96, 6]])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])  # the step in the GEMM / in optimizer_update
def test_the_native_epoch_reports_parameters_that_overflow(sizes, dtype, optimizer, isa):
    rng = np.random.default_rng(0)
    X, y = (rng.standard_normal((60, sizes[0])) * 100).astype(dtype), rng.integers(0, sizes[-1], size=60)
    net = fastmlp.Network(sizes, seed=0, dtype=dtype)
    lr = 1e38 if dtype == "float32" else 1e307
    opt = fastmlp.optim.SGD(lr=lr, momentum=0.9 if optimizer == "momentum" else 0.0)
    loss, _, n_seen, _, finite = native_epoch(net, X, y, opt, batch_size=60)
    assert np.isfinite(loss) and n_seen == 60  # the one batch's loss was finite; its update was not
    assert not all(np.isfinite(a).all() for a in net.weights)
    if len(sizes) == 4 and optimizer == "sgd":
        assert all(np.isfinite(b).all() for b in net.biases)
    assert finite is False


def test_the_native_epoch_that_stops_early_leaves_finiteness_open():
    X, y = data(scale=1.0)
    net = fastmlp.Network([8, 16, 3], seed=0)
    net.weights[0][0, 0] = np.inf  # the first batch's loss is NaN: the epoch stops before its update
    _, _, n_seen, n_steps, finite = native_epoch(net, X, y, fastmlp.optim.SGD(lr=0.05))
    assert (n_seen, n_steps, finite) == (0, 0, None)
