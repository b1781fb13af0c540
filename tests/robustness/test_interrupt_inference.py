"""Ctrl-C during long inference: predict_proba, predict, loss, accuracy and the validation pass of
fit run their forward passes in native calls sized by work, and Python sees the interrupt
between two calls instead of after the whole pass. The Ctrl-C tests of the training loop
itself are in test_interrupts.py."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastmlp
import fastmlp._forward as forward

PYTHON_DIR = str(pathlib.Path(fastmlp.__file__).parent.parent)

# The child counts the rows each native forward call was *given* before it runs, prints "started"
# at the first one, and reports how many rows had been handed to native code when Ctrl-C took
# effect: one call over all rows (the old behaviour) hands over all of them at once.
_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastmlp
    from fastmlp import _core

    what = sys.argv[1]
    net = fastmlp.Network([256, 4096, 4096, 10], seed=0)  # 17.8 M multiply-adds per row
    n = 4096
    X = np.random.default_rng(0).random((n, 256), dtype=np.float32)
    y = np.arange(n) % 10
    handed = [0]
    real = _core.evaluate

    def counting(ws, W, b, X, *rest, **kwargs):
        handed[0] += len(X)
        if handed[0] == len(X):
            print("started", flush=True)
        return real(ws, W, b, X, *rest, **kwargs)

    _core.evaluate = counting
    calls = {
        "predict_proba": lambda: net.predict_proba(X),
        "predict": lambda: net.predict(X),
        "loss": lambda: net.loss(X, y),
        "accuracy": lambda: net.accuracy(X, y),
        "validation": lambda: fastmlp.Trainer(net, batch_size=16, seed=0).fit(
            X[:16], y[:16], epochs=1, validation_data=(X, y)),
    }
    try:
        calls[what]()
        print("completed", handed[0], n, flush=True)
    except KeyboardInterrupt:
        print("interrupted", handed[0], n, time.time(), flush=True)
""")


@pytest.mark.parametrize("what", ["predict_proba", "predict", "loss", "accuracy", "validation"])
def test_ctrl_c_stops_a_long_forward_pass_between_native_calls(what):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, what], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=600)
    finally:
        child.kill()
        child.wait()
    words = out.split()
    assert words and words[0] == "interrupted", (out, err)
    handed, n = int(words[1]), int(words[2])
    # The interrupt took effect with rows still not handed to native code: the pass was cut
    # into calls and stopped between two of them.
    assert handed < n, (handed, n)
    print(f"{what}: interrupted {float(words[3]) - sent:.3f} s after SIGINT, {handed} of {n} rows")


def _counting_evaluate(monkeypatch):
    calls = []
    real = forward._core.evaluate

    def counting(ws, W, b, X, *rest, **kwargs):
        calls.append((ws.max_batch, X))
        return real(ws, W, b, X, *rest, **kwargs)

    monkeypatch.setattr(forward._core, "evaluate", counting)
    return calls


def test_a_small_call_is_one_native_call_on_the_callers_array(monkeypatch):
    net = fastmlp.Network([784, 1024, 10], seed=0)
    X = np.random.default_rng(0).random((1, 784), dtype=np.float32)
    calls = _counting_evaluate(monkeypatch)
    net.predict_proba(X)
    assert len(calls) == 1 and calls[0][1] is X and calls[0][0] == 1


def test_chunk_rows_follow_the_work_per_row(monkeypatch):
    small = fastmlp.Network([64, 128, 10], seed=0)  # 9,472 multiply-adds per row: 1024 rows a call
    wide = fastmlp.Network([256, 4096, 4096, 10], seed=0)  # 17.8 M: the 64-row floor
    assert small._eval_workspace(10**6).max_batch == forward.EVAL_CHUNK
    assert wide._eval_workspace(10**6).max_batch == forward.EVAL_MIN_ROWS
    assert fastmlp.Network([784, 1024, 10])._eval_workspace(10**6).max_batch == 1024


def test_predictions_in_calls_of_several_chunks_keep_the_loss_of_one_native_call(monkeypatch):
    # Predictions go in native calls of several workspace chunks (eval_call_rows); a loss must
    # still add its chunks' sums in one native call's order, not a sum of the calls' sums.
    monkeypatch.setattr(forward, "EVAL_CHUNK", 100)  # the workspace: 100 rows a chunk
    monkeypatch.setattr(forward, "EVAL_MACS_PER_CALL", 300 * (32 * 48 + 48 * 5))  # 300 rows a call
    rng = np.random.default_rng(5)
    net = fastmlp.Network([32, 48, 5], seed=0)
    X = rng.standard_normal((2950, 32)).astype(np.float32) * 30  # large, varied per-row losses
    y = rng.integers(0, 5, 2950)
    calls = _counting_evaluate(monkeypatch)
    preds = net.predict_proba(X)
    assert [len(x) for _, x in calls] == [300] * 9 + [250]  # several chunks a call
    ws = net._eval_workspace(len(X))
    assert ws.max_batch == 100
    one_loss, one_correct, one_preds = forward._core.evaluate(ws, *net._params(), X, y, True)
    assert np.array_equal(preds, one_preds)
    assert net.loss(X, y) == one_loss / len(X)
    assert net.accuracy(X, y) == one_correct / len(X)


def test_chunked_results_are_bitwise_those_of_one_native_call():
    rng = np.random.default_rng(1)
    net = fastmlp.Network([32, 48, 5], seed=0)
    X = rng.random((2500, 32), dtype=np.float32)
    y = rng.integers(0, 5, 2500)
    ws = net._eval_workspace(len(X))
    assert ws.max_batch < len(X)  # several calls
    W, b = net._params()
    one_loss, one_correct, one_preds = forward._core.evaluate(ws, W, b, X, y, True)
    loss, correct, preds = forward.evaluate_rows(ws, W, b, X, y, True)
    assert (loss, correct) == (one_loss, one_correct)
    assert np.array_equal(preds, one_preds)
    assert np.array_equal(net.predict_proba(X), one_preds)
    assert net.loss(X, y) == one_loss / len(X)
    assert net.accuracy(X, y) == one_correct / len(X)
