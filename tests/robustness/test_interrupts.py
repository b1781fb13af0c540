"""Ctrl-C latency of a long native fit: SIGINT from a timer thread at several moments must become
KeyboardInterrupt within 1 s at worst and 0.25 s in the median (the issue's goal is 100 ms
typically; the native loop polls every 20 ms, batches here take well under a millisecond), and
leave finite weights and a history of complete epochs only (checked by a bitwise replay)."""

from __future__ import annotations

import os
import signal
import statistics
import sys
import threading
import time

import numpy as np
import pytest

import fastmlp

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGINT) is POSIX")

SIZES, BATCH, ROWS = [256, 512, 10], 32, 6000
DELAYS = [0.05, 0.13, 0.29, 0.47, 0.71]  # seconds after fit starts; not multiples of an epoch


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(ROWS, SIZES[0])).astype(np.float32), rng.integers(0, 10, size=ROWS)


def _interrupted_fit(delay: float) -> tuple[float, fastmlp.Network, fastmlp.Trainer]:
    """Latency from os.kill to the KeyboardInterrupt in the main thread, and what fit left."""
    X, y = _data()
    net = fastmlp.Network(SIZES, seed=0)
    trainer = fastmlp.Trainer(net, lr=0.01, batch_size=BATCH, seed=0)
    sent: list[float] = []

    def kill() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, kill)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(X, y, epochs=100_000)  # hours of work: only the signal ends it
        caught = time.perf_counter()
    finally:
        timer.cancel()
        timer.join()
    assert sent, "the timer never fired"
    return caught - sent[0], net, trainer


def test_ctrl_c_latency_during_a_long_fit(record_property):
    latencies = []
    for delay in DELAYS:
        latency, net, trainer = _interrupted_fit(delay)
        latencies.append(latency)
        assert all(np.isfinite(a).all() for a in net.weights + net.biases)
        h = trainer.history
        assert len(h.loss) == len(h.accuracy) == len(h.epoch_time) == h.epochs
        assert all(np.isfinite(h.loss))
    worst, median = max(latencies), statistics.median(latencies)
    record_property("ctrl_c_latencies_ms", [round(1000 * t, 1) for t in latencies])
    print(f"Ctrl-C latencies (ms): {[round(1000 * t, 1) for t in latencies]}; median {1000 * median:.1f}")
    assert worst < 1.0, latencies
    assert median < 0.25, latencies


def test_an_interrupted_fit_records_only_complete_epochs():
    # Interrupt after a few epochs, then replay exactly that many epochs uninterrupted: the
    # recorded losses must be bitwise those of whole epochs (fit is deterministic), so no
    # partial epoch slipped into the history.
    # A fixed delay, not a multiple of a measured epoch: epoch times swing tenfold on a loaded
    # machine, and the replay below then costs about what the interrupted fit did.
    X, y = _data()
    _, net, trainer = _interrupted_fit(0.25)  # a few epochs of ~0.08 s, then mid-epoch
    done = trainer.history.epochs
    replay_net = fastmlp.Network(SIZES, seed=0)
    replay = fastmlp.Trainer(replay_net, lr=0.01, batch_size=BATCH, seed=0)
    if done:
        replay.fit(X, y, epochs=done)
        assert trainer.history.loss == replay.history.loss
        assert trainer.history.accuracy == replay.history.accuracy
    else:  # interrupted inside epoch 1 (a very slow moment): nothing may be recorded
        assert trainer.history.loss == [] and trainer.history.accuracy == []
    assert np.isfinite(net.loss(X[:100], y[:100]))


def test_an_interrupted_fit_leaves_weights_optimizer_and_counters_at_the_last_recorded_epoch():
    # The real signal, mid-epoch (almost surely): whatever the moment, the weights must be those
    # of the recorded epochs (a bitwise replay), and the step count must count exactly their batches.
    X, y = _data()
    _, net, trainer = _interrupted_fit(0.25)
    done = trainer.history.epochs
    batches = -(-ROWS // BATCH)
    assert trainer.optimizer.steps == done * batches
    assert trainer.training_state.epochs_done == done
    replay_net = fastmlp.Network(SIZES, seed=0)
    replay = fastmlp.Trainer(replay_net, lr=0.01, batch_size=BATCH, seed=0)
    if done:
        replay.fit(X, y, epochs=done)
    replayed = [a.tobytes() for a in replay_net.weights + replay_net.biases]
    assert [a.tobytes() for a in net.weights + net.biases] == replayed


def _small_problem():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6))
    return X, rng.integers(0, 3, 50)


def _adam_trainer(seed=4, **kw):
    net = fastmlp.Network([6, 12, 3], dtype="float64", seed=0, dropout=0.2)
    return fastmlp.Trainer(net, optimizer=fastmlp.optim.Adam(0.01), batch_size=8, seed=seed,
                           schedule=fastmlp.schedules.StepLR(1, 0.5), **kw)


def _everything(trainer):
    opt = trainer.optimizer
    return ([a.tobytes() for a in trainer.network.weights + trainer.network.biases],
            [a.tobytes() for p in opt.state for a in p], opt.steps, opt.lr, trainer.training_state.epochs_done,
            trainer.training_state.rng.bit_generator.state, trainer.schedule.state_dict(), trainer.history.loss)


@pytest.mark.parametrize("where", ["train_epoch", "evaluate"])
def test_ctrl_c_inside_an_epoch_puts_everything_back_to_the_last_recorded_epoch(monkeypatch, where):
    # Deterministic: the third epoch's native pass stops half-way (after updating weights and
    # moments, as a real Ctrl-C between batches does) and raises KeyboardInterrupt; or its
    # validation pass raises it. Either way the Trainer must be exactly the one that trained 2
    # epochs: weights, Adam's moments and step count, lr, counters, generator, schedule, history.
    X, y = _small_problem()
    twin = _adam_trainer()
    twin.fit(X, y, epochs=2, validation_fraction=0.2)
    trainer = _adam_trainer()
    real = getattr(fastmlp._core, where)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            return real(*args, **kwargs)
        if where == "train_epoch":  # train half the epoch's batches, then stop as Ctrl-C does
            order = kwargs["order"]
            real(*args, **dict(kwargs, order=np.ascontiguousarray(order[:len(order) // 2])))
        raise KeyboardInterrupt

    monkeypatch.setattr(fastmlp._core, where, interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X, y, epochs=5, validation_fraction=0.2)
    monkeypatch.setattr(fastmlp._core, where, real)
    assert trainer.history.epochs == 2
    assert _everything(trainer) == _everything(twin)
    # ... so that training on continues exactly as if the interrupted epoch had never started.
    trainer.fit(X, y, epochs=2, validation_fraction=0.2)
    twin.fit(X, y, epochs=2, validation_fraction=0.2)
    assert _everything(trainer) == _everything(twin)
