"""fastmlp.distributed.DataParallelTrainer against fastmlp.Trainer in one process.

Each test launches ``mpirun -n 2`` or ``-n 3`` (oversubscribed on this 2-core machine) on a
worker script in tests/mpi/ over loopback, with a subprocess timeout so that a rank hanging in
a collective fails the test instead of blocking CI. The single-process reference trains in
this process, which never imports mpi4py. Sparse shards (scipy.sparse, issue 16) are compared
with the densified shards and with one process on the stacked data. Skipped, saying why, without
mpi4py or mpirun (``scripts/check_mpi.sh`` installs both and runs this file)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import optim, schedules

try:
    import scipy.sparse as sp
except ImportError:  # the sparse cases skip
    sp = None

MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec")
_MPI_MARKS = [
    pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                       reason='mpi4py is not installed (pip install "fastmlp[mpi]"; scripts/check_mpi.sh does it all)'),
    pytest.mark.skipif(MPIRUN is None, reason="no mpirun on PATH (apt-get install openmpi-bin libopenmpi-dev)"),
]

needs_scipy = pytest.mark.skipif(sp is None, reason="scipy is not installed (sparse shards are scipy.sparse)")


def needs_mpi(test):  # type: ignore[no-untyped-def]
    for mark in _MPI_MARKS:
        test = mark(test)
    return test


WORKERS = Path(__file__).parent  # the worker scripts sit beside this file
TIMEOUT = 90  # seconds per mpirun; a run takes about one


def _mpirun_command(n: int) -> list[str]:
    assert MPIRUN is not None
    version = subprocess.run([MPIRUN, "--version"], capture_output=True, text=True).stdout
    # Open MPI refuses more ranks than cores without --oversubscribe; MPICH has no such flag.
    return [MPIRUN, "-n", str(n)] + (["--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else [])


def run_mpi(n: int, worker: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run tests/mpi/<worker> on n ranks; fail the test (not hang) if it outlives TIMEOUT."""
    env = dict(os.environ)
    package_root = str(Path(fastmlp.__file__).resolve().parent.parent)  # the fastmlp this test imported
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")  # CI containers run as root
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")  # no CMA inside containers
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = _mpirun_command(n) + [sys.executable, str(WORKERS / worker), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish within {TIMEOUT} s (a rank hanging in a collective?)\n"
                    f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}")
    return proc


def train(tmp_path: Path, n: int, *args: str) -> dict[str, np.ndarray]:
    out = tmp_path / f"result_{n}_{abs(hash(args))}.npz"
    proc = run_mpi(n, "train_worker.py", str(out), *args)
    assert proc.returncode == 0, f"mpirun -n {n} failed:\n{proc.stdout}\n{proc.stderr}"
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


# The worker's setup (tests/mpi/train_worker.py), trained by fastmlp.Trainer in one process.
def single_process(dtype: str = "float64", optimizer: str = "adam", epochs: int = 4, shuffle: bool = True,
                   validation_fraction: float | None = None, rows: int = 600,
                   dropout: float = 0.0, validation_rows: int = 0,
                   sparse: bool = False) -> tuple[fastmlp.Network, fastmlp.History]:
    """With `sparse`, on the stacked data as one CSR matrix; `validation_rows`: the digits after
    the training rows as validation_data (the worker's --validation-rows)."""
    X, y = fastmlp.datasets.load_digits()
    net = fastmlp.Network([64, 32, 10], activation="tanh", dtype=dtype, seed=0, dropout=dropout)
    opt = optim.Adam(lr=1e-2) if optimizer == "adam" else optim.SGD(0.1, momentum=0.9, weight_decay=1e-3)
    tr = fastmlp.Trainer(net, optimizer=opt, batch_size=64, shuffle=shuffle, seed=3,
                         schedule=schedules.StepLR(2, gamma=0.5))
    as_data = sp.csr_matrix if sparse else np.asarray
    validation_data = None
    if validation_rows:
        validation_data = (as_data(X[rows:rows + validation_rows]), y[rows:rows + validation_rows])
    history = tr.fit(as_data(X[:rows]), y[:rows], epochs=epochs, validation_fraction=validation_fraction,
                     validation_data=validation_data)
    return net, history


