"""The native module across process events: interpreter exit while other threads are inside a
native call (a clean exit with the output flushed, never SIGABRT), fork() after the OpenMP pool
ran (children finish, with the parent's results), and the range of set_num_threads. Each event
runs in a subprocess with a timeout, so a crash or a hang fails the test instead of the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import fastmlp

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="fork() and SIGINT delivery are POSIX")
TIMEOUT = 240  # seconds; generous for a loaded machine: only a hang gets near it

# Shared by the child scripts: a problem large enough that the kernels use every thread.
PROBLEM = """
import os, sys, threading, time
import numpy as np
import fastmlp
rng = np.random.default_rng(0)
X = rng.standard_normal((2000, 256)).astype(np.float32)
y = rng.integers(0, 10, 2000)
net = fastmlp.Network([256, 512, 10], seed=0)
"""


def run_script(body: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    script = PROBLEM + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                          **kwargs)  # type: ignore[call-overload]


def assert_clean_exit(proc: subprocess.CompletedProcess[str], expected_output: str) -> None:
    assert "terminate called" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, f"exit code {proc.returncode}; stderr:\n{proc.stderr}"
    assert expected_output in proc.stdout, proc.stdout


# ---------------------------------------------------------------- interpreter exit


@posix_only
def test_a_script_ends_cleanly_while_a_daemon_thread_trains():
    proc = run_script("""
        threading.Thread(target=lambda: fastmlp.Trainer(net).fit(X, y, epochs=1000), daemon=True).start()
        time.sleep(0.5)
        print("printed before the end, not flushed")
    """)
    assert_clean_exit(proc, "printed before the end, not flushed")


@posix_only
def test_a_script_ends_cleanly_while_a_daemon_thread_predicts_in_a_loop():
    proc = run_script("""
        def predict_forever():
            while True:
                net.predict_proba(X[:200])
        threading.Thread(target=predict_forever, daemon=True).start()
        time.sleep(0.5)
        print("printed before the end, not flushed")
    """)
    assert_clean_exit(proc, "printed before the end, not flushed")


@posix_only
def test_several_daemon_threads_in_native_code_at_exit():
    proc = run_script("""
        for k in range(3):
            job = (lambda: fastmlp.Trainer(net.copy()).fit(X, y, epochs=1000)) if k else (
                lambda: [net.copy().predict_proba(X) for _ in range(10**6)])
            threading.Thread(target=job, daemon=True).start()
        time.sleep(0.5)
        print("three threads left running")
    """)
    assert_clean_exit(proc, "three threads left running")


@posix_only
def test_ctrl_c_while_python_waits_for_a_training_thread_at_exit(tmp_path):
    # The main thread ends; Python joins the non-daemon thread; Ctrl-C interrupts that join, so
    # the interpreter finalizes with the thread still inside fit. The child says it is ready
    # through a file: reading its stdout early would take the end of the output with it.
    ready = tmp_path / "ready"
    script = PROBLEM + textwrap.dedent(f"""
        threading.Thread(target=lambda: fastmlp.Trainer(net).fit(X, y, epochs=10**6)).start()
        time.sleep(0.3)
        print("printed before the end, not flushed")
        open({str(ready)!r}, "w").close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the main thread is now inside threading._shutdown
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert "terminate called" not in err, err
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}; stderr:\n{err}"
    assert "KeyboardInterrupt" in err
    assert "printed before the end, not flushed" in out


# ---------------------------------------------------------------- fork


@posix_only
def test_forked_pool_workers_predict_like_the_parent_after_it_used_the_thread_pool():
    proc = run_script("""
        import multiprocessing
        fastmlp.set_num_threads(2) if fastmlp.build_info()["openmp"] else None
        expected = net.predict_proba(X)  # the parent's OpenMP pool now exists

        def child(k):
            return fastmlp.get_num_threads(), net.predict_proba(X)

        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(child, range(4))
        assert all(n == 1 for n, _ in results), [n for n, _ in results]
        assert all(np.array_equal(p, expected) for _, p in results)
        print("children agree")
    """)
    assert_clean_exit(proc, "children agree")


@posix_only
def test_training_in_an_os_fork_child_matches_the_parent():
    proc = run_script("""
        import pickle
        fastmlp.set_num_threads(2) if fastmlp.build_info()["openmp"] else None
        fastmlp.Trainer(net.copy(), seed=1).fit(X, y, epochs=1)  # the parent's OpenMP pool now exists
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            child_net = net.copy()
            with __import__("warnings").catch_warnings(record=True) as caught:
                __import__("warnings").simplefilter("always")
                fastmlp.set_num_threads(2)  # refused in a fork child: it would hang
            fastmlp.Trainer(child_net, seed=3).fit(X, y, epochs=2)
            report = (fastmlp.get_num_threads(), [str(w.message) for w in caught], child_net.weights)
            with os.fdopen(write_end, "wb") as f:
                pickle.dump(report, f)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as f:
            threads, warned, weights = pickle.load(f)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        fastmlp.Trainer(net, seed=3).fit(X, y, epochs=2)
        assert threads == 1, threads
        assert any("fork" in w or "without OpenMP" in w for w in warned), warned
        assert all(np.array_equal(a, b) for a, b in zip(weights, net.weights))
        print("child agrees")
    """)
    assert_clean_exit(proc, "child agrees")


# ---------------------------------------------------------------- set_num_threads


def test_set_num_threads_refuses_counts_beyond_a_c_int_with_a_value_error(threads):
    before = fastmlp.get_num_threads()
    for n in (2**31, 2**40, 2**70):
        with pytest.raises(ValueError, match=r"n must be at most 2147483647, got \d+; .* cores"):
            fastmlp.set_num_threads(n)
        with pytest.raises(ValueError, match=r"must lie in \[1, 2147483647\], got \d+"):
            fastmlp._core.set_num_threads(n)
    with pytest.raises(ValueError, match=r"must lie in \[1, 2147483647\], got -3"):
        fastmlp._core.set_num_threads(-3)
    assert fastmlp.get_num_threads() == before  # nothing changed


@pytest.mark.skipif(not fastmlp.build_info()["openmp"], reason="a serial build ignores the thread count")
def test_set_num_threads_above_the_usable_cores_warns_and_keeps_the_setting(threads):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cores is not None
    with pytest.warns(RuntimeWarning, match=rf"can use only {cores} cores"):
        fastmlp.set_num_threads(cores + 1)
    assert fastmlp.get_num_threads() == cores + 1
    fastmlp.set_num_threads(cores)  # no warning at the core count (pytest.warns is not active)
    assert fastmlp.get_num_threads() == cores
