"""The busy-CPU case (``--only busy``): training throughput while one other CPU-bound process runs, as
under ``GridSearchCV(n_jobs=2)`` or a notebook beside a job: fastmlp at its thread count and at one
thread, and NumPy, all under the same load.

The load is a child process the bench starts and stops; it also ends by itself after a time limit,
or as soon as the bench is gone, so it can never outlive a run. Deliberately no formatting here.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING

import fastmlp

from ._backends import NativeBackend, NumpyBackend, TrainConfig, synthetic_data
from ._machine import peer_thread_counts
from ._timing import Timed, best_thread_counts, interleaved_rounds, summary, warm_up
from ._training import timed_epochs

if TYPE_CHECKING:
    from typing import TypedDict

    from ._machine import BlasLimits, Machine
    from ._settings import Settings
    from ._timing import Summary

    class BusyResult(TypedDict):
        machine: Machine
        layer_sizes: list[int]
        batch_size: int
        rows_per_epoch: int
        load: str
        samples_per_second: dict[str, Summary]  # "native 2 thr", "native 1 thr", "numpy" (best count)
        numpy_threads: int | None
        ratios: dict[str, float]

# One pure-Python spin loop: one core's worth of work that never sleeps, like another fit would.
_LOAD = r"""
import os, sys, time
limit, parent = float(sys.argv[1]), os.getppid()
deadline = time.monotonic() + limit
print("ready", flush=True)
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(100000):
        pass
"""
LOAD_DESCRIPTION = "one other process spinning a pure-Python loop on one core"


@contextmanager
def cpu_load(limit_seconds: float) -> Iterator[subprocess.Popen[str]]:
    """A CPU-bound child process for the with-block: started, waited for until it runs, stopped
    (terminate, then kill) on the way out; it stops by itself after `limit_seconds` regardless."""
    child = subprocess.Popen([sys.executable, "-c", _LOAD, repr(float(limit_seconds))],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the CPU load process did not start")
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def run_busy(settings: Settings, modules: dict[str, ModuleType | None], blas_limits: BlasLimits | None,
             native_threads: int, peer_threads: list[int], machine: Machine, pause: Callable[[], object],
             say: Callable[[str], None]) -> BusyResult:
    """Plain SGD + relu on the matrix network, native at its thread count and at 1, and NumPy at
    each peer thread count, in interleaved rounds, all while one CPU-bound process runs."""
    layers, batch = settings.matrix_layers, settings.matrix_batch
    X, y = synthetic_data(layers, settings.matrix_rows, settings.seed)
    net = fastmlp.Network(list(layers), activation="relu", dtype="float32", seed=settings.seed)
    start = ([W.copy() for W in net.weights], [b.copy() for b in net.biases])
    native = NativeBackend(net, X, y, batch, settings.seed)
    numpy_peer = NumpyBackend(*start, X, y, batch, settings.seed, blas_limits, TrainConfig())
    timed: list[Timed] = [timed_epochs(native, n) for n in sorted({native_threads, 1}, reverse=True)]
    timed += [timed_epochs(numpy_peer, n) for n in peer_thread_counts("numpy", peer_threads, blas_limits)]

    say(f"  busy CPU: starting the load ({LOAD_DESCRIPTION}; it stops by itself after "
        f"{settings.busy_seconds_limit:.0f} s)")
    with cpu_load(settings.busy_seconds_limit):
        warm_up(timed, pause)
        rates = interleaved_rounds(timed, settings.repeats, settings.min_seconds, pause,
                                   lambda i: say(f"  busy CPU: round {i + 1}/{settings.repeats}"))
    say("  busy CPU: load stopped")

    native_rates = {threads: values for (name, threads), values in rates.items() if name == "native"}
    numpy_threads, numpy_rates = best_thread_counts(rates, ())["numpy"]
    figures = {f"native {n} thr": summary(values) for n, values in native_rates.items()}
    figures["numpy"] = summary(numpy_rates)
    ratios = {"native/numpy": statistics.median(native_rates[native_threads]) / statistics.median(numpy_rates)}
    if native_threads > 1:
        ratios[f"native {native_threads} thr/1 thr"] = (statistics.median(native_rates[native_threads])
                                                        / statistics.median(native_rates[1]))
    return {
        "machine": machine, "layer_sizes": list(layers), "batch_size": batch, "rows_per_epoch": settings.matrix_rows,
        "load": LOAD_DESCRIPTION, "samples_per_second": figures, "numpy_threads": numpy_threads, "ratios": ratios,
    }
