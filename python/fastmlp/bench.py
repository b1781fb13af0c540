"""``python -m fastmlp bench``: training throughput (samples/s) of the native trainer against its peers
(the NumPy oracle, PyTorch eager, scikit-learn's MLPClassifier, pure Python) on the same networks,
starting weights and synthetic data, with GFLOP/s against an sgemm ceiling measured in the same run.

Holds the case table, one timing adapter per backend, the interleaved measuring loop, the sgemm
ceiling, the peak-RSS probe and the report (aligned tables, optionally JSON). Deliberately no
plotting, no history of past runs and no assertion about speed: machines are shared and noisy, so
it reports medians and ratios from one run. torch, scikit-learn and threadpoolctl are optional
(``pip install fastmlp[bench]``) and imported only when a run needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

import fastmlp
from fastmlp import reference
from fastmlp.cli import _non_negative_int, _positive_int  # the same argparse types as `train`
from fastmlp.reference import pure

if TYPE_CHECKING:
    # Types only: the shapes of the plain dicts this module builds (they are JSON-ready, and
    # written as such by --json), and of the backends' common interface.
    from typing import Literal, Protocol, TypedDict, Union

    from typing_extensions import NotRequired

    # (n, threads, runs): square size, "native" (the native thread count) or a count, timed runs.
    CeilingPlan = tuple[tuple[int, Union[Literal["native"], int], int], ...]
    # n -> a context manager holding NumPy's BLAS at n threads (threadpoolctl).
    BlasLimits = Callable[[int], AbstractContextManager[object]]
    Say = Callable[[str], None]

    class Preset(TypedDict):
        repeats: int
        min_seconds: float
        pure_seconds: float
        max_samples: int
        pause_seconds: float
        ceiling_plan: CeilingPlan

    class Backend(Protocol):
        name: str
        last_loss: float

        def threads(self, n: int | None) -> AbstractContextManager[object]: ...

        def epoch(self) -> tuple[int, float]: ...

    class Summary(TypedDict):
        rounds: list[float]
        median: float
        min: float
        max: float

    class SgemmSize(TypedDict):
        n: int
        threads: int | None  # None: the BLAS's own default
        gflops: Summary

    class Ceiling(TypedDict):
        by_size: list[SgemmSize]
        gflops: dict[int | None, float]

    class Measurement(TypedDict):
        backend: str
        threads: int | None
        samples_per_second: Summary
        gflops: float
        best_thread_count: NotRequired[bool]  # set once every measurement of the case is in

    class NativeScaling(TypedDict):
        threads: int
        samples_per_second: float
        one_thread_samples_per_second: float
        speedup: float

    class CaseResult(TypedDict):
        name: str
        layer_sizes: list[int]
        activation: str
        optimizer: str
        batch_size: int
        dtype: str
        flop_per_sample: int
        rows_per_epoch: dict[str, int]
        measurements: list[Measurement]
        samples_per_second: dict[str, Summary]
        threads: dict[str, int | None]
        best_peer: str | None
        ratios: dict[str, float]
        final_loss: dict[str, float]
        losses_finite: NotRequired[bool]
        native_scaling: NotRequired[NativeScaling]

    class MemoryReport(TypedDict, total=False):
        # Only "error" when the probe failed; otherwise everything but "error", the last four
        # keys when the platform lets them be measured.
        error: list[str]
        layer_sizes: list[int]
        rows: int
        batch_size: int
        threads: int
        fit_seconds: float
        data_bytes: int
        X_bytes: int
        y_bytes: int
        parameter_bytes: int
        n_parameters: int
        workspace_estimate_bytes: int
        workspace_formula: str
        shuffle_order_bytes: int
        expected_bytes: int
        rss: dict[str, int | None]
        ru_maxrss: int
        peak_rss: int
        peak_source: str
        peak_over_baseline: int
        ratio_to_expected: float
        fit_peak_increase: int

    class Environment(TypedDict):
        date: str
        command: str
        platform: str
        cpu_model: str
        cpu_flags: list[str] | None
        cpu_count: int | None
        usable_cores: int
        python: str
        numpy_blas: str | None
        versions: dict[str, str | list[str]]
        thread_pools: list[dict[str, object]] | None
        build_info: dict[str, bool | int | float | str | None]
        peers_skipped: dict[str, str]

__all__ = ["CASES", "configure_parser", "run", "main", "workspace_estimate_bytes"]


@dataclass(frozen=True)
class BenchCase:
    name: str
    layer_sizes: tuple[int, ...]
    activation: str
    batch_size: int
    n_samples: int  # rows per epoch: several batches even for the slowest peer within 0.5 s
    with_pure: bool  # pure Python on a 784-wide layer needs minutes for a meaningful sample count
    gemm_bound: bool  # big enough that thread scaling is about the kernels, not per-batch overhead
    optimizer: str = "sgd"  # "sgd" (plain, lr LEARNING_RATE) or "adam" (lr ADAM_LEARNING_RATE, PyTorch's defaults)

    @property
    def flop_per_sample(self) -> int:
        """6 x sum(IN * OUT): forward, dh and dW, 2 FLOP per multiply-add (DESIGN.md section 1)."""
        return 6 * sum(n_in * n_out for n_in, n_out in zip(self.layer_sizes, self.layer_sizes[1:]))


CASES = (
    BenchCase("64-32-10-tanh-b16", (64, 32, 10), "tanh", 16, 16384, True, False),
    BenchCase("784-128-10-relu-b32", (784, 128, 10), "relu", 32, 16384, False, False),
    BenchCase("784-128-10-relu-b128", (784, 128, 10), "relu", 128, 16384, False, False),
    BenchCase("784-256-256-10-relu-b128", (784, 256, 256, 10), "relu", 128, 16384, False, False),
    # Adam adds two state arrays per parameter and an element-wise pass over them each step.
    BenchCase("784-256-256-10-relu-b128-adam", (784, 256, 256, 10), "relu", 128, 16384, False, False, "adam"),
    # 2 batches: one epoch is already 1-2 s for every backend (200 MFLOP per sample).
    BenchCase("4096-4096-4096-10-relu-b256", (4096, 4096, 4096, 10), "relu", 256, 512, False, True),
)
CASES_BY_NAME = {case.name: case for case in CASES}

# Random labels never become learnable, so a large step only stirs the weights; 0.01 keeps the
# losses finite (NaN or denormal arithmetic would change the speed being measured).
LEARNING_RATE = 0.01
ADAM_LEARNING_RATE = 1e-3
DTYPE = "float32"
FLOP_CONVENTION = "6 * sum(IN*OUT) FLOP per sample"

PEERS = ("numpy", "torch", "sklearn", "pure")
INSTALL_HINT = "pip install fastmlp[bench]"

# The memory probe: MNIST-sized data through the case most users start from.
MEMORY_ROWS = 60000
MEMORY_LAYERS = (784, 128, 10)
MEMORY_BATCH = 128
# Depth of the native GEMM's packed panels (kGemmKC in cpp/fastmlp/gemm.hpp), for the estimate only.
GEMM_PANEL_DEPTH = 256


@dataclass(frozen=True)
class Settings:
    repeats: int
    min_seconds: float  # per measurement: enough whole epochs to make timer noise negligible
    pure_seconds: float  # target length of one pure-Python epoch, reached by choosing its sample count
    max_samples: int  # caps a case's n_samples (quick mode uses small epochs)
    pause_seconds: float  # between measurements, see _measure_round
    ceiling_plan: CeilingPlan  # (n, "native"|1, runs) for the sgemm ceiling
    seed: int


FULL: Preset = dict(repeats=5, min_seconds=0.5, pure_seconds=1.0, max_samples=1 << 30, pause_seconds=0.05,
            ceiling_plan=((2048, "native", 5), (2048, 1, 5), (4096, "native", 3)))
QUICK: Preset = dict(repeats=2, min_seconds=0.02, pure_seconds=0.05, max_samples=256, pause_seconds=0.0,
             ceiling_plan=((1024, "native", 3), (1024, 1, 3)))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset and container CPU sets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- optional peers: imported on first use, a missing one becomes a note in the report ----------------


_MODULE_FOR_PEER = {"torch": "torch", "sklearn": "sklearn.neural_network", "threadpoolctl": "threadpoolctl"}


def _import_optional(name: str) -> tuple[ModuleType | None, str | None]:
    """(module, None) or (None, why not) for "torch", "sklearn" or "threadpoolctl"."""
    try:
        return importlib.import_module(_MODULE_FOR_PEER[name]), None
    except ImportError:
        return None, f"not installed ({INSTALL_HINT})"
    except Exception as exc:  # a broken install (missing shared library...) must not end the run
        return None, f"could not be imported: {type(exc).__name__}: {exc}"


def blas_thread_limiter() -> BlasLimits | None:
    """A function n -> context manager that limits NumPy's BLAS to n threads, or None without
    threadpoolctl (then NumPy runs at its BLAS's own default and the report says so)."""
    threadpoolctl, _ = _import_optional("threadpoolctl")
    if threadpoolctl is None:
        return None
    return lambda n: threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def _blas_threads(blas_limits: BlasLimits | None, n: int | None) -> AbstractContextManager[object]:
    """The BLAS limited to n threads for a with-block; n None (no threadpoolctl) leaves it as it is."""
    if n is None:
        return contextlib.nullcontext()
    assert blas_limits is not None  # a thread count comes only with threadpoolctl (_peer_thread_counts)
    return blas_limits(n)


@contextlib.contextmanager
def _native_threads(n: int) -> Iterator[None]:
    before = fastmlp.get_num_threads()
    fastmlp._core.set_num_threads(n)  # run() already warned once if this build has no OpenMP
    try:
        yield
    finally:
        fastmlp._core.set_num_threads(before)


# --- backends: each times one epoch, its shuffle included, never its setup ----------------------------


class NativeBackend:
    name = "native"

    def __init__(
        self, net: fastmlp.Network, X: NDArray[np.float32], y: NDArray[np.int64], batch_size: int, seed: int,
        optimizer: str = "sgd",
    ) -> None:
        self.X, self.y = X, y
        # Built once: the benchmark is of training, not of workspace allocation.
        opt = fastmlp.optim.Adam(ADAM_LEARNING_RATE) if optimizer == "adam" else fastmlp.optim.SGD(LEARNING_RATE)
        self.trainer = fastmlp.Trainer(net, batch_size=batch_size, shuffle=True, seed=seed, optimizer=opt)
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[None]:
        assert n is not None  # native always runs at a count of its own (run_case)
        return _native_threads(n)

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        history = self.trainer.fit(self.X, self.y, epochs=1, verbose=False)
        seconds = time.perf_counter() - started
        self.last_loss = float(history.loss[-1])
        return len(self.X), seconds


class NumpyBackend:
    """The package's NumPy oracle: the "plain NumPy MLP (OpenBLAS)" peer."""

    name = "numpy"

    def __init__(
        self,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        activation: str,
        X: NDArray[np.float32],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
        blas_limits: BlasLimits | None,
        optimizer: str = "sgd",
    ) -> None:
        self.weights = [W.copy() for W in weights]
        self.biases = [b.copy() for b in biases]
        self.activation = activation
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.blas_limits = blas_limits
        self.optimizer = optimizer
        # Adam's moments, one pair per parameter (W_1, b_1, W_2, ...), and its step count.
        params = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.adam_moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self.adam_steps = 0
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[object]:
        return _blas_threads(self.blas_limits, n)

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        order = self.rng.permutation(len(self.X))
        if self.optimizer == "adam":
            loss = self._adam_epoch(order)
        else:
            loss = reference.train_epoch(self.weights, self.biases, self.activation, self.X, self.y,
                                         self.batch_size, LEARNING_RATE, order=order)
        seconds = time.perf_counter() - started
        self.last_loss = float(loss)
        return len(self.X), seconds

    def _adam_epoch(self, order: NDArray[np.int64]) -> float:
        """The oracle's gradients and Adam written as a NumPy user would, in place (not
        reference.adam_step, whose emulation of PyTorch's rounding is slower than plain NumPy)."""
        total = 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        params = [p for pair in zip(self.weights, self.biases) for p in pair]
        for start in range(0, len(self.X), self.batch_size):
            rows = order[start:start + self.batch_size]
            loss, grads = reference.gradients(self.weights, self.biases, self.activation, self.X[rows], self.y[rows])
            self.adam_steps += 1
            step_size = ADAM_LEARNING_RATE / (1 - beta1 ** self.adam_steps)
            root_bc2 = np.sqrt(1 - beta2 ** self.adam_steps)
            for param, grad, (m, v) in zip(params, [g for pair in grads for g in pair], self.adam_moments):
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                param -= step_size * m / (np.sqrt(v) / root_bc2 + eps)
            total += loss * len(rows)
        return total / len(self.X)


class TorchBackend:
    """PyTorch eager as its tutorials write it: nn.Sequential, CrossEntropyLoss, optim.SGD, one
    zero_grad/forward/backward/step per batch over a randperm order (no DataLoader: its workers
    and collation would add cost that is not torch's arithmetic)."""

    name = "torch"

    def __init__(
        self,
        torch: ModuleType,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        activation: str,
        X: NDArray[np.float32],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
        optimizer: str = "sgd",
    ) -> None:
        self.torch = torch
        nn = torch.nn
        activation_layer = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                            "identity": nn.Identity}[activation]
        layers = []
        for k, (W, b) in enumerate(zip(weights, biases)):
            linear = nn.Linear(W.shape[1], W.shape[0])  # torch's weight is (OUT, IN), like ours
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if k < len(weights) - 1:
                layers.append(activation_layer())
        self.model = nn.Sequential(*layers)
        self.loss_fn = nn.CrossEntropyLoss()
        self.optimizer = (torch.optim.Adam(self.model.parameters(), lr=ADAM_LEARNING_RATE) if optimizer == "adam"
                          else torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE))
        self.X = torch.from_numpy(X)  # shares X's memory: no second copy of the data
        self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.last_loss = float("nan")

    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[None]:
        before = self.torch.get_num_threads()
        self.torch.set_num_threads(n)
        try:
            yield
        finally:
            self.torch.set_num_threads(before)

    def epoch(self) -> tuple[int, float]:
        n, batch_size = len(self.X), self.batch_size
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        started = time.perf_counter()
        order = self.torch.randperm(n, generator=self.generator)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(self.X[rows]), self.y[rows])
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        self.last_loss = float(loss.item())  # the last batch's: reading every one would add syncs
        return n, seconds