def relative_error(result: dict[str, np.ndarray], net: fastmlp.Network) -> float:
    params = net.weights + net.biases
    return max(float(np.abs(result[f"p{i}"] - a).max() / np.abs(a).max()) for i, a in enumerate(params))


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_float64_equals_single_process_training(tmp_path: Path, n: int) -> None:
    result = train(tmp_path, n)
    net, history = single_process()
    assert result["identical_on_all_ranks"], "the ranks' weights differ bitwise"
    assert relative_error(result, net) < 1e-12
    np.testing.assert_allclose(result["h_loss"], history.loss, rtol=1e-12)
    np.testing.assert_allclose(result["h_accuracy"], history.accuracy, rtol=0)
    np.testing.assert_array_equal(result["h_lr"], history.lr)  # the schedule stepped alike


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_dropout_draws_the_single_process_masks(tmp_path: Path, n: int) -> None:
    result = train(tmp_path, n, "--dropout", "0.3")
    net, history = single_process(dropout=0.3)
    assert result["identical_on_all_ranks"]
    assert relative_error(result, net) < 1e-12
    np.testing.assert_allclose(result["h_loss"], history.loss, rtol=1e-12)
    # and the masks matter: without dropout the weights are others
    plain, _ = single_process()
    assert relative_error(result, plain) > 1e-3


@needs_mpi
def test_dropout_in_deterministic_mode_is_bitwise_the_same_on_1_and_3_ranks(tmp_path: Path) -> None:
    one = train(tmp_path, 1, "--deterministic", "--dropout", "0.3")
    three = train(tmp_path, 3, "--deterministic", "--dropout", "0.3")
    for i in range(4):
        assert one[f"p{i}"].tobytes() == three[f"p{i}"].tobytes()
    net, _ = single_process(dropout=0.3)
    assert relative_error(one, net) < 1e-12


@needs_mpi
def test_float32_equals_single_process_to_float32_rounding(tmp_path: Path) -> None:
    result = train(tmp_path, 2, "--dtype", "float32", "--optimizer", "sgd", "--epochs", "3")
    net, history = single_process("float32", "sgd", epochs=3)
    assert result["identical_on_all_ranks"]
    assert result["p0"].dtype == np.float32
    # Each step's gradient differs by float32 rounding (sums grouped by rank); three epochs of
    # momentum SGD amplify that to well below 1e-5 of the weights' scale.
    assert relative_error(result, net) < 1e-5
    np.testing.assert_allclose(result["h_loss"], history.loss, rtol=1e-5)


@needs_mpi
def test_unshuffled_order_and_validation_fraction_are_the_global_ones(tmp_path: Path) -> None:
    result = train(tmp_path, 3, "--no-shuffle", "--validation-fraction", "0.2", "--epochs", "2")
    net, history = single_process(shuffle=False, validation_fraction=0.2, epochs=2)
    assert relative_error(result, net) < 1e-12
    np.testing.assert_allclose(result["h_val_loss"], history.val_loss, rtol=1e-12)
    np.testing.assert_allclose(result["h_val_accuracy"], history.val_accuracy, rtol=0)


@needs_mpi
def test_deterministic_is_bitwise_the_same_on_1_2_and_3_ranks(tmp_path: Path) -> None:
    results = [train(tmp_path, n, "--deterministic", "--epochs", "3") for n in (1, 2, 3)]
    for result in results:
        assert result["identical_on_all_ranks"]
        for key in [k for k in results[0] if k.startswith("p") or k in ("h_loss", "h_accuracy")]:
            assert np.array_equal(result[key], results[0][key]), f"{key} differs on {int(result['size'])} ranks"
    net, _ = single_process(epochs=3)
    assert relative_error(results[0], net) < 1e-12  # and it is still the single-process training


