"""Tests of ``python -m fastmlp bench`` (the ``fastmlp.bench`` package) and the scripts in ``bench/``.

They check that every part runs (in a tiny mode, in-process, or ``--quick`` in a subprocess), that its
rows and JSON are well formed and name the machine, that the pause comes before every timed run, and
that the backends compared do the same work. Deliberately never an assertion about a time or a speed.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import bench
from fastmlp.bench import _busy, _command, _machine, _matrix, _timing
from fastmlp.bench._backends import NativeBackend, NumpyBackend, TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CASE = "64-32-10-tanh-b16"
MACHINE_KEYS = {"cpu_model", "fastmlp_isa", "numpy_blas"}


def run_fastmlp(*args, cwd):
    # A fresh interpreter per call is the point: it exercises __main__, exit codes and stream use.
    return subprocess.run(
        [sys.executable, "-m", "fastmlp", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def optional_peer_installed(module_name):
    try:
        __import__(module_name)
    except Exception:  # not installed, or installed but broken: the bench skips it either way
        return False
    return True


# --- the command as users run it (moved here from test_cli.py) ----------------------------------------


def test_bench_quick_prints_tables_and_writes_json(tmp_path):
    result = run_fastmlp("bench", "--quick", "--cases", TINY_CASE, "--json", "bench.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for word in ("native", "numpy", "pure", "native/best peer", "native/pure", "GFLOP/s", "% sgemm",
                 "sgemm", "6 * sum(IN*OUT)", TINY_CASE):
        assert word in result.stdout
    document = json.loads((tmp_path / "bench.json").read_text())

    environment = document["environment"]
    assert environment["build_info"]["version"] == fastmlp.__version__
    for key in ("cpu_model", "cpu_flags", "versions", "date", "command", "peers_skipped"):
        assert key in environment
    settings = document["settings"]
    assert settings["native_threads"] >= 1 and 1 in settings["peer_threads"]
    assert settings["flop_convention"] == "6 * sum(IN*OUT) FLOP per sample"
    assert all(gflops > 0 for gflops in document["sgemm_ceiling"]["gflops"].values())

    (case,) = document["cases"]
    assert case["flop_per_sample"] == 6 * (64 * 32 + 32 * 10)
    # torch and scikit-learn are optional (CI installs only .[test]): present, or named as skipped.
    expected = {"native", "numpy", "pure"}
    for name, module in (("torch", "torch"), ("sklearn", "sklearn.neural_network")):
        if optional_peer_installed(module):
            expected.add(name)
        else:
            assert "not installed (pip install fastmlp[bench])" in environment["peers_skipped"][name]
            assert f"note: {name} not installed" in result.stdout
    assert set(case["samples_per_second"]) == expected
    assert all(summary["median"] > 0 for summary in case["samples_per_second"].values())
    assert {"native/numpy", "native/pure", "native/best_peer"} <= set(case["ratios"])
    assert case["best_peer"] in expected - {"native", "pure"}
    for measurement in case["measurements"]:
        assert {"backend", "threads", "samples_per_second", "gflops", "best_thread_count"} <= set(measurement)
    # The peak-memory probe is a developer script now (bench/memory_probe.py), never in this command.
    assert "memory" not in document
    # --cases alone runs only the training part; the figures name their machine.
    assert document["parts"] == ["cases"] and document["configs"] is None
    assert set(case["machine"]) == MACHINE_KEYS
    assert case["machine"]["fastmlp_isa"] == fastmlp.build_info()["isa"]
    assert "machine: " in result.stdout and f"fastmlp ISA {fastmlp.build_info()['isa']}" in result.stdout


def test_bench_without_the_optional_peers_notes_them(monkeypatch, capsys):
    # In-process, with the imports made to fail: the path CI takes when only .[test] is installed.
    for module in ("torch", "sklearn", "sklearn.neural_network", "threadpoolctl"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` of a None entry raises ImportError
    assert bench.main(["--quick", "--cases", TINY_CASE, "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: torch not installed (pip install fastmlp[bench])" in out
    assert "note: sklearn not installed (pip install fastmlp[bench])" in out
    assert "threadpoolctl not installed" in out
    assert "numpy (dflt)" in out  # without threadpoolctl NumPy runs once, at its BLAS's default
    assert "kernel unknown" in out  # and the NumPy kernel cannot be named


def test_bench_peer_subset_and_scaling(tmp_path):
    result = run_fastmlp("bench", "--quick", "--cases", TINY_CASE, "--peers", "numpy", "--threads", "2",
                         "--scaling", "--json", "bench.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "torch" not in result.stdout and "sklearn" not in result.stdout
    (case,) = json.loads((tmp_path / "bench.json").read_text())["cases"]
    assert set(case["samples_per_second"]) == {"native", "numpy"}
    if fastmlp.build_info()["openmp"]:
        assert case["native_scaling"]["threads"] == 2
        assert case["native_scaling"]["one_thread_samples_per_second"] > 0
        assert "native thread scaling" in result.stdout


def test_bench_memory_reports_peak_rss_against_data_and_parameters(tmp_path):
    # The developer launcher adds the memory part to the installed command's.
    script = REPO_ROOT / "bench" / "bench_training.py"
    result = subprocess.run([sys.executable, str(script), "--quick", "--cases", TINY_CASE, "--peers", "numpy",
                             "--memory", "--json", "bench.json"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "peak RSS" in result.stdout and "workspace" in result.stdout
    memory = json.loads((tmp_path / "bench.json").read_text())["memory"]
    assert "error" not in memory, memory
    assert memory["X_bytes"] == 60000 * 784 * 4 and memory["y_bytes"] == 60000 * 8
    assert memory["parameter_bytes"] == 4 * (784 * 128 + 128 + 128 * 10 + 10)
    assert memory["expected_bytes"] == (memory["data_bytes"] + memory["parameter_bytes"]
                                        + memory["workspace_estimate_bytes"])
    assert memory["peak_rss"] >= memory["X_bytes"]  # the data alone is resident at the peak


def test_gemm_micro_benchmark_quick(tmp_path):
    script = REPO_ROOT / "bench" / "bench_gemm.py"
    result = subprocess.run([sys.executable, str(script), "--quick", "--repeats", "1", "--json", "gemm.json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for word in ("forward", "x W^T", "da W", "da^T h", "numpy 1t"):
        assert word in result.stdout
    assert "warning" not in result.stdout  # every kernel path computed the same product as NumPy
    rows = json.loads((tmp_path / "gemm.json").read_text())["rows"]
    assert {row["form"] for row in rows} == {"forward", "dh", "dW"}
    assert all(value["median"] > 0 for row in rows for value in row["gflops"].values())


def test_gemm_micro_benchmark_refuses_a_path_it_cannot_compare(tmp_path):
    script = REPO_ROOT / "bench" / "bench_gemm.py"
    result = subprocess.run([sys.executable, str(script), "--quick", "--compare", "sse9"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--compare" in result.stderr and "avx2" in result.stderr


def test_bench_rejects_an_unknown_case(tmp_path):
    result = run_fastmlp("bench", "--cases", "no-such-case", cwd=tmp_path)
    assert result.returncode == 2
    assert "no-such-case" in result.stderr


def test_bench_rejects_an_unknown_part(tmp_path):
    result = run_fastmlp("bench", "--only", "configs,nonsense", cwd=tmp_path)
    assert result.returncode == 2
    assert "nonsense" in result.stderr and "cases, configs, predict, busy" in result.stderr


def test_bench_script_forwards_its_arguments(tmp_path):
    script = REPO_ROOT / "bench" / "bench_training.py"
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--repeats", "--cases", "--peers", "--threads", "--peer-threads", "--scaling", "--memory",
                   "--only"):
        assert option in result.stdout


# --- every part in the tiny mode ----------------------------------------------------------------------


def run_tiny(tmp_path, *argv):
    args = bench.configure_parser(argparse.ArgumentParser()).parse_args([*argv, "--json", str(tmp_path / "b.json")])
    assert _command.run(args, settings=bench.TINY) == 0
    return json.loads((tmp_path / "b.json").read_text())


def test_every_new_part_runs_and_names_the_machine(tmp_path, capsys):
    document = run_tiny(tmp_path, "--only", "configs,predict,busy", "--peers", "numpy", "torch")
    out = capsys.readouterr().out
    assert document["parts"] == ["configs", "predict", "busy"] and document["cases"] == []
    machine = document["machine"]
    assert set(machine) == MACHINE_KEYS and machine["cpu_model"] and machine["numpy_blas"]
    # Every table is headed by the machine line, and every part's JSON carries the machine.
    for title in ("configuration matrix:", "prediction:", "busy CPU:"):
        block = out.split(title, 1)[1].splitlines()
        assert block[1] == _machine.machine_line(machine)
    for part in ("configs", "predict", "busy"):
        assert document[part]["machine"] == machine

    configs = document["configs"]
    labels = [row["label"] for row in configs["rows"]]
    assert labels == [c.label for c in _matrix.configurations()] and len(labels) == 17
    for name in ("adamw + relu", "rmsprop + relu", "sgd + gelu", "sgd + relu + dropout 0.2",
                 "sgd + relu + float64", "sgd + relu + sample weights"):
        assert name in labels and name in out
    with_torch = optional_peer_installed("torch")
    for row in configs["rows"]:
        assert row["samples_per_second"]["native"]["median"] > 0
        assert "native" in row["ratio_to_baseline"]
        assert ("torch" in row["samples_per_second"]) == with_torch
        # The NumPy oracle where it implements the configuration, and only there.
        assert ("numpy" in row["samples_per_second"]) == NumpyBackend.supports(
            TrainConfig(row["activation"], row["optimizer"], row["dropout"], row["dtype"], row["sample_weights"]))
        assert all(np.isfinite(loss) for loss in row["final_loss"].values())
    assert configs["rows"][0]["ratio_to_baseline"]["native"] == 1.0
    # Each backend's share of its dtype's GEMM ceiling, both ceilings measured in the run.
    assert set(configs["gemm_ceilings"]) == {"float32", "float64"}
    assert all(gflops > 0 for gflops in configs["gemm_ceilings"].values())
    assert configs["flop_done_per_sample"] == 4 * (12 * 16 + 16 * 4) + 2 * 16 * 4  # no dh for layer 1
    for row in configs["rows"]:
        assert set(row["percent_of_ceiling"]) == set(row["samples_per_second"])
        for name, share in row["percent_of_ceiling"].items():
            gflops = row["samples_per_second"][name]["median"] * configs["flop_done_per_sample"] / 1e9
            assert share == pytest.approx(100 * gflops / configs["gemm_ceilings"][row["dtype"]])
    assert "% peak" in out and "float64 " in out.split("% peak = ", 1)[1].splitlines()[0]

    rows = {row["rows"]: row for row in document["predict"]["rows"]}
    assert set(rows) == set(bench.TINY.predict_rows)
    for row in rows.values():
        assert {"native", "numpy"} <= set(row["rows_per_second"])
        assert row["microseconds_per_call"]["native"] > 0 and "native/numpy" in row["ratios"]
    assert "us/call" in out

    busy = document["busy"]
    threads = document["settings"]["native_threads"]
    assert {f"native {threads} thr", "numpy"} <= set(busy["samples_per_second"])
    assert "native/numpy" in busy["ratios"]
    if threads > 1:
        assert f"native {threads} thr/1 thr" in busy["ratios"]


def test_tiny_matrix_of_chosen_configurations_in_process():
    settings = bench.TINY
    configs = [TrainConfig(), TrainConfig(optimizer="adam"), TrainConfig(activation="tanh")]
    calls = []
    result = _matrix.run_matrix(settings, {}, None, 1, [1], {"cpu_model": "x", "fastmlp_isa": "y", "numpy_blas": "z"},
                                lambda: calls.append("pause"), lambda message: None, configs)
    assert [row["label"] for row in result["rows"]] == ["sgd + relu", "adam + relu", "sgd + tanh"]
    # native and numpy (at the BLAS default: no limiter given) for each: warm-up and one round each
    # run after a pause, and so does the float32 ceiling (the only dtype here).
    assert len(calls) == 2 * 3 * 2 + 1
    assert list(result["gemm_ceilings"]) == ["float32"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gemm_ceiling_multiplies_matrices_of_its_dtype(monkeypatch, dtype):
    seen, matmul = [], np.matmul

    def spy(a, b, out):
        seen.append({a.dtype, b.dtype, out.dtype})
        return matmul(a, b, out=out)

    monkeypatch.setattr(np, "matmul", spy)
    ceiling = bench._training.measure_gemm_ceiling(((32, "native", 2),), 1, None, dtype)
    assert len(seen) == 3 and all(dtypes == {np.dtype(dtype)} for dtypes in seen)  # one untimed, two timed
    assert ceiling["gflops"][None] > 0  # no limiter: the BLAS's own thread count


def test_flop_done_counts_the_products_a_step_computes():
    # 784-256-256-10: forward and dW of the three layers, dh of the upper two.
    sizes = [784 * 256, 256 * 256, 256 * 10]
    assert bench._training.flop_done_per_sample((784, 256, 256, 10)) == 2 * (2 * sum(sizes) + sizes[1] + sizes[2])
    assert bench._training.flop_done_per_sample((5, 3)) == 4 * 15  # one layer: no dh at all


def test_warm_up_runs_each_backend_once_after_a_pause():
    events = []
    epoch = lambda: events.append("epoch") or (1.0, 1.0)  # noqa: E731 - one backend's bound work
    other = lambda: events.append("other") or (1.0, 1.0)  # noqa: E731
    import contextlib
    configurations = [_timing.Timed(("a", 1), contextlib.nullcontext, epoch),
                      _timing.Timed(("a", 2), contextlib.nullcontext, epoch),
                      _timing.Timed(("b", 1), contextlib.nullcontext, other)]
    _timing.warm_up(configurations, lambda: events.append("pause"))
    assert events == ["pause", "epoch", "pause", "other"]


# --- the pause and the order of the timed runs ---------------------------------------------------------


class FakeClock:
    """A process CPU clock whose other threads burn `busy` seconds of CPU per second slept."""

    def __init__(self, busy_until):
        self.now, self.cpu, self.busy_until, self.sleeps = 0.0, 0.0, busy_until, []

    def cpu_clock(self):
        return self.cpu

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        spinning = max(0.0, min(self.now + seconds, self.busy_until) - self.now)
        self.cpu += spinning  # one other thread spinning at a full core until busy_until
        self.now += seconds


def test_settle_waits_for_the_minimum_when_the_process_is_idle():
    clock = FakeClock(busy_until=0.0)
    slept = _timing.settle(0.2, 1.0, slice_seconds=0.05, cpu_clock=clock.cpu_clock, sleep=clock.sleep)
    assert slept == pytest.approx(0.2) and clock.sleeps == [0.2]


def test_settle_waits_until_the_other_threads_stop_spinning():
    clock = FakeClock(busy_until=0.33)
    slept = _timing.settle(0.2, 1.0, slice_seconds=0.05, cpu_clock=clock.cpu_clock, sleep=clock.sleep)
    # 0.2 busy, then slices of 0.05: busy up to 0.35, quiet in the slice 0.35-0.40.
    assert slept == pytest.approx(0.4)


def test_settle_gives_up_at_its_maximum():
    clock = FakeClock(busy_until=1e9)  # e.g. OMP_WAIT_POLICY=active: the threads never sleep
    slept = _timing.settle(0.2, 0.5, slice_seconds=0.05, cpu_clock=clock.cpu_clock, sleep=clock.sleep)
    assert slept == pytest.approx(0.5)


def test_the_runner_pauses_before_every_timed_run_and_rotates_the_first():
    events = []

    def configuration(name):
        def once():
            events.append(f"run {name}")
            return 1.0, 1.0  # one unit in one second: a measurement is one call
        return _timing.Timed((name,), lambda: _nothing(events, name), once)

    configurations = [configuration(name) for name in "abc"]
    rates = _timing.interleaved_rounds(configurations, 3, 0.5, lambda: events.append("pause"))
    timed_runs = [e for e in events if e.startswith("run")]
    assert timed_runs == ["run a", "run b", "run c", "run b", "run c", "run a", "run c", "run a", "run b"]
    # Every timed run is preceded by a pause, and the pause ends before its thread set-up.
    for index, event in enumerate(events):
        if event.startswith("threads"):
            assert events[index - 1] == "pause" and events[index + 1] == "run" + event[len("threads"):]
    assert events.count("pause") == 9 and rates == {(name,): [1.0, 1.0, 1.0] for name in "abc"}



def _nothing(events, name):
    import contextlib

    events.append(f"threads {name}")
    return contextlib.nullcontext()


def test_the_command_pauses_through_settle_at_the_chosen_minimum(monkeypatch, tmp_path):
    pauses = []
    monkeypatch.setattr(_command, "settle", lambda seconds: pauses.append(seconds))
    settings = bench.TINY.__class__(**{**bench.TINY.__dict__, "pause_seconds": 0.25})
    args = bench.configure_parser(argparse.ArgumentParser()).parse_args(["--only", "predict", "--peers", "numpy"])
    assert _command.run(args, settings=settings) == 0
    assert pauses and set(pauses) == {0.25}


# --- the load of the busy-CPU case ---------------------------------------------------------------------


def test_the_cpu_load_is_stopped_when_the_block_ends():
    with _busy.cpu_load(60.0) as child:
        assert child.poll() is None  # running, and it said it was
    assert child.poll() is not None


def test_the_cpu_load_stops_by_itself_at_its_limit():
    with _busy.cpu_load(0.3) as child:
        started = time.monotonic()
        child.wait(timeout=30)
        assert time.monotonic() - started < 30
        assert child.returncode == 0  # it left its loop on its own, not by a signal


# --- the machine and like-for-like work ---------------------------------------------------------------


# A child process: the thresholds are process-wide, and the test process keeps glibc's own.
_HEAP_PROBE = r"""
import ctypes, sys
import numpy as np
from fastmlp.bench._machine import pin_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
report = pin_allocator() if sys.argv[1] == "pin" else "glibc's own"
block = np.ones(16 << 20, dtype=np.uint8)  # 16 MiB: mapped by glibc's own rules, heap when pinned
mapped_while_alive = libc.mallinfo2().hblkhd
del block
print(mapped_while_alive, libc.mallinfo2().arena, report, sep="\n")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc thresholds, Linux only")
def test_the_pinned_allocator_keeps_freed_blocks_in_the_heap():
    def probe(mode):
        result = subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True, text=True, timeout=60)
        if "mallinfo2" in result.stderr:
            pytest.skip("not glibc 2.33 or later (no mallinfo2)")
        assert result.returncode == 0, result.stderr
        mapped, heap, report = result.stdout.strip().split("\n")
        return int(mapped), int(heap), report

    mapped, heap, _ = probe("own")
    if mapped == 0 and heap == 0:  # mallinfo2 answered by another malloc (ASan's, scripts/sanitize.sh)
        pytest.skip("malloc here is not glibc's own, so it has no thresholds to pin")
    assert mapped >= 16 << 20  # glibc's own rules map a fresh 16 MiB block (and unmap it when freed)
    mapped, heap, report = probe("pin")
    assert report.startswith("glibc ") and "pinned for the run" in report
    assert mapped < 16 << 20 and heap >= 16 << 20  # served from the heap, and still there once freed