class SklearnBackend:
    """scikit-learn's MLPClassifier as plain SGD: no momentum, no L2, constant step; one
    partial_fit call is one shuffled epoch."""

    name = "sklearn"

    def __init__(
        self,
        neural_network: ModuleType,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        activation: str,
        X: NDArray[np.float32],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
        blas_limits: BlasLimits | None,
        optimizer: str = "sgd",
    ) -> None:
        n_classes = weights[-1].shape[0]
        solver = dict(solver="adam", learning_rate_init=ADAM_LEARNING_RATE) if optimizer == "adam" else \
            dict(solver="sgd", momentum=0.0, nesterovs_momentum=False, learning_rate_init=LEARNING_RATE)
        self.model = neural_network.MLPClassifier(
            hidden_layer_sizes=tuple(W.shape[0] for W in weights[:-1]),
            activation={"sigmoid": "logistic"}.get(activation, activation),
            alpha=0.0, learning_rate="constant", **solver,
            batch_size=batch_size, max_iter=1, shuffle=True, random_state=seed,
        )
        self.X, self.y = X, y
        self.blas_limits = blas_limits
        # The first partial_fit builds the float32 parameters (from float32 X); one batch keeps it cheap.
        self._partial_fit(X[:batch_size], y[:batch_size], classes=np.arange(n_classes))
        # Then the shared starting point, written in place: the solver keeps references to these arrays.
        for coef, intercept, W, b in zip(self.model.coefs_, self.model.intercepts_, weights, biases):
            coef[...] = W.T  # scikit-learn stores (IN, OUT)
            intercept[...] = b
        self.last_loss = float("nan")

    def _partial_fit(self, X: NDArray[np.float32], y: NDArray[np.int64], **kwargs: object) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # max_iter=1 is the point here, not a sign of poor convergence.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.partial_fit(X, y, **kwargs)

    def threads(self, n: int | None) -> AbstractContextManager[object]:
        return _blas_threads(self.blas_limits, n)

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        self._partial_fit(self.X, self.y)
        seconds = time.perf_counter() - started
        self.last_loss = float(self.model.loss_)
        return len(self.X), seconds