@needs_mpi
def test_checkpoint_written_on_3_ranks_continues_on_2_and_in_one_process(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.npz"
    train(tmp_path, 3, "--epochs", "2", "--save", str(checkpoint))
    result = train(tmp_path, 2, "--epochs", "2", "--load", str(checkpoint))
    net, history = single_process(epochs=4)
    assert relative_error(result, net) < 1e-12
    np.testing.assert_array_equal(result["h_lr"], history.lr[2:])

    X, y = fastmlp.datasets.load_digits()
    trainer = fastmlp.Trainer.load_checkpoint(checkpoint)  # the same format as Trainer's
    trainer.fit(X[:600], y[:600], epochs=2)
    params = trainer.network.weights + trainer.network.biases
    for got, want in zip(params, net.weights + net.biases):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


# ---------------------------------------------------------------------- sparse shards (issue 16)


def relative_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[f"p{i}"] - b[f"p{i}"]).max() / np.abs(b[f"p{i}"]).max()) for i in range(4))


@needs_mpi
@needs_scipy
@pytest.mark.parametrize("n, validation", [(2, ("--validation-rows", "100")),
                                           (3, ("--validation-fraction", "0.2"))])
def test_sparse_shards_equal_single_process_and_dense_shards(tmp_path: Path, n: int,
                                                              validation: tuple[str, str]) -> None:
    sparse = train(tmp_path, n, "--sparse", *validation)
    dense = train(tmp_path, n, *validation)
    split = {"validation_rows": 100} if validation[0] == "--validation-rows" else {"validation_fraction": 0.2}
    net, history = single_process(**split)
    stacked, stacked_history = single_process(sparse=True, **split)
    assert sparse["identical_on_all_ranks"], "the ranks' weights differ bitwise"
    assert relative_difference(sparse, dense) < 1e-12  # the densified shards on as many ranks
    assert relative_error(sparse, net) < 1e-12  # one process on the stacked dense data
    assert relative_error(sparse, stacked) < 1e-12  # ... and on the stacked CSR matrix
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(sparse[f"h_{key}"], dense[f"h_{key}"], rtol=1e-12)
        np.testing.assert_allclose(sparse[f"h_{key}"], history.to_dict()[key], rtol=1e-12)
        np.testing.assert_allclose(sparse[f"h_{key}"], stacked_history.to_dict()[key], rtol=1e-12)
    np.testing.assert_array_equal(sparse["h_val_accuracy"], history.val_accuracy)
    np.testing.assert_array_equal(sparse["h_lr"], history.lr)


@needs_mpi
@needs_scipy
def test_sparse_float32_shards_equal_single_process_to_float32_rounding(tmp_path: Path) -> None:
    result = train(tmp_path, 2, "--sparse", "--dtype", "float32", "--optimizer", "sgd", "--epochs", "3")
    net, history = single_process("float32", "sgd", epochs=3, sparse=True)
    assert result["identical_on_all_ranks"]
    assert result["p0"].dtype == np.float32
    assert relative_error(result, net) < 1e-5
    np.testing.assert_allclose(result["h_loss"], history.loss, rtol=1e-5)


@needs_mpi
@needs_scipy
def test_sparse_deterministic_is_bitwise_the_same_on_1_2_and_3_ranks(tmp_path: Path) -> None:
    # The rows travel between ranks as CSR (lengths, indices, values); the validation split maps
    # each rank's training rows through a row list.
    args = ("--sparse", "--deterministic", "--epochs", "3", "--validation-fraction", "0.2")
    results = [train(tmp_path, n, *args) for n in (1, 2, 3)]
    for result in results:
        assert result["identical_on_all_ranks"]
        for key in [k for k in results[0] if k.startswith("p") or k in ("h_loss", "h_accuracy")]:
            assert np.array_equal(result[key], results[0][key]), f"{key} differs on {int(result['size'])} ranks"
    net, history = single_process(epochs=3, validation_fraction=0.2)
    assert relative_error(results[0], net) < 1e-12
    np.testing.assert_allclose(results[2]["h_val_loss"], history.val_loss, rtol=1e-12)
    dense = train(tmp_path, 3, *args[1:])
    assert relative_difference(results[2], dense) < 1e-12