def test_numpy_kernel_is_numpys_own_blas():
    pools = [
        {"user_api": "blas", "internal_api": "openblas", "version": "0.3.30", "architecture": "Zen",
         "filepath": "/x/scipy.libs/libscipy_openblas.so"},
        {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell",
         "filepath": "/x/numpy.libs/libscipy_openblas64_.so"},
    ]
    assert _machine.numpy_blas_kernel(pools, "scipy-openblas") == "openblas 0.3.31 Haswell"
    assert "kernel unknown" in _machine.numpy_blas_kernel(None, "scipy-openblas")


@pytest.mark.parametrize("config", [TrainConfig(optimizer="adam"), TrainConfig(dropout=0.2),
                                    TrainConfig(activation="gelu"), TrainConfig(dtype="float64")],
                         ids=lambda c: c.label)
def test_numpy_peer_takes_the_native_steps(config):
    # A peer and native start from one network and must take the same steps over the same shuffled
    # batches (and dropout masks), else the timing would compare unlike work.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 12)).astype(config.dtype)
    y = rng.integers(0, 4, 96)
    net = fastmlp.Network([12, 16, 4], activation=config.activation, dtype=config.dtype, seed=0,
                          dropout=config.dropout)
    start = ([W.copy() for W in net.weights], [b.copy() for b in net.biases])
    native = NativeBackend(net, X, y, 32, 5, config)
    numpy_peer = NumpyBackend(*start, X, y, 32, 5, None, config)
    for _ in range(2):
        native.epoch()
        numpy_peer.epoch()
    assert native.last_loss == pytest.approx(numpy_peer.last_loss, rel=1e-4)
    for ours, theirs in zip(net.weights, numpy_peer.weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)
    assert not np.allclose(net.weights[0], start[0][0])


@pytest.mark.parametrize("config", [TrainConfig(optimizer=name) for name in
                                    ("sgd", "momentum", "nesterov", "weight_decay", "adam", "adamw", "rmsprop")]
                         + [TrainConfig(sample_weights=True), TrainConfig(activation="softplus")],
                         ids=lambda c: c.label)
def test_torch_peer_takes_the_native_steps(config):
    torch = pytest.importorskip("torch")
    from fastmlp.bench._peers import TorchBackend

    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 12)).astype(np.float32)
    y = rng.integers(0, 4, 96)
    net = fastmlp.Network([12, 16, 4], activation=config.activation, seed=0)
    start = ([W.copy() for W in net.weights], [b.copy() for b in net.biases])
    native = NativeBackend(net, X, y, 96, 5, config)  # one batch per epoch: the order does not matter
    peer = TorchBackend(torch, *start, X, y, 96, 5, config)
    for _ in range(3):
        native.epoch()
        peer.epoch()
    theirs = [layer.weight.detach().numpy() for layer in peer.model if hasattr(layer, "weight")]
    for ours, their in zip(net.weights, theirs):
        np.testing.assert_allclose(ours, their, rtol=1e-3, atol=1e-5)
    assert not np.allclose(net.weights[0], start[0][0])