class PureBackend:
    name = "pure"

    def __init__(
        self,
        weights: list[NDArray[np.floating[Any]]],
        biases: list[NDArray[np.floating[Any]]],
        activation: str,
        X: NDArray[np.float32],
        y: NDArray[np.int64],
        batch_size: int,
        seed: int,
    ) -> None:
        # Converted once here so the timed epochs measure Python arithmetic, not NumPy-to-list copies.
        self.weights = [W.astype(np.float64).tolist() for W in weights]
        self.biases = [b.astype(np.float64).tolist() for b in biases]
        self.activation = activation
        self.X_all = X.astype(np.float64).tolist()
        self.y_all = y.tolist()
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.use_rows(len(self.X_all))
        self.last_loss = float("nan")

    def threads(self, n: int | None) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def use_rows(self, n_rows: int) -> None:
        self.X, self.y = self.X_all[:n_rows], self.y_all[:n_rows]

    def epoch(self) -> tuple[int, float]:
        started = time.perf_counter()
        order = self.rng.permutation(len(self.X)).tolist()
        loss = pure.train_epoch(self.weights, self.biases, self.activation, self.X, self.y,
                                self.batch_size, LEARNING_RATE, order=order)
        seconds = time.perf_counter() - started
        self.last_loss = float(loss)
        return len(self.X), seconds

    def calibrate(self, target_seconds: float) -> int:
        """Pick the number of rows that makes one epoch last about `target_seconds`; return it.

        A whole number of batches, at least one, so every timed epoch has the same batch shapes.
        """
        probe_rows = min(len(self.X_all), 4 * self.batch_size)
        self.use_rows(probe_rows)
        rows, seconds = self.epoch()
        per_row = seconds / rows
        batches = max(1, int(target_seconds / per_row) // self.batch_size)
        n_rows = min(len(self.X_all), batches * self.batch_size)
        self.use_rows(n_rows)
        return n_rows


def _measure(backend: Backend, min_seconds: float) -> float:
    """Run whole epochs until at least `min_seconds` of training time; return samples per second."""
    samples, seconds = 0, 0.0
    while True:
        rows, elapsed = backend.epoch()
        samples += rows
        seconds += elapsed
        if seconds >= min_seconds:
            return samples / seconds


def _synthetic_data(case: BenchCase, n_samples: int, seed: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, case.layer_sizes[0]), dtype=np.float32)
    y = rng.integers(0, case.layer_sizes[-1], size=n_samples, dtype=np.int64)
    return X, y