def outcomes(tmp_path: Path, n: int, *args: str) -> dict[int, str]:
    """Run failure_worker.py on n ranks: what each rank ended with."""
    proc = run_mpi(n, "failure_worker.py", str(tmp_path), *args)
    reported = {r: tmp_path / f"rank{r}.txt" for r in range(n)}
    missing = [r for r, path in reported.items() if not path.exists()]
    assert not missing, f"ranks {missing} did not report:\n{proc.stdout}\n{proc.stderr}"
    return {r: path.read_text() for r, path in reported.items()}


@needs_mpi
@pytest.mark.parametrize("mode, failing_rank_raises", [
    ("step_raises", "MemoryError: injected failure in a gradient call"),
    ("callback_raises", "KeyError"),
    ("width", "ValueError: Network expects 64 input features, got X with shape (134, 63)"),
    ("nan_in_shard", "ValueError: X contains NaN"),
    pytest.param("malformed_sparse_shard", "ValueError: X has a column index 64 outside [0, 64) (its shape is "
                 "(134, 64)): the sparse structure is corrupt", marks=needs_scipy),
])
def test_a_rank_that_raises_stops_every_rank(tmp_path: Path, mode: str, failing_rank_raises: str) -> None:
    ended = outcomes(tmp_path, 3, mode)
    assert ended[2].startswith(failing_rank_raises), ended[2]
    for rank in (0, 1):
        assert ended[rank].startswith("RankFailedError: rank 2 of 3 failed"), ended[rank]
        assert failing_rank_raises.split(":")[0] in ended[rank]


@needs_mpi
def test_a_failure_in_deterministic_mode_stops_every_rank(tmp_path: Path) -> None:
    ended = outcomes(tmp_path, 2, "step_raises", "--deterministic")
    assert ended[1].startswith("MemoryError")
    assert ended[0].startswith("RankFailedError: rank 1 of 2 failed computing its gradient")


@needs_mpi
@pytest.mark.parametrize("deterministic", [False, True])
def test_a_nan_loss_on_one_rank_stops_every_rank_before_the_update(tmp_path: Path, deterministic: bool) -> None:
    for outcome in outcomes(tmp_path, 3, "step_nan", *(["--deterministic"] if deterministic else [])).values():
        assert outcome.startswith("TrainingDivergedError: training diverged in epoch 1, batch 3"), outcome


@needs_mpi
@pytest.mark.parametrize("mode, message", [
    ("label_sets", "the shards hold different label sets: rank 0 has classes [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "
                   "rank 2 has [0, 1, 2, 3, 4, 5, 6, 7, 8] (missing [9]"),
    ("target_kind", "the shards' targets differ: rank 0 gives integer labels of shape (n,), rank 2 gives real "
                    "targets of shape (n, 10)"),
    ("seed", "seed must be the same on every rank: rank 0 has 0, rank 2 has 1"),
    ("dropout", "the network's architecture must be the same on every rank: rank 0 has ([64, 16, 10], ['relu'], "
                "'softmax', 'float64', [0.0]), rank 2 has ([64, 16, 10], ['relu'], 'softmax', 'float64', [0.5])"),
    ("no_validation_on_one_rank", "validation_data must be passed on every rank or on none; ranks [2]"),
    pytest.param("sparse_on_one_rank", "the shards differ in format: rank 0 gives a dense X, rank 2 gives a sparse "
                 "X; give every rank the same kind", marks=needs_scipy),
])
def test_shards_and_settings_that_disagree_are_refused_at_start_on_every_rank(tmp_path: Path, mode: str,
                                                                             message: str) -> None:
    for outcome in outcomes(tmp_path, 3, mode).values():
        assert outcome.startswith("ValueError: " + message), outcome


def test_without_mpi4py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastmlp.distributed import _ranks

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[mpi\]"'):
        _ranks.import_mpi()
