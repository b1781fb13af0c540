"""The configuration matrix (``--only configs``): training throughput of fastmlp on one network for
every optimizer, activation, dropout, dtype and sample weights, each as samples/s and as a ratio to
plain SGD + relu timed in the same rounds, against PyTorch (when installed) and the NumPy oracle
(where it implements the configuration); and each backend's share of the square-GEMM rate of the
row's dtype, measured in the same run, counting the FLOP of the products a step really computes.
That share says what a ratio asks of the machine: fastmlp at 1.5x a peer that runs at two thirds
of the ceiling would need all of it, everything else in the step included.

One configuration differs from the baseline in one respect only. Deliberately no formatting here.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

import fastmlp

from ._backends import ACTIVATIONS, OPTIMIZERS, NativeBackend, NumpyBackend, TrainConfig, synthetic_data
from ._machine import peer_thread_counts
from ._peers import TorchBackend
from ._timing import Timed, best_thread_counts, interleaved_rounds, native_ratios, summary, warm_up
from ._training import flop_done_per_sample, flop_per_sample, measure_gemm_ceiling, timed_epochs

if TYPE_CHECKING:
    from typing import TypedDict

    from ._backends import Backend
    from ._machine import BlasLimits, Machine
    from ._settings import Settings
    from ._timing import Summary

    class ConfigRow(TypedDict):
        label: str
        activation: str
        optimizer: str
        dropout: float
        dtype: str
        sample_weights: bool
        samples_per_second: dict[str, Summary]  # each backend at its best thread count
        threads: dict[str, int | None]
        ratio_to_baseline: dict[str, float]  # this row's median over the baseline row's, per backend
        ratios: dict[str, float]  # native over each peer, and over the best peer
        percent_of_ceiling: dict[str, float]  # median samples/s x flop_done_per_sample over gemm_ceilings[dtype]
        final_loss: dict[str, float]

    class MatrixResult(TypedDict):
        machine: Machine
        layer_sizes: list[int]
        batch_size: int
        rows_per_epoch: int
        flop_per_sample: int
        flop_done_per_sample: int  # forward and dW of every layer, dh of all but the first
        gemm_ceilings: dict[str, float]  # dtype: numpy.matmul GFLOP/s at the native thread count
        native_threads: int
        baseline: str
        rows: list[ConfigRow]
        all_rates: list[dict[str, Any]]

DROPOUT = 0.2
BASELINE = TrainConfig()


def configurations() -> list[TrainConfig]:
    """The baseline (plain SGD + relu, float32), then one change at a time."""
    configs = [BASELINE]
    configs += [TrainConfig(optimizer=name) for name in OPTIMIZERS if name != BASELINE.optimizer]
    configs += [TrainConfig(activation=name) for name in ACTIVATIONS if name != BASELINE.activation]
    configs += [TrainConfig(dropout=DROPOUT), TrainConfig(dtype="float64"), TrainConfig(sample_weights=True)]
    return configs


def _backends_for(config: TrainConfig, settings: Settings, data: dict[str, tuple[Any, Any]],
                  torch: ModuleType | None, blas_limits: BlasLimits | None) -> list[Backend]:
    X, y = data[config.dtype]
    net = fastmlp.Network(list(settings.matrix_layers), activation=config.activation, dtype=config.dtype,
                          seed=settings.seed, dropout=config.dropout)
    start = ([W.copy() for W in net.weights], [b.copy() for b in net.biases])
    seed, batch = settings.seed, settings.matrix_batch
    backends: list[Backend] = [NativeBackend(net, X, y, batch, seed, config)]
    if torch is not None:
        backends.append(TorchBackend(torch, *start, X, y, batch, seed, config))
    if NumpyBackend.supports(config):
        backends.append(NumpyBackend(*start, X, y, batch, seed, blas_limits, config))
    return backends


def measure_ceilings(dtypes: list[str], settings: Settings, native_threads: int,
                     blas_limits: BlasLimits | None) -> dict[str, float]:
    """GFLOP/s of square numpy.matmul per dtype at the native thread count (the plan's sizes for it)."""
    plan = tuple(entry for entry in settings.ceiling_plan if entry[1] == "native")
    return {dtype: max(measure_gemm_ceiling(plan, native_threads, blas_limits, dtype)["gflops"].values())
            for dtype in dtypes}


def run_matrix(settings: Settings, modules: dict[str, ModuleType | None], blas_limits: BlasLimits | None,
               native_threads: int, peer_threads: list[int], machine: Machine, pause: Callable[[], object],
               say: Callable[[str], None], configs: list[TrainConfig] | None = None) -> MatrixResult:
    """Time every configuration with every backend that implements it, all in the same rounds."""
    configs = configurations() if configs is None else configs
    layers = settings.matrix_layers
    X32, y = synthetic_data(layers, settings.matrix_rows, settings.seed)
    data = {"float32": (X32, y), "float64": (X32.astype(np.float64), y)}
    torch = modules.get("torch")

    timed: list[Timed] = []
    backends_of: dict[TrainConfig, list[Backend]] = {}
    for config in configs:
        backends_of[config] = _backends_for(config, settings, data, torch, blas_limits)
        for backend in backends_of[config]:
            counts = [native_threads] if backend.name == "native" else \
                peer_thread_counts(backend.name, peer_threads, blas_limits)
            for threads in counts:
                t = timed_epochs(backend, threads)
                timed.append(Timed((config, *t.key), t.threads, t.once))

    dtypes = list(dict.fromkeys(config.dtype for config in configs))
    say(f"  configuration matrix: the GEMM ceiling of {' and '.join(dtypes)} (numpy.matmul)")
    pause()  # the ceiling, like every timed run, starts after the other runtimes' threads are idle
    ceilings = measure_ceilings(dtypes, settings, native_threads, blas_limits)
    flop_done = flop_done_per_sample(layers)
    say(f"  configuration matrix: {len(configs)} configurations, {len(timed)} timed runs per round; warming up")
    warm_up(timed, pause)
    rates = interleaved_rounds(timed, settings.repeats, settings.min_seconds, pause,
                               lambda i: say(f"  configuration matrix: round {i + 1}/{settings.repeats}"))

    rows: list[ConfigRow] = []
    for config in configs:
        best = best_thread_counts(rates, (config,))
        medians = {name: statistics.median(values) for name, (_, values) in best.items()}
        ratios = native_ratios(medians)
        rows.append({
            "label": config.label, "activation": config.activation, "optimizer": config.optimizer,
            "dropout": config.dropout, "dtype": config.dtype, "sample_weights": config.sample_weights,
            "samples_per_second": {name: summary(values) for name, (_, values) in best.items()},
            "threads": {name: threads for name, (threads, _) in best.items()},
            "ratio_to_baseline": {}, "ratios": ratios,
            "percent_of_ceiling": {name: 100 * median * flop_done / 1e9 / ceilings[config.dtype]
                                   for name, median in medians.items()},
            "final_loss": {backend.name: backend.last_loss for backend in backends_of[config]},
        })
    baseline = rows[0]
    for row in rows:
        for name, s in row["samples_per_second"].items():
            if name in baseline["samples_per_second"]:
                row["ratio_to_baseline"][name] = s["median"] / baseline["samples_per_second"][name]["median"]
    return {
        "machine": machine, "layer_sizes": list(layers), "batch_size": settings.matrix_batch,
        "rows_per_epoch": settings.matrix_rows, "flop_per_sample": flop_per_sample(layers),
        "flop_done_per_sample": flop_done, "gemm_ceilings": ceilings,
        "native_threads": native_threads, "baseline": configs[0].label, "rows": rows,
        "all_rates": [{"config": c.label, "backend": name, "threads": threads, "samples_per_second": summary(values)}
                      for (c, name, threads), values in rates.items()],
    }