def _summary(values: list[float]) -> Summary:
    return {
        "rounds": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


# --- the sgemm ceiling ---------------------------------------------------------------------------------


def measure_sgemm_ceiling(plan: CeilingPlan, native_threads: int, blas_limits: BlasLimits | None) -> Ceiling:
    """GFLOP/s (2 n^3 / t) of float32 ``numpy.matmul`` of square matrices, per (n, threads) of `plan`.

    Returns {"by_size": [...], "gflops": {threads: best median over the sizes}}. Without
    threadpoolctl the BLAS runs at its own default and the threads are recorded as None.
    """
    rng = np.random.default_rng(0)
    by_size: list[SgemmSize] = []
    for n, planned_threads, runs in plan:
        threads: int | None = native_threads if planned_threads == "native" else planned_threads
        if blas_limits is None:
            threads = None  # the BLAS's own default, whatever the plan asked for
        if any(m["n"] == n and m["threads"] == threads for m in by_size):
            continue  # e.g. with one native thread the 1-thread row would repeat the native one
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        with _blas_threads(blas_limits, threads):
            np.matmul(a, b, out=out)  # thread start-up and first-touch page faults stay untimed
            rates = []
            for _ in range(runs):
                started = time.perf_counter()
                np.matmul(a, b, out=out)
                rates.append(2.0 * n ** 3 / (time.perf_counter() - started) / 1e9)
        by_size.append({"n": n, "threads": threads, "gflops": _summary(rates)})
    best: dict[int | None, float] = {}
    for m in by_size:
        key = m["threads"]
        best[key] = max(best.get(key, 0.0), m["gflops"]["median"])
    return {"by_size": by_size, "gflops": best}


# --- one case ------------------------------------------------------------------------------------------


def _peer_thread_counts(name: str, peer_threads: list[int], blas_limits: BlasLimits | None) -> list[int | None]:
    if name == "pure":
        return [1]
    if name in ("numpy", "sklearn") and blas_limits is None:
        return [None]  # no way to set them: measured once, at the BLAS's default
    return list(peer_threads)


def _build_backends(
    case: BenchCase,
    net: fastmlp.Network,
    X: NDArray[np.float32],
    y: NDArray[np.int64],
    settings: Settings,
    peers: list[str],
    modules: dict[str, ModuleType | None],
    blas_limits: BlasLimits | None,
) -> list[Backend]:
    start_weights = [np.array(W, copy=True) for W in net.weights]
    start_biases = [np.array(b, copy=True) for b in net.biases]
    common = (start_weights, start_biases, case.activation, X, y, case.batch_size, settings.seed)
    opt = case.optimizer
    backends: list[Backend] = [NativeBackend(net, X, y, case.batch_size, settings.seed, opt)]
    if "numpy" in peers:
        backends.append(NumpyBackend(*common, blas_limits, opt))
    torch, neural_network = modules.get("torch"), modules.get("sklearn")
    if "torch" in peers and torch is not None:
        backends.append(TorchBackend(torch, *common, opt))
    if "sklearn" in peers and neural_network is not None:
        backends.append(SklearnBackend(neural_network, *common, blas_limits, opt))
    if "pure" in peers and case.with_pure:
        backends.append(PureBackend(*common))
    return backends


def _measure_round(
    configurations: list[tuple[Backend, int | None]], round_index: int, settings: Settings
) -> dict[tuple[str, int | None], float]:
    """One measurement of every (backend, threads) configuration, the first one rotating each round
    so that any drift in machine load is spread evenly; returns {configuration: samples/s}."""
    shift = round_index % len(configurations)
    rates = {}
    for backend, threads in configurations[shift:] + configurations[:shift]:
        # OpenBLAS and OpenMP workers spin for a while after a call before they sleep; a short pause
        # keeps the previous library's spinning threads from competing with the next measurement.
        time.sleep(settings.pause_seconds)
        with backend.threads(threads):
            rates[(backend.name, threads)] = _measure(backend, settings.min_seconds)
    return rates


def run_case(
    case: BenchCase,
    settings: Settings,
    peers: list[str],
    modules: dict[str, ModuleType | None],
    blas_limits: BlasLimits | None,
    native_threads: int,
    peer_threads: list[int],
    scaling: bool,
    say: Say,
) -> CaseResult:
    """Benchmark one case with every backend it supports; return a JSON-ready dict of results."""
    n_samples = min(case.n_samples, settings.max_samples)
    X, y = _synthetic_data(case, n_samples, settings.seed)
    # Every backend starts from this network's initial weights: the same function, several speeds.
    net = fastmlp.Network(list(case.layer_sizes), activation=case.activation, dtype=DTYPE, seed=settings.seed)
    backends = _build_backends(case, net, X, y, settings, peers, modules, blas_limits)

    rows = {backend.name: n_samples for backend in backends}
    configurations: list[tuple[Backend, int | None]] = []
    for backend in backends:
        if backend.name == "native":
            counts: list[int | None] = [native_threads]
            if (scaling or case.gemm_bound) and native_threads > 1:
                counts.append(1)
        else:
            counts = _peer_thread_counts(backend.name, peer_threads, blas_limits)
        configurations += [(backend, threads) for threads in counts]

    say(f"  {case.name}: warming up")
    for backend in backends:
        first_threads = next(threads for b, threads in configurations if b is backend)
        with backend.threads(first_threads):
            if isinstance(backend, PureBackend):
                rows["pure"] = backend.calibrate(settings.pure_seconds)  # also its warm-up
            else:
                backend.epoch()  # first-touch page faults, lazy initialisation, thread start-up

    rates: dict[tuple[str, int | None], list[float]] = {
        (backend.name, threads): [] for backend, threads in configurations}
    for round_index in range(settings.repeats):
        for key, rate in _measure_round(configurations, round_index, settings).items():
            rates[key].append(rate)
        say(f"  {case.name}: round {round_index + 1}/{settings.repeats}")

    measurements: list[Measurement] = []
    for (name, threads), values in rates.items():
        measurements.append({"backend": name, "threads": threads, "samples_per_second": _summary(values),
                             "gflops": statistics.median(values) * case.flop_per_sample / 1e9})

    # Each backend at its best thread count (native: the requested one, not the scaling probe).
    best: dict[str, Measurement] = {}
    for m in measurements:
        if m["backend"] == "native" and m["threads"] != native_threads:
            continue
        current = best.get(m["backend"])
        if current is None or m["samples_per_second"]["median"] > current["samples_per_second"]["median"]:
            best[m["backend"]] = m
    for m in measurements:
        m["best_thread_count"] = best[m["backend"]] is m

    native_rate = best["native"]["samples_per_second"]["median"]
    ratios = {f"native/{name}": native_rate / m["samples_per_second"]["median"]
              for name, m in best.items() if name != "native"}
    frameworks = [name for name in best if name not in ("native", "pure")]
    best_peer = max(frameworks, key=lambda name: best[name]["samples_per_second"]["median"], default=None)
    if best_peer is not None:
        ratios["native/best_peer"] = ratios[f"native/{best_peer}"]

    result: CaseResult = {
        "name": case.name,
        "layer_sizes": list(case.layer_sizes),
        "activation": case.activation,
        "optimizer": case.optimizer,
        "batch_size": case.batch_size,
        "dtype": DTYPE,
        "flop_per_sample": case.flop_per_sample,
        "rows_per_epoch": rows,
        "measurements": measurements,
        "samples_per_second": {name: m["samples_per_second"] for name, m in best.items()},
        "threads": {name: m["threads"] for name, m in best.items()},
        "best_peer": best_peer,
        "ratios": ratios,
        "final_loss": {backend.name: backend.last_loss for backend in backends},
    }
    result["losses_finite"] = all(np.isfinite(v) for v in result["final_loss"].values())
    one_thread = [m for m in measurements if m["backend"] == "native" and m["threads"] == 1]
    if one_thread and native_threads > 1:
        single = one_thread[0]["samples_per_second"]["median"]
        result["native_scaling"] = {"threads": native_threads, "samples_per_second": native_rate,
                                    "one_thread_samples_per_second": single, "speedup": native_rate / single}
    return result


# --- peak memory of a native fit, in a fresh interpreter -----------------------------------------------

# Run as `python -c`: nothing but NumPy and fastmlp is loaded, so the RSS is the fit's, not the bench's.
_MEMORY_PROBE = r"""
import json, resource, sys, time

def status():
    fields = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return fields

def max_rss_bytes():
    # Only a fallback: after fork + exec Linux keeps the forked parent's peak in ru_maxrss, so a
    # large parent (this bench) shows through; VmHWM belongs to this process alone.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux

args = json.loads(sys.argv[1])
import numpy as np
import fastmlp
fastmlp.set_num_threads(args["threads"])
report = {"after_import": status()}
rng = np.random.default_rng(args["seed"])
X = rng.standard_normal((args["rows"], args["layers"][0]), dtype=np.float32)  # no float64 temporary
y = rng.integers(0, args["layers"][-1], size=args["rows"], dtype=np.int64)
report["after_data"] = status()
net = fastmlp.Network(args["layers"], activation="relu", dtype="float32", seed=args["seed"])
trainer = fastmlp.Trainer(net, lr=0.01, batch_size=args["batch"], seed=args["seed"])
report["before_fit"] = status()
try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0), so the next peak is the fit's own
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    report["peak_reset"] = True
except OSError:
    report["peak_reset"] = False
started = time.perf_counter()
trainer.fit(X, y, epochs=1)
report["fit_seconds"] = time.perf_counter() - started
report["after_fit"] = status()
report["ru_maxrss"] = max_rss_bytes()
report["X_bytes"], report["y_bytes"] = X.nbytes, y.nbytes
report["parameter_bytes"] = sum(W.nbytes for W in net.weights) + sum(b.nbytes for b in net.biases)
report["n_parameters"] = sum(W.size for W in net.weights) + sum(b.size for b in net.biases)
print(json.dumps(report))
"""

WORKSPACE_FORMULA = ("itemsize * (B * (sum_k n_k + 2 max_k n_k + K) + P + "
                     f"{GEMM_PANEL_DEPTH} * (max(B, max_k n_k) + max_k n_k)) + 8 B; "
                     "k = 1..L, K classes, P parameters (a shuffled batch is read from X in place)")


def workspace_estimate_bytes(layer_sizes: Sequence[int], batch: int, itemsize: int = 4) -> int:
    """The native trainer's scratch memory for one fit, from the buffers its Workspace documents:
    gathered batch targets, every layer's activations, two deltas at the widest layer, one
    gradient per parameter, and the GEMM's packed panels (see WORKSPACE_FORMULA)."""
    widths = layer_sizes[1:]
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(layer_sizes, widths))
    per_batch = batch * (sum(widths) + 2 * max(widths) + layer_sizes[-1])
    packing = GEMM_PANEL_DEPTH * (max(batch, max(widths)) + max(layer_sizes))
    return itemsize * (per_batch + n_params + packing) + 8 * batch  # + int64 labels of a batch


