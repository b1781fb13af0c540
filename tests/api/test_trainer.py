"""Trainer against the oracle and against itself: one step equals the reference SGD step,
fit equals the sequence of steps it promises, the seeds and the thread count never change a
bit of the trained weights, and training on the bundled digits generalises."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastmlp
from fastmlp import reference as ref
from tests.helpers import snapshot


def problem(sizes=(12, 16, 9, 4), n=50, dtype="float64", activation="tanh", seed=0):
    rng = np.random.default_rng(seed)
    net = fastmlp.Network(list(sizes), activation=activation, dtype=dtype, seed=seed)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=n)
    return net, X, y


def params64(net):
    return [W.astype(np.float64) for W in net.weights], [b.astype(np.float64) for b in net.biases]


def assert_params_close(net, weights, biases, tol):
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
def test_step_equals_the_reference_sgd_step(dtype, tol, activation, isa):
    net, X, y = problem(dtype=dtype, activation=activation, n=13)
    W, b = params64(net)
    want_loss = ref.train_step(W, b, activation, X.astype(np.float64), y, 0.3)
    loss = fastmlp.Trainer(net, lr=0.3).step(X, y)
    assert loss == pytest.approx(want_loss, rel=tol)
    assert_params_close(net, W, b, tol)


@pytest.mark.parametrize("batch_size", [1, 7, 16, 50, 64])
def test_fit_without_shuffle_equals_sequential_oracle_steps(batch_size, isa):
    net, X, y = problem(n=50)
    W, b = params64(net)
    losses = []
    for _epoch in range(3):
        total = 0.0
        for start in range(0, 50, batch_size):  # consecutive batches, last partial one included
            Xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            total += ref.train_step(W, b, "tanh", Xb, yb, 0.2) * len(Xb)
        losses.append(total / 50)
    history = fastmlp.Trainer(net, lr=0.2, batch_size=batch_size, shuffle=False).fit(X, y, epochs=3)
    assert_params_close(net, W, b, 1e-12)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_without_shuffle_is_bitwise_the_sequence_of_steps(dtype, isa):
    net, X, y = problem(n=45, dtype=dtype)
    twin = net.copy()
    fastmlp.Trainer(net, lr=0.1, batch_size=8, shuffle=False).fit(X, y, epochs=2)
    stepper = fastmlp.Trainer(twin, lr=0.1, batch_size=8, shuffle=False)
    for _ in range(2):
        for start in range(0, 45, 8):
            stepper.step(X[start:start + 8], y[start:start + 8])
    assert snapshot(net) == snapshot(twin)


def test_shuffled_fit_follows_the_seeded_permutation():
    net, X, y = problem(n=40)
    W, b = params64(net)
    orders = np.random.default_rng(5)
    for _ in range(2):
        ref.train_epoch(W, b, "tanh", X, y, 6, 0.1, order=orders.permutation(40))
    fastmlp.Trainer(net, lr=0.1, batch_size=6, shuffle=True, seed=5).fit(X, y, epochs=2)
    assert_params_close(net, W, b, 1e-12)


# A first layer of at least 1024 float32 or 512 float64 outputs packs the shuffled rows of X it
# gathers (gemm.hpp, kPackARowOfCBytes); narrower ones read them in place.
@pytest.mark.parametrize("dtype,width,tol", [("float32", 1030, 1e-5), ("float64", 515, 1e-12)])
def test_a_wide_first_layer_packs_the_shuffled_rows_and_still_follows_the_oracle(dtype, width, tol, isa, threads):
    net, X, y = problem(sizes=(20, width, 5), n=40, dtype=dtype, activation="relu")
    W, b = params64(net)
    ref.train_epoch(W, b, "relu", X.astype(np.float64), y, 8, 0.1, order=np.random.default_rng(5).permutation(40))
    results = []
    for n in (1, 2):
        threads(n)
        twin = net.copy()
        fastmlp.Trainer(twin, lr=0.1, batch_size=8, shuffle=True, seed=5).fit(X, y, epochs=1)
        results.append(snapshot(twin))
    assert results[0] == results[1]
    assert_params_close(twin, W, b, tol)


def test_same_seeds_give_bitwise_the_same_weights():
    results = []
    for trainer_seed in (3, 3, 4):
        net, X, y = problem(dtype="float32", n=200)
        fastmlp.Trainer(net, lr=0.1, batch_size=16, seed=trainer_seed).fit(X, y, epochs=3)
        results.append(snapshot(net))
    assert results[0] == results[1]
    assert results[0] != results[2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_count_does_not_change_a_bit(threads, dtype, isa):
    # Layers wide enough that every kernel splits its work between threads.
    results = []
    for n in (1, 2, 3):
        threads(n)
        net, X, y = problem(sizes=(100, 300, 200, 10), n=300, dtype=dtype, activation="relu")
        history = fastmlp.Trainer(net, lr=0.05, batch_size=64, seed=1).fit(X, y, epochs=2)
        results.append((snapshot(net), history.loss))
    assert results[0] == results[1] == results[2]


# Plain SGD takes its step inside the weight gradient's micro-kernel, from registers, and never
# stores dW (gemm.hpp, Epilogue::sgd_step). That must be bitwise the step written out: the
# gradient, then W - lr * dW rounded as two operations. The shapes give full and edge tiles, a
# batch of 300 summed in two blocks of k (so the step follows an accumulated block), and a
# first layer of 520 x 300 floats (624 KiB), past the size where the step used to be unfused.
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_rows", [300, 37])
def test_the_fused_sgd_step_is_bitwise_the_gradient_then_the_update(dtype, n_rows, isa, threads):
    for n in (1, 2):
        threads(n)
        net, X, y = problem(sizes=(300, 520, 70, 9), n=n_rows, dtype=dtype, activation="relu", seed=4)
        lr = net.weights[0].dtype.type(0.05)
        _, grads = net.gradients(X, y)
        want_W = [W - lr * dW for W, (dW, _) in zip(net.weights, grads)]
        want_b = [b - lr * db for b, (_, db) in zip(net.biases, grads)]
        fastmlp.Trainer(net, lr=0.05).step(X, y)
        for got, want in zip(net.weights + net.biases, want_W + want_b):
            assert got.tobytes() == want.tobytes()


def test_targets_train_like_labels():
    net, X, y = problem(n=30)
    twin = net.copy()
    fastmlp.Trainer(net, lr=0.1, batch_size=8, seed=0).fit(X, y, epochs=2)
    fastmlp.Trainer(twin, lr=0.1, batch_size=8, seed=0).fit(X, np.eye(4)[y], epochs=2)
    for a, c in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def test_history_and_validation():
    net, X, y = problem(n=60)
    Xv, yv = X[:20], y[:20]
    history = fastmlp.Trainer(net, lr=0.2, batch_size=10, seed=0).fit(X, y, epochs=4, validation_data=(Xv, yv))
    assert history.epochs == 4
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time"):
        assert len(getattr(history, name)) == 4
    assert history.loss[-1] < history.loss[0]
    assert history.val_loss[-1] == pytest.approx(net.loss(Xv, yv), rel=1e-12)
    assert history.val_accuracy[-1] == pytest.approx(net.accuracy(Xv, yv))
    assert all(t > 0 for t in history.epoch_time)
    assert fastmlp.Trainer(net).fit(X, y).val_loss == []


def test_verbose_prints_one_line_per_epoch(capsys):
    net, X, y = problem(n=20)
    fastmlp.Trainer(net, batch_size=5).fit(X, y, epochs=3, validation_data=(X, y), verbose=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3") and "val_accuracy" in lines[0]


def test_digits_reach_95_percent_on_a_held_out_quarter():
    X, y = fastmlp.datasets.load_digits()
    X_train, X_test, y_train, y_test = fastmlp.datasets.train_test_split(X, y, test_fraction=0.25, seed=0)
    net = fastmlp.Network([64, 128, 10], activation="relu", seed=0)
    fastmlp.Trainer(net, lr=0.05, batch_size=32, seed=0).fit(X_train, y_train, epochs=30)
    assert net.accuracy(X_test, y_test) >= 0.95


def test_ctrl_c_stops_fit_with_usable_weights():
    rng = np.random.default_rng(0)
    net = fastmlp.Network([256, 512, 10], seed=0)
    X, y = rng.normal(size=(4000, 256)).astype(np.float32), rng.integers(0, 10, size=4000)
    trainer = fastmlp.Trainer(net, lr=0.01, batch_size=32, seed=0)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(X, y, epochs=10_000)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 5.0  # far from the 10,000 epochs it was asked for
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)
    assert trainer.history.epochs >= 0
    assert np.isfinite(net.loss(X[:100], y[:100]))


def test_thread_settings_and_build_info(threads):
    info = fastmlp.build_info()
    assert info["version"] == fastmlp.__version__
    assert set(info) >= {"compiler", "openmp", "simd", "max_threads"}
    if info["openmp"]:
        fastmlp.set_num_threads(2)
        assert fastmlp.get_num_threads() == 2
    else:
        with pytest.warns(RuntimeWarning, match="without OpenMP"):
            fastmlp.set_num_threads(2)
        assert fastmlp.get_num_threads() == 1
    fastmlp.set_num_threads(1)
    assert fastmlp.get_num_threads() == 1
    for bad in (0, -2):
        with pytest.raises(ValueError, match=">= 1"):
            fastmlp.set_num_threads(bad)
    with pytest.raises(TypeError):
        fastmlp.set_num_threads(1.5)


@pytest.mark.parametrize("value,expected", [("generic", "generic"), ("auto", None), ("bogus", None)])
def test_isa_environment_variable(value, expected):
    code = "import fastmlp, json; print(json.dumps(fastmlp.build_info()))"
    env = {**os.environ, "FASTMLP_ISA": value}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    info = __import__("json").loads(out.stdout)
    assert info["isa"] == (expected or info["isa_available"])
    if value == "bogus":
        assert "ignoring FASTMLP_ISA='bogus'" in out.stderr


def test_fit_makes_no_copy_of_float32_c_contiguous_data():
    # NumPy reports its array allocations to tracemalloc: a copy of X (or an X-sized temporary,
    # e.g. from a finiteness check) would show up as a traced peak of at least X.nbytes.
    import tracemalloc
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 256), dtype=np.float32)
    y = rng.integers(0, 10, size=20_000)
    net = fastmlp.Network([256, 32, 10], seed=0)
    trainer = fastmlp.Trainer(net, lr=0.01, batch_size=64, seed=0)
    tracemalloc.start()
    try:
        trainer.fit(X, y, epochs=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 4


def test_a_stale_extension_is_refused_at_import():
    # An extension built from another version than the Python files must not load silently.
    code = ("import sys, types\n"
            "fake = types.ModuleType('fastmlp._core'); fake.__version__ = '0.0.0'\n"
            "sys.modules['fastmlp._core'] = fake\n"
            "import fastmlp\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "stale" in out.stderr and "0.0.0" in out.stderr


def test_no_flush_to_zero_leaks_into_the_process():
    # Built without -ffast-math, the extension must not switch the CPU to flush-to-zero /
    # denormals-are-zero: NumPy's own subnormal arithmetic keeps working after training.
    net, X, y = problem(dtype="float32", n=64)
    fastmlp.Trainer(net, lr=0.1, batch_size=16, seed=0).fit(X, y, epochs=1)
    tiny32 = np.finfo(np.float32).smallest_subnormal
    assert tiny32 > 0 and np.float32(tiny32) * np.float32(1.5) > 0
    assert np.float64(0.25) * np.float64(2.0) ** -1022 != 0
