"""The training-throughput cases (``--only cases``): samples/s of one epoch of plain SGD in fastmlp
against the NumPy oracle, PyTorch, scikit-learn and pure Python, and the sgemm ceiling the GFLOP/s
columns are read against.

Holds the case table, the ceiling and one case's measuring; deliberately no formatting (``_report``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

import fastmlp

from ._backends import NativeBackend, NumpyBackend, PureBackend, TrainConfig, synthetic_data
from ._machine import blas_threads, peer_thread_counts
from ._peers import SklearnBackend, TorchBackend
from ._timing import Timed, interleaved_rounds, summary, warm_up

if TYPE_CHECKING:
    from typing import TypedDict

    from typing_extensions import NotRequired

    from ._backends import Backend
    from ._machine import BlasLimits, Machine
    from ._settings import CeilingPlan, Settings
    from ._timing import Summary

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
        machine: Machine
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

DTYPE = "float32"
FLOP_CONVENTION = "6 * sum(IN*OUT) FLOP per sample"
PEERS = ("numpy", "torch", "sklearn", "pure")


def flop_per_sample(layer_sizes: tuple[int, ...]) -> int:
    """6 x sum(IN * OUT): forward, dh and dW, 2 FLOP per multiply-add (docs/architecture.md)."""
    return 6 * sum(n_in * n_out for n_in, n_out in zip(layer_sizes, layer_sizes[1:]))


def flop_done_per_sample(layer_sizes: tuple[int, ...]) -> int:
    """The products' FLOP a training step really computes per sample: the forward and dW of every
    layer, dh of every layer but the first (nobody needs dX), 2 FLOP per multiply-add."""
    sizes = [n_in * n_out for n_in, n_out in zip(layer_sizes, layer_sizes[1:])]
    return 4 * sum(sizes) + 2 * sum(sizes[1:])


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
        return flop_per_sample(self.layer_sizes)


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


def measure_gemm_ceiling(plan: CeilingPlan, native_threads: int, blas_limits: BlasLimits | None,
                         dtype: str = DTYPE) -> Ceiling:
    """GFLOP/s (2 n^3 / t) of ``numpy.matmul`` of square matrices of `dtype` (float32: sgemm, the
    ceiling of the training cases; float64: dgemm), per (n, threads) of `plan`.

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
        # Drawn in float32 as before, so the sgemm operands stay what they were; widened for dgemm.
        a = rng.standard_normal((n, n), dtype=np.float32).astype(dtype, copy=False)
        b = rng.standard_normal((n, n), dtype=np.float32).astype(dtype, copy=False)
        out = np.empty((n, n), dtype=dtype)
        with blas_threads(blas_limits, threads):
            np.matmul(a, b, out=out)  # thread start-up and first-touch page faults stay untimed
            rates = []
            for _ in range(runs):
                started = time.perf_counter()
                np.matmul(a, b, out=out)
                rates.append(2.0 * n ** 3 / (time.perf_counter() - started) / 1e9)
        by_size.append({"n": n, "threads": threads, "gflops": summary(rates)})
    best: dict[int | None, float] = {}
    for m in by_size:
        key = m["threads"]
        best[key] = max(best.get(key, 0.0), m["gflops"]["median"])
    return {"by_size": by_size, "gflops": best}


def _build_backends(case: BenchCase, net: fastmlp.Network, X: Any, y: Any, settings: Settings, peers: list[str],
                    modules: dict[str, ModuleType | None], blas_limits: BlasLimits | None) -> list[Backend]:
    start = ([np.array(W, copy=True) for W in net.weights], [np.array(b, copy=True) for b in net.biases])
    config = TrainConfig(activation=case.activation, optimizer=case.optimizer)
    seed, batch = settings.seed, case.batch_size
    backends: list[Backend] = [NativeBackend(net, X, y, batch, seed, config)]
    if "numpy" in peers:
        backends.append(NumpyBackend(*start, X, y, batch, seed, blas_limits, config))
    torch, neural_network = modules.get("torch"), modules.get("sklearn")
    if "torch" in peers and torch is not None:
        backends.append(TorchBackend(torch, *start, X, y, batch, seed, config))
    if "sklearn" in peers and neural_network is not None:
        backends.append(SklearnBackend(neural_network, *start, case.activation, X, y, batch, seed, blas_limits,
                                       case.optimizer))
    if "pure" in peers and case.with_pure:
        backends.append(PureBackend(*start, case.activation, X, y, batch, seed))
    return backends


def timed_epochs(backend: Backend, threads: int | None) -> Timed:
    """A backend at one thread count as a configuration of the interleaved rounds."""
    return Timed((backend.name, threads), lambda: backend.threads(threads), backend.epoch)


def run_case(case: BenchCase, settings: Settings, peers: list[str], modules: dict[str, ModuleType | None],
             blas_limits: BlasLimits | None, native_threads: int, peer_threads: list[int], scaling: bool,
             machine: Machine, pause: Callable[[], object], say: Callable[[str], None]) -> CaseResult:
    """Benchmark one case with every backend it supports; return a JSON-ready dict of results."""
    n_samples = min(case.n_samples, settings.max_samples)
    X, y = synthetic_data(case.layer_sizes, n_samples, settings.seed)
    # Every backend starts from this network's initial weights: the same function, several speeds.
    net = fastmlp.Network(list(case.layer_sizes), activation=case.activation, dtype=DTYPE, seed=settings.seed)
    backends = _build_backends(case, net, X, y, settings, peers, modules, blas_limits)

    rows = {backend.name: n_samples for backend in backends}
    configurations: list[Timed] = []
    for backend in backends:
        if backend.name == "native":
            counts: list[int | None] = [native_threads]
            if (scaling or case.gemm_bound) and native_threads > 1:
                counts.append(1)
        else:
            counts = peer_thread_counts(backend.name, peer_threads, blas_limits)
        configurations += [timed_epochs(backend, threads) for threads in counts]

    say(f"  {case.name}: warming up")
    for backend in backends:
        if isinstance(backend, PureBackend):
            rows["pure"] = backend.calibrate(settings.pure_seconds)  # also its warm-up
    warm_up([c for c in configurations if c.key[0] != "pure"], pause)
    rates = interleaved_rounds(configurations, settings.repeats, settings.min_seconds, pause,
                               lambda i: say(f"  {case.name}: round {i + 1}/{settings.repeats}"))

    measurements: list[Measurement] = []
    for (name, threads), values in rates.items():
        measurements.append({"backend": name, "threads": threads, "samples_per_second": summary(values),
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
        "machine": machine,
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