def measure_fit_memory(native_threads: int, seed: int) -> MemoryReport:
    """Peak RSS of a one-epoch native fit on MNIST-sized float32 data, in a fresh subprocess,
    against data + parameters + workspace. Returns a JSON-ready dict (with "error" if it failed)."""
    args = {"rows": MEMORY_ROWS, "layers": list(MEMORY_LAYERS), "batch": MEMORY_BATCH,
            "threads": native_threads, "seed": seed}
    completed = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(args)],
                               capture_output=True, text=True, timeout=600)
    if completed.returncode != 0:  # the child's last stderr line is its exception
        last_lines = completed.stderr.strip().splitlines()[-1:]
        return {"error": last_lines or [f"exit status {completed.returncode}"]}
    probe = json.loads(completed.stdout)
    stages = ("after_import", "after_data", "before_fit", "after_fit")
    data_bytes = probe["X_bytes"] + probe["y_bytes"]
    workspace = workspace_estimate_bytes(MEMORY_LAYERS, MEMORY_BATCH)
    expected = data_bytes + probe["parameter_bytes"] + workspace
    result: MemoryReport = {
        "layer_sizes": list(MEMORY_LAYERS), "rows": MEMORY_ROWS, "batch_size": MEMORY_BATCH,
        "threads": native_threads, "fit_seconds": probe["fit_seconds"],
        "data_bytes": data_bytes, "X_bytes": probe["X_bytes"], "y_bytes": probe["y_bytes"],
        "parameter_bytes": probe["parameter_bytes"], "n_parameters": probe["n_parameters"],
        "workspace_estimate_bytes": workspace, "workspace_formula": WORKSPACE_FORMULA,
        "shuffle_order_bytes": 8 * MEMORY_ROWS,  # fit's int64 permutation, alive for the epoch
        "expected_bytes": expected,
        "rss": {stage: probe[stage].get("VmRSS") for stage in stages},
        "ru_maxrss": probe["ru_maxrss"],
    }
    peaks = [probe[stage].get("VmHWM") for stage in stages]
    if None in peaks:  # no /proc: ru_maxrss is the only peak there is
        result["peak_rss"], result["peak_source"] = probe["ru_maxrss"], "ru_maxrss"
    else:  # VmHWM was reset before the fit, so the process's peak is the larger of before and during
        result["peak_rss"], result["peak_source"] = max(peaks), "VmHWM"
    baseline = result["rss"]["after_import"]
    if baseline is not None:
        result["peak_over_baseline"] = result["peak_rss"] - baseline
        result["ratio_to_expected"] = result["peak_over_baseline"] / expected
    if probe["peak_reset"] and None not in peaks:
        result["fit_peak_increase"] = probe["after_fit"]["VmHWM"] - result["rss"]["before_fit"]
    return result


