"""Leak test: 100,000 calls of each entry point, on its success path and on one error path of
each kind, after a warm-up of 2,000 calls, grow the resident set size (VmRSS, read after
gc.collect()) by less than 1 MiB and leave the reference counts of the argument arrays unchanged.

Inputs are tiny ([4, 3, 2] networks, 2-row X), so the whole file takes seconds: every entry point
gets the full 100,000 calls (none is shrunk). A leak of even 16 bytes per call would show as
1.5 MiB of growth; a reference leaked per call shows as a changed sys.getrefcount.

Under AddressSanitizer (scripts/sanitize.sh preloads libasan) freed memory sits in ASan's
quarantine, so RSS grows by tens of MiB without any leak: there only the reference counts are
checked (and ASan checks every access); the RSS bound is checked in every normal build."""

import gc
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import _core

CALLS = 100_000
WARMUP = 2_000
MAX_GROWTH = 1 << 20  # bytes


def _asan_loaded():
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


# RSS means nothing under ASan (its quarantine keeps freed blocks resident): see the module docstring.
CHECK_RSS = not _asan_loaded()


def rss_bytes():
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no VmRSS in /proc/self/status")  # not Linux: nothing to measure


def check_no_leak(call, args, calls=CALLS, expect=None):
    """Runs call() WARMUP then `calls` times; RSS growth < 1 MiB and the refcount of every
    object in `args` unchanged. With `expect`, every call must raise that exception type."""

    def once():
        if expect is None:
            call()
        else:
            with pytest.raises(expect):
                call()

    for _ in range(WARMUP):
        once()
    refs = [sys.getrefcount(a) for a in args]
    before = rss_bytes()
    for _ in range(calls):
        once()
    growth = rss_bytes() - before
    assert [sys.getrefcount(a) for a in args] == refs, "a call leaked (or stole) a reference to an argument"
    assert growth < MAX_GROWTH or not CHECK_RSS, f"{calls} calls grew RSS by {growth / 1024:.0f} KiB"


@pytest.fixture
def tiny():
    net = fastmlp.Network([4, 3, 2], activation="tanh", seed=0)
    X = np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32)
    y = np.array([0, 1], dtype=np.int64)
    return net, X, y


# ---------------------------------------------------------------- Python-level entry points

def test_predict_proba(tiny):
    net, X, _ = tiny
    check_no_leak(lambda: net.predict_proba(X), [net, X])


def test_loss(tiny):
    net, X, y = tiny
    check_no_leak(lambda: net.loss(X, y), [net, X, y])


def test_gradients(tiny):
    net, X, y = tiny
    check_no_leak(lambda: net.gradients(X, y), [net, X, y])


def test_trainer_step(tiny):
    net, X, y = tiny
    trainer = fastmlp.Trainer(net, lr=1e-3, batch_size=2, seed=0)
    check_no_leak(lambda: trainer.step(X, y), [net, X, y, *net.weights, *net.biases])


def test_trainer_fit(tiny):
    net, X, y = tiny
    trainer = fastmlp.Trainer(net, lr=1e-3, batch_size=2, seed=0)
    check_no_leak(lambda: trainer.fit(X, y, epochs=1), [net, X, y, *net.weights, *net.biases])


# ---------------------------------------------------------------- native entry points

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_dense_forward(dtype):
    rng = np.random.default_rng(1)
    x, W, b = (rng.uniform(-1, 1, s).astype(dtype) for s in [(2, 4), (3, 4), (3,)])
    check_no_leak(lambda: _core.dense_forward(x, W, b, "relu"), [x, W, b])


@pytest.mark.parametrize("labels", ["int", "distribution"])
def test_core_softmax_xent_backward(labels):
    logits = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    y = np.array([0, 1], dtype=np.int64) if labels == "int" else np.array([[1, 0], [0.5, 0.5]], dtype=np.float32)
    check_no_leak(lambda: _core.softmax_xent_backward(logits, y), [logits, y])


def test_core_train_epoch(tiny):
    net, X, y = tiny
    ws = _core.Workspace(net.layer_sizes, 2, "float32", net.activations)
    W, b = net.weights, net.biases
    order = np.array([1, 0], dtype=np.int64)
    check_no_leak(lambda: _core.train_epoch(ws, W, b, X, y, order, 2, {"lr": 1e-3}, [[]] * (2 * len(W))),
                  [ws, W, b, X, y, order, *W, *b])


def test_core_train_epoch_with_optimizer_state_and_dropout(tiny):
    net, X, y = tiny
    n_hidden = len(net.layer_sizes) - 2
    ws = _core.Workspace(net.layer_sizes, 2, "float32", net.activations, "softmax", [0.5] * n_hidden)
    W, b = net.weights, net.biases
    state = [[np.zeros_like(p), np.zeros_like(p)] for pair in zip(W, b) for p in pair]
    spec = {"kind": "adam", "lr": 1e-3, "step": 1}
    check_no_leak(lambda: _core.train_epoch(ws, W, b, X, y, None, 2, spec, state, False, 7, 1),
                  [ws, W, b, X, y, *W, *b, *[a for s in state for a in s]])


# ---------------------------------------------------------------- error paths

def test_error_predict_proba_wrong_width(tiny):
    net, _, _ = tiny
    X_bad = np.ones((2, 5), dtype=np.float32)
    check_no_leak(lambda: net.predict_proba(X_bad), [net, X_bad], expect=ValueError)


def test_error_dense_forward_wrong_dtype():
    x = np.ones((2, 4), dtype=np.float64)
    W, b = np.ones((3, 4), dtype=np.float32), np.zeros(3, dtype=np.float32)
    check_no_leak(lambda: _core.dense_forward(x, W, b, "relu"), [x, W, b], expect=TypeError)


def test_error_softmax_xent_backward_label_out_of_range():
    logits = np.zeros((2, 2), dtype=np.float32)
    y = np.array([0, 2], dtype=np.int64)
    check_no_leak(lambda: _core.softmax_xent_backward(logits, y), [logits, y], expect=ValueError)
