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
