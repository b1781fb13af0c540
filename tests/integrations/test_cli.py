"""Command-line tests: ``python -m fastmlp train`` and ``bench`` run as a user would, in a subprocess.

They check exit codes, the lines users and scripts read, data-file handling and one-line errors.
Deliberately not here: the training math (the oracle tests cover it) and any assertion about speed.
"""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import datasets

ACCURACY_LINE = re.compile(r"^held-out accuracy: (\d\.\d{4}) \((\d+) samples\)$", re.MULTILINE)
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_fastmlp(*args, cwd):
    # A fresh interpreter per call is the point: it exercises __main__, exit codes and stream use.
    return subprocess.run(
        [sys.executable, "-m", "fastmlp", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("fastmlp: error: ")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0]
    assert result.stdout == ""


@pytest.fixture(scope="module")
def digits_subset():
    X, y = datasets.load_digits()
    return X[:300], y[:300]


def test_no_command_prints_help_and_exits_2(tmp_path):
    result = run_fastmlp(cwd=tmp_path)
    assert result.returncode == 2
    assert "train" in result.stderr and "bench" in result.stderr


def test_version(tmp_path):
    result = run_fastmlp("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"fastmlp {fastmlp.__version__}"


def test_train_help_lists_every_option(tmp_path):
    result = run_fastmlp("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in ("--hidden", "--activation", "--epochs", "--lr", "--batch-size", "--seed", "--threads",
                   "--dtype", "--test-fraction", "--no-shuffle", "--data", "--save", "--quiet"):
        assert option in result.stdout
    for choice in ("relu", "tanh", "sigmoid", "identity", "float32", "float64"):
        assert choice in result.stdout
    # The --data help must name the .npz keys it looks for.
    assert "'X'" in result.stdout and "'y'" in result.stdout


def test_quiet_short_run_prints_only_the_accuracy_line(tmp_path):
    result = run_fastmlp("train", "--epochs", "2", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    match = ACCURACY_LINE.fullmatch(result.stdout.strip())
    assert match, result.stdout
    assert int(match.group(2)) == 449  # a quarter of the 1797 digits
    assert 0.5 < float(match.group(1)) <= 1.0


def test_progress_shows_validation_per_epoch(tmp_path):
    result = run_fastmlp("train", "--epochs", "3", "--hidden", "32", "--activation", "tanh",
                         "--dtype", "float64", "--threads", "1", "--no-shuffle", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch")]
    assert len(epoch_lines) == 3
    assert all("val" in line for line in epoch_lines)
    assert "[64, 32, 10] tanh float64" in result.stderr
    assert ACCURACY_LINE.search(result.stdout)


def test_defaults_reach_96_percent_on_digits(tmp_path):
    # The defaults were chosen to clear this bar (seeded, and thread-count independent by design).
    result = run_fastmlp("train", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(ACCURACY_LINE.search(result.stdout).group(1)) >= 0.96


def test_npz_data_with_arbitrary_integer_labels(tmp_path, digits_subset):
    X, y = digits_subset
    np.savez(tmp_path / "data.npz", X=X, y=y * 10 + 5)  # labels 5, 15, ..., 95
    result = run_fastmlp("train", "--data", "data.npz", "--epochs", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "10 classes" in result.stderr and "mapped to 0..9" in result.stderr
    assert int(ACCURACY_LINE.search(result.stdout).group(2)) == 75


@pytest.mark.parametrize("with_header", [True, False])
def test_csv_data(tmp_path, digits_subset, with_header):
    X, y = digits_subset
    lines = [",".join(f"pixel{i}" for i in range(X.shape[1])) + ",label"] if with_header else []
    lines += [",".join(f"{v:g}" for v in row) + f",{label}" for row, label in zip(X, y)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    result = run_fastmlp("train", "--data", "data.csv", "--epochs", "5", "--test-fraction", "0.2",
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "300 samples, 64 features, 10 classes" in result.stderr
    assert int(ACCURACY_LINE.search(result.stdout).group(2)) == 60


def test_missing_file_is_a_one_line_error(tmp_path):
    assert_user_error(run_fastmlp("train", "--data", "nowhere.npz", cwd=tmp_path), "nowhere.npz")


def test_npz_without_the_expected_keys_names_them(tmp_path, digits_subset):
    X, y = digits_subset
    np.savez(tmp_path / "data.npz", features=X, labels=y)
    result = run_fastmlp("train", "--data", "data.npz", cwd=tmp_path)
    assert_user_error(result, "'X'", "'y'", "'features'")


def test_one_class_is_a_one_line_error(tmp_path, digits_subset):
    X, _ = digits_subset
    np.savez(tmp_path / "data.npz", X=X, y=np.full(len(X), 7))
    assert_user_error(run_fastmlp("train", "--data", "data.npz", cwd=tmp_path), "2 classes")


@pytest.mark.parametrize("name, content", [
    ("ragged.csv", "1,2,0\n3,1\n"),
    ("words.csv", "a,b\n1,x\n"),
    ("notzip.npz", "plain text"),
    ("data.txt", "1,0\n2,1\n"),
])
def test_malformed_files_are_one_line_errors(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    assert_user_error(run_fastmlp("train", "--data", name, cwd=tmp_path), name)


def test_library_value_error_is_a_one_line_error(monkeypatch, capsys):
    # In-process: the CLI's own checks pre-empt the library's on every input a subprocess can give,
    # so a ValueError from the library is simulated here to pin down how it is reported.
    from fastmlp import cli

    def refuse(self, *args, **kwargs):
        raise ValueError("lr is too large for this network")

    monkeypatch.setattr(fastmlp.Trainer, "fit", refuse)
    assert cli.main(["--epochs", "1", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "fastmlp: error: lr is too large for this network\n"
    assert captured.out == ""


def test_thread_warning_of_a_serial_build_is_one_line(monkeypatch, capsys):
    from fastmlp import cli

    def serial_build(n):
        warnings.warn("fastmlp was built without OpenMP", RuntimeWarning, stacklevel=2)

    monkeypatch.setattr(fastmlp, "set_num_threads", serial_build)
    assert cli.main(["--threads", "2", "--epochs", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "fastmlp: warning: fastmlp was built without OpenMP\n"
    assert ACCURACY_LINE.search(captured.out)


def test_features_that_overflow_float32_are_a_one_line_error(tmp_path, digits_subset):
    X, y = digits_subset
    X = X.astype(np.float64)
    X[5, 3] = 1e300
    np.savez(tmp_path / "data.npz", X=X, y=y)
    assert_user_error(run_fastmlp("train", "--data", "data.npz", cwd=tmp_path), "float64")


def test_save_writes_a_model_that_network_load_reads(tmp_path):
    result = run_fastmlp("train", "--epochs", "2", "--hidden", "16", "8", "--activation", "sigmoid",
                         "--save", "model.npz", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    net = fastmlp.Network.load(tmp_path / "model.npz")
    assert net.layer_sizes == [64, 16, 8, 10]
    assert net.activation == "sigmoid"
    X, y = datasets.load_digits()
    _, X_test, _, y_test = datasets.train_test_split(X, y, test_fraction=0.25, seed=0)
    reported = float(ACCURACY_LINE.search(result.stdout).group(1))
    assert net.accuracy(X_test, y_test) == pytest.approx(reported, abs=1e-4)


def test_save_into_a_missing_folder_fails_before_training(tmp_path):
    result = run_fastmlp("train", "--save", "no/such/dir/model.npz", cwd=tmp_path)
    assert_user_error(result, "does not exist")


TINY_CASE = "64-32-10-tanh-b16"


def optional_peer_installed(module_name):
    try:
        __import__(module_name)
    except Exception:  # not installed, or installed but broken: the bench skips it either way
        return False
    return True


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
    assert document["memory"] is None  # only with --memory or in a full run


def test_bench_without_the_optional_peers_notes_them(monkeypatch, capsys):
    # In-process, with the imports made to fail: the path CI takes when only .[test] is installed.
    from fastmlp import bench

    for module in ("torch", "sklearn", "sklearn.neural_network", "threadpoolctl"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` of a None entry raises ImportError
    assert bench.main(["--quick", "--cases", TINY_CASE, "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: torch not installed (pip install fastmlp[bench])" in out
    assert "note: sklearn not installed (pip install fastmlp[bench])" in out
    assert "threadpoolctl not installed" in out
    assert "numpy (dflt)" in out  # without threadpoolctl NumPy runs once, at its BLAS's default


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
    result = run_fastmlp("bench", "--quick", "--cases", TINY_CASE, "--peers", "numpy", "--memory",
                         "--json", "bench.json", cwd=tmp_path)
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


def test_bench_rejects_an_unknown_case(tmp_path):
    result = run_fastmlp("bench", "--cases", "no-such-case", cwd=tmp_path)
    assert result.returncode == 2
    assert "no-such-case" in result.stderr


def test_bench_script_forwards_its_arguments(tmp_path):
    script = REPO_ROOT / "bench" / "bench_training.py"
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--repeats", "--cases", "--peers", "--threads", "--peer-threads", "--scaling", "--memory"):
        assert option in result.stdout


def test_bench_adam_backends_train_the_same_steps():
    # The -adam case's NumPy peer and native backend start from one network and must take the
    # same Adam steps over the same shuffled batches (else the timing would compare unlike work).
    from fastmlp import bench

    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 12)).astype(np.float32)
    y = rng.integers(0, 4, 96)
    net = fastmlp.Network([12, 16, 4], seed=0)
    start = ([W.copy() for W in net.weights], [b.copy() for b in net.biases])
    native = bench.NativeBackend(net, X, y, 32, 5, "adam")
    numpy_peer = bench.NumpyBackend(*start, "relu", X, y, 32, 5, None, "adam")
    for _ in range(2):
        native.epoch()
        numpy_peer.epoch()
    assert native.last_loss == pytest.approx(numpy_peer.last_loss, rel=1e-4)
    for ours, theirs in zip(net.weights, numpy_peer.weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)
    assert not np.allclose(net.weights[0], start[0][0])