# --- describing the machine -------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


_REPORTED_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")


def _cpu_flags() -> list[str] | None:
    """The SIMD flags /proc/cpuinfo lists (of those that matter to sgemm kernels), or None off Linux."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in _REPORTED_CPU_FLAGS if flag in present]
    except OSError:
        pass
    return None


def _blas_name() -> str | None:
    """NumPy's BLAS as NumPy reports it, or None when this NumPy cannot say."""
    try:
        # NumPy >= 1.25; the stubs of NumPy < 2.1 (the last for Python 3.9) lack the mode argument.
        config = np.show_config(mode="dicts")  # type: ignore[call-arg, func-returns-value, unused-ignore]
        blas = config["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy, or a build without that entry: the name is only informative
        return None


def _thread_pools() -> list[dict[str, object]] | None:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (name, version, kernel, threads)."""
    threadpoolctl, _ = _import_optional("threadpoolctl")
    if threadpoolctl is None:
        return None
    keys = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads")
    return [{key: info[key] for key in keys if key in info} for info in threadpoolctl.threadpool_info()]


def _command_line() -> str:
    """The command that started this process, as a user would type it."""
    script = os.path.basename(sys.argv[0])
    if script == "__main__.py":  # run as python -m fastmlp
        return " ".join(["python -m fastmlp", *sys.argv[1:]])
    return " ".join(["python", sys.argv[0], *sys.argv[1:]])


def describe_environment(modules: dict[str, ModuleType | None], skipped: dict[str, str]) -> Environment:
    info = fastmlp.build_info()
    versions: dict[str, str | list[str]] = {"numpy": np.__version__}
    torch = modules.get("torch")
    if torch is not None:
        versions["torch"] = torch.__version__
        versions["torch_parallel_info"] = torch.__config__.parallel_info().strip().splitlines()[:3]
    if modules.get("sklearn") is not None:
        import sklearn

        versions["sklearn"] = sklearn.__version__
    threadpoolctl, _ = _import_optional("threadpoolctl")
    if threadpoolctl is not None:
        versions["threadpoolctl"] = threadpoolctl.__version__
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": _command_line(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "numpy_blas": _blas_name(),
        "versions": versions,
        "thread_pools": _thread_pools(),
        "build_info": {key: (value if isinstance(value, (bool, int, float, str, type(None))) else str(value))
                       for key, value in dict(info).items()},
        "peers_skipped": skipped,
    }


# --- the report --------------------------------------------------------------------------------------


def _symbols() -> tuple[str, str, str]:
    """(en dash, em dash, times) in the output's encoding, with ASCII stand-ins where it lacks them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "\u2013\u2014\u00d7".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "-", "--", "x"
    return "\u2013", "\u2014", "\u00d7"


def _format_rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _format_ratio(value: float, times: str) -> str:
    if value >= 100:
        return f"{value:.0f}{times}"
    if value >= 10:
        return f"{value:.1f}{times}"
    return f"{value:.2f}{times}"


def _format_gflops(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _format_percent(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 else f"{value:.1f}%" if value >= 0.1 else f"{value:.2f}%"


def _format_bytes(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def _thread_label(threads: int | None) -> str:
    return "dflt" if threads is None else str(threads)


def _aligned(table: list[list[str]], left_columns: tuple[int, ...] = (0,)) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for index, row in enumerate(table):
        cells = [text.ljust(widths[i]) if i in left_columns else text.rjust(widths[i])
                 for i, text in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _ceiling_text(ceiling: Ceiling) -> str:
    parts = []
    for m in ceiling["by_size"]:
        parts.append(f"n={m['n']} {_thread_label(m['threads'])} thr {m['gflops']['median']:.1f}")
    return "; ".join(parts)


def format_report(
    environment: Environment,
    results: list[CaseResult],
    settings: Settings,
    ceiling: Ceiling,
    native_threads: int,
    peer_threads: list[int],
    memory: MemoryReport | None = None,
) -> str:
    en_dash, em_dash, times = _symbols()
    build = environment["build_info"]
    build_text = ", ".join(f"{key} {value}" for key, value in build.items())
    versions = environment["versions"]
    peer_text = [f"numpy {versions['numpy']}"
                 + (f" ({environment['numpy_blas']})" if environment["numpy_blas"] else "")]
    for name in ("torch", "sklearn", "threadpoolctl"):
        if name in versions:
            peer_text.append(f"{'scikit-learn' if name == 'sklearn' else name} {versions[name]}")
    for name, why in environment["peers_skipped"].items():
        peer_text.append(f"{name} {why}")
    ceiling_threads = native_threads if None not in ceiling["gflops"] else None
    reference_ceiling = ceiling["gflops"][ceiling_threads]  # the plan always times this count
    flags = environment["cpu_flags"]
    ran = {m["backend"] for result in results for m in result["measurements"]}
    how: dict[str, str | None] = {"numpy": "numpy (threadpoolctl)", "torch": "torch (torch.set_num_threads)",
                                  "sklearn": "scikit-learn (threadpoolctl)"}
    if "threadpoolctl" in environment["peers_skipped"]:
        how["numpy"] = how["sklearn"] = None  # measured once, at the BLAS's own default ("dflt")
    tuned = [text for name in ("numpy", "torch", "sklearn") if name in ran and (text := how[name])]
    peer_threads_text = (f"; {', '.join(tuned)} at {' and '.join(map(str, peer_threads))} threads, "
                         "each at its best median (* below)") if tuned else ""
    lines = [
        f"fastmlp training throughput: {DTYPE}, one epoch of minibatch SGD (lr {LEARNING_RATE}; the -adam case "
        f"Adam, lr {ADAM_LEARNING_RATE}, in every backend), softmax cross-entropy, reshuffled each epoch, per timed call",
        f"samples/s: median (min{en_dash}max) of {settings.repeats} rounds; in each round every "
        "backend and thread count runs once, the first one rotating",
        f"command : {environment['command']}  ({environment['date']})",
        f"machine : {environment['platform']}; {environment['cpu_model']}, {environment['usable_cores']} "
        f"usable cores; CPU flags: {' '.join(flags) if flags else 'unknown'}",
        f"fastmlp : {build_text}",
        f"peers   : {'; '.join(peer_text)}",
        f"threads : native {native_threads}{peer_threads_text}",
        f"sgemm   : numpy.matmul float32 square, 2n{chr(179) if en_dash != '-' else '^3'}/t, median: "
        f"{_ceiling_text(ceiling)} GFLOP/s; "
        f"ceiling = {reference_ceiling:.1f} GFLOP/s ({_thread_label(ceiling_threads)} threads)",
        f"FLOP    : {FLOP_CONVENTION} (forward, dh, dW; DESIGN.md section 1). It counts layer 1's "
        "dh, which nobody computes, so the true rate is 0.67x-0.83x of it on these cases",
        f"data    : synthetic standard-normal {DTYPE} X, uniform labels, seed {settings.seed}",
        "",
    ]

    # The headline: one row per case.
    header = ["case", "batch", "rows", f"native ({native_threads} thr)", "GFLOP/s", "% sgemm",
              "best peer (thr)", "peer samples/s", "native/best peer", "native/pure"]
    table = [header]
    for result in results:
        rates = result["samples_per_second"]
        native = rates["native"]
        gflops = native["median"] * result["flop_per_sample"] / 1e9
        peer = result["best_peer"]
        ratios = result["ratios"]
        table.append([
            result["name"], str(result["batch_size"]), str(result["rows_per_epoch"]["native"]),
            f"{_format_rate(native['median'])} ({_format_rate(native['min'])}{en_dash}"
            f"{_format_rate(native['max'])})",
            _format_gflops(gflops),
            _format_percent(100 * gflops / reference_ceiling),
            f"{peer} ({_thread_label(result['threads'][peer])})" if peer else em_dash,
            _format_rate(rates[peer]["median"]) if peer else em_dash,
            _format_ratio(ratios["native/best_peer"], times) if peer else em_dash,
            _format_ratio(ratios["native/pure"], times) if "native/pure" in ratios else em_dash,
        ])
    lines += _aligned(table)

    # Every measurement.
    lines += ["", "every backend and thread count (* = the thread count kept for that backend):"]
    header = ["case", "backend", "thr", "samples/s median (min" + en_dash + "max)", "GFLOP/s", "% sgemm",
              "native/this"]
    table = [header]
    for result in results:
        native_median = result["samples_per_second"]["native"]["median"]
        first = True
        for m in result["measurements"]:
            s = m["samples_per_second"]
            rate = f"{_format_rate(s['median'])} ({_format_rate(s['min'])}{en_dash}{_format_rate(s['max'])})"
            if m["backend"] == "pure":
                rate += f" [{result['rows_per_epoch']['pure']} rows]"
            mark = "*" if m["best_thread_count"] else " "
            table.append([
                result["name"] if first else "", m["backend"], _thread_label(m["threads"]) + mark, rate,
                _format_gflops(m["gflops"]), _format_percent(100 * m["gflops"] / reference_ceiling),
                em_dash if m["backend"] == "native" else _format_ratio(native_median / s["median"], times),
            ])
            first = False
    lines += _aligned(table)

    scaling = [r for r in results if "native_scaling" in r]
    if scaling:
        lines += ["", "native thread scaling (same rounds):"]
        one_thread_ceiling = ceiling["gflops"].get(1)
        ceiling_ratio = (reference_ceiling / one_thread_ceiling
                         if one_thread_ceiling and ceiling_threads not in (None, 1) else None)
        for r in scaling:
            sc = r["native_scaling"]
            lines.append(f"  {r['name']}: 1 thread {_format_rate(sc['one_thread_samples_per_second'])}, "
                         f"{sc['threads']} threads {_format_rate(sc['samples_per_second'])} samples/s = "
                         f"{_format_ratio(sc['speedup'], times)}")
        if ceiling_ratio is not None:
            lines.append(f"  (numpy sgemm in this run: {native_threads} threads / 1 thread = "
                         f"{_format_ratio(ceiling_ratio, times)}, what the host granted to a second thread)")

    if memory is not None:
        lines += [""] + _format_memory(memory, times)

    skipped = environment["peers_skipped"]
    if skipped:
        lines.append("")
        for name, why in skipped.items():
            if name == "threadpoolctl":
                lines.append(f"note: threadpoolctl {why}: NumPy's BLAS (numpy rows and the sgemm "
                             "ceiling) ran at its own default thread count, shown as dflt")
            else:
                lines.append(f"note: {name} {why}: no {name} rows")
    diverged = [result["name"] for result in results if not result["losses_finite"]]
    if diverged:
        lines.append("")
        lines.append("warning: the training loss became NaN or infinite in " + ", ".join(diverged)
                     + "; those rates may not be representative")
    return "\n".join(lines)


def _format_memory(memory: MemoryReport, times: str) -> list[str]:
    title = (f"peak RSS, native fit: {memory.get('layer_sizes', list(MEMORY_LAYERS))} relu, batch "
             f"{MEMORY_BATCH}, {MEMORY_ROWS:,} x {MEMORY_LAYERS[0]} float32, one epoch, fresh process")
    if "error" in memory:
        return [title, f"  failed: {' '.join(memory['error'])}"]
    lines = [
        title,
        f"  data (X {_format_bytes(memory['X_bytes'])} + y {_format_bytes(memory['y_bytes'])})"
        f" = {_format_bytes(memory['data_bytes'])}; parameters {memory['n_parameters']:,} float32 = "
        f"{_format_bytes(memory['parameter_bytes'])}; workspace estimate "
        f"{_format_bytes(memory['workspace_estimate_bytes'])}; sum {_format_bytes(memory['expected_bytes'])}",
        f"  workspace = {memory['workspace_formula']}",
    ]
    rss = memory["rss"]
    if rss["after_import"] is not None:
        after_data, before_fit, after_fit = rss["after_data"], rss["before_fit"], rss["after_fit"]
        # With /proc every stage has its RSS, without it none has.
        assert after_data is not None and before_fit is not None and after_fit is not None
        lines.append(
            f"  RSS after import {_format_bytes(rss['after_import'])}, after data "
            f"{_format_bytes(after_data)}, before fit {_format_bytes(before_fit)}, "
            f"after fit {_format_bytes(after_fit)}; peak {_format_bytes(memory['peak_rss'])} "
            f"({memory['peak_source']})")
        lines.append(
            f"  peak - RSS after import = {_format_bytes(memory['peak_over_baseline'])} = "
            f"{_format_ratio(memory['ratio_to_expected'], times)} (data + parameters + workspace)")
    else:
        lines.append(f"  peak RSS {_format_bytes(memory['peak_rss'])} ({memory['peak_source']}, "
                     "whole process; no /proc to split it by stage)")
    if "fit_peak_increase" in memory:
        lines.append(
            f"  fit's own peak over RSS before it (VmHWM reset before fit): "
            f"{_format_bytes(memory['fit_peak_increase'])} (workspace estimate "
            f"{_format_bytes(memory['workspace_estimate_bytes'])} + shuffle order "
            f"{_format_bytes(memory['shuffle_order_bytes'])})")
    return lines


# --- command line ------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``bench`` options to `parser` (an ``argparse.ArgumentParser`` or a subcommand parser)."""
    parser.description = (
        "Measure training throughput (samples per second of one-epoch minibatch SGD, float32) of "
        "fastmlp's native trainer against the NumPy oracle (fastmlp.reference), PyTorch eager, "
        "scikit-learn's MLPClassifier and pure Python, on the same networks, initial weights and "
        "synthetic data; with GFLOP/s (" + FLOP_CONVENTION + ") against a numpy.matmul sgemm ceiling "
        "measured in the same run. Backends and thread counts take turns within each round; tables show "
        "medians over the rounds. torch and scikit-learn are used when installed (" + INSTALL_HINT + ")."
    )
    parser.epilog = "Cases: " + "; ".join(
        f"{c.name} = {list(c.layer_sizes)} {c.activation}, batch {c.batch_size}"
        f"{'' if c.with_pure else ' (no pure Python)'}" for c in CASES
    )
    parser.add_argument("--cases", nargs="+", choices=list(CASES_BY_NAME), default=None, metavar="NAME",
                        help="run only these cases (default: all; with --quick all but the 4096-wide one; "
                             "names listed below)")
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS), metavar="PEER",
                        help="compare against these (default: all of " + ", ".join(PEERS) + "; torch "
                             "and sklearn are skipped with a note when not installed)")
    parser.add_argument("--repeats", type=_positive_int, default=None, metavar="N",
                        help=f"rounds per case (default: {FULL['repeats']}, "
                             f"or {QUICK['repeats']} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in seconds: 2 rounds, small epochs, short timings, a small "
                             "sgemm ceiling (the numbers are rough)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="native threads (default: the usable cores, here "
                             f"{usable_cores()})")
    parser.add_argument("--peer-threads", type=_positive_int, nargs="+", default=None, metavar="N",
                        help="thread counts to try for numpy, torch and sklearn; each keeps its best "
                             "(default: 1 and --threads)")
    parser.add_argument("--scaling", action="store_true",
                        help="also time native at 1 thread in every case (always done for the "
                             "GEMM-bound 4096-wide case)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the peak RSS of a native fit on 60,000 x 784 float32 data in "
                             "a fresh process (always done in a full run: all cases, no --quick)")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seed of the data, the weights and the shuffling (default: 0)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write every measured number, the settings and the machine to this file")
    return parser


def _load_peers(peers: list[str], say: Say) -> tuple[dict[str, ModuleType | None], dict[str, str]]:
    """{name: module} for the optional peers asked for, and {name: why skipped} for the others."""
    modules: dict[str, ModuleType | None] = {}
    skipped: dict[str, str] = {}
    for name in ("torch", "sklearn"):
        if name in peers:
            say(f"  importing {name}")
            modules[name], why = _import_optional(name)
            if why is not None:
                skipped[name] = why
    if "numpy" in peers or "sklearn" in peers:
        _, why = _import_optional("threadpoolctl")
        if why is not None:
            skipped["threadpoolctl"] = why
    return modules, skipped


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` with parsed `args`; return the process exit status."""
    preset = QUICK if args.quick else FULL
    settings = Settings(
        repeats=args.repeats if args.repeats is not None else preset["repeats"],
        min_seconds=preset["min_seconds"],
        pure_seconds=preset["pure_seconds"],
        max_samples=preset["max_samples"],
        pause_seconds=preset["pause_seconds"],
        ceiling_plan=preset["ceiling_plan"],
        seed=args.seed,
    )
    native_threads = args.threads if args.threads is not None else usable_cores()
    if native_threads > 1 and not fastmlp.build_info()["openmp"]:
        fastmlp.set_num_threads(native_threads)  # warns that this build has no OpenMP, once
        native_threads = 1
    peer_threads = args.peer_threads or sorted({1, native_threads})
    if args.cases:
        cases = [CASES_BY_NAME[name] for name in args.cases]
    else:
        cases = [case for case in CASES if not (args.quick and case.gemm_bound)]
    with_memory = args.memory or (args.cases is None and not args.quick)

    def say(message: str) -> None:  # progress on stderr keeps stdout to the tables
        print(message, file=sys.stderr, flush=True)

    json_file = None
    if args.json is not None:
        try:  # opened first, so a bad path fails before minutes of measuring rather than after
            json_file = open(args.json, "w", encoding="utf-8")
        except OSError as exc:
            print(f"fastmlp: error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2

    peers = list(dict.fromkeys(args.peers))
    modules, skipped = _load_peers(peers, say)
    blas_limits = blas_thread_limiter()
    environment = describe_environment(modules, skipped)
    results, memory = [], None
    try:
        say("  sgemm ceiling (numpy.matmul)")
        ceiling = measure_sgemm_ceiling(settings.ceiling_plan, native_threads, blas_limits)
        for case in cases:
            results.append(run_case(case, settings, peers, modules, blas_limits, native_threads,
                                    peer_threads, args.scaling, say))
        if with_memory:
            say("  peak RSS of a native fit (fresh process)")
            memory = measure_fit_memory(native_threads, settings.seed)
    except KeyboardInterrupt:
        if json_file is not None:
            json_file.close()
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    print(format_report(environment, results, settings, ceiling, native_threads, peer_threads, memory),
          flush=True)

    if json_file is not None:
        document = {
            "environment": environment,
            "settings": {
                "quick": bool(args.quick),
                "repeats": settings.repeats,
                "min_seconds_per_measurement": settings.min_seconds,
                "pure_seconds_target": settings.pure_seconds,
                "learning_rate": LEARNING_RATE,
                "adam_learning_rate": ADAM_LEARNING_RATE,
                "dtype": DTYPE,
                "seed": settings.seed,
                "native_threads": native_threads,
                "peer_threads": peer_threads,
                "peers": peers,
                "flop_convention": FLOP_CONVENTION,
            },
            # JSON keys are strings: thread counts become "1", "2" (or "null" for the BLAS default).
            "sgemm_ceiling": {"by_size": ceiling["by_size"],
                              "gflops": {str(k) if k is not None else "null": v
                                         for k, v in ceiling["gflops"].items()}},
            "cases": results,
            "memory": memory,
        }
        with json_file:
            json.dump(document, json_file, indent=2)
            json_file.write("\n")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "fastmlp bench") -> int:
    """Parse `argv` (default: ``sys.argv[1:]``) as ``bench`` options and run; return the exit status."""
    parser = configure_parser(argparse.ArgumentParser(prog=prog))
    return run(parser.parse_args(argv))
