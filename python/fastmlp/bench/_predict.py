"""The prediction table (``--only predict``): ``Network.predict_proba`` end to end from Python (a NumPy
array in, probabilities out) against NumPy's few-line forward and PyTorch's, as latency per call at
small row counts and as rows/s and GFLOP/s at large ones.

Deliberately no formatting here; the training parts are in ``_training`` and ``_matrix``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

import fastmlp

from ._backends import synthetic_data
from ._machine import blas_threads, native_threads, peer_thread_counts
from ._peers import torch_model, torch_threads
from ._timing import Timed, best_thread_counts, interleaved_rounds, native_ratios, summary, warm_up

if TYPE_CHECKING:
    from typing import TypedDict

    from ._machine import BlasLimits, Machine
    from ._settings import Settings
    from ._timing import Summary

    class PredictRow(TypedDict):
        rows: int
        rows_per_second: dict[str, Summary]  # each backend at its best thread count
        microseconds_per_call: dict[str, float]
        threads: dict[str, int | None]
        gflops: dict[str, float]  # 2 * sum(IN*OUT) FLOP per row
        ratios: dict[str, float]  # native over each peer and over the best peer

    class PredictResult(TypedDict):
        machine: Machine
        layer_sizes: list[int]
        activation: str
        dtype: str
        flop_per_row: int
        rows: list[PredictRow]
        all_rates: list[dict[str, Any]]

ACTIVATION = "relu"
# Rows per timed call are grouped so one timed unit lasts long enough for the clock (~256 rows).
ROWS_PER_UNIT = 256


def numpy_forward(weights: list[NDArray[Any]], biases: list[NDArray[Any]], X: NDArray[Any]) -> NDArray[Any]:
    """The forward a NumPy user writes: relu(x W^T + b) per hidden layer, then a softmax."""
    h = X
    for W, b in zip(weights[:-1], biases[:-1]):
        h = np.maximum(h @ W.T + b, 0)
    z = h @ weights[-1].T + biases[-1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    probs: NDArray[Any] = e / e.sum(axis=1, keepdims=True)
    return probs


def torch_forward(torch: ModuleType, model: Any, X: NDArray[Any]) -> NDArray[Any]:
    """PyTorch's forward as an inference user writes it: no autograd, NumPy in and out."""
    with torch.inference_mode():
        probs: NDArray[Any] = torch.softmax(model(torch.from_numpy(X)), dim=1).numpy()
    return probs


def _calls(predict: Callable[[], object], rows: int) -> Callable[[], tuple[float, float]]:
    """One timed unit: as many calls as make about ROWS_PER_UNIT rows (one call at large sizes)."""
    repeat = max(1, ROWS_PER_UNIT // rows)

    def once() -> tuple[float, float]:
        started = time.perf_counter()
        for _ in range(repeat):
            predict()
        return float(repeat * rows), time.perf_counter() - started
    return once


def run_predict(settings: Settings, modules: dict[str, ModuleType | None], blas_limits: BlasLimits | None,
                threads_native: int, peer_threads: list[int], machine: Machine, pause: Callable[[], object],
                say: Callable[[str], None]) -> PredictResult:
    """Time predict_proba and its peers at every row count of the settings, in the same rounds."""
    layers = settings.predict_layers
    X_all, _ = synthetic_data(layers, max(settings.predict_rows), settings.seed)
    net = fastmlp.Network(list(layers), activation=ACTIVATION, dtype="float32", seed=settings.seed)
    weights, biases = [W.copy() for W in net.weights], [b.copy() for b in net.biases]
    torch = modules.get("torch")
    model = torch_model(torch, weights, biases, ACTIVATION).eval() if torch is not None else None

    timed: list[Timed] = []
    for rows in settings.predict_rows:
        X = np.ascontiguousarray(X_all[:rows])
        for n in sorted({1, threads_native}):
            timed.append(Timed((rows, "native", n), partial(native_threads, n),
                               _calls(partial(net.predict_proba, X), rows)))
        for n_blas in peer_thread_counts("numpy", peer_threads, blas_limits):
            timed.append(Timed((rows, "numpy", n_blas), partial(blas_threads, blas_limits, n_blas),
                               _calls(partial(numpy_forward, weights, biases, X), rows)))
        if torch is not None:
            for n_torch in peer_threads:
                timed.append(Timed((rows, "torch", n_torch), partial(torch_threads, torch, n_torch),
                                   _calls(partial(torch_forward, torch, model, X), rows)))

    say(f"  prediction: {len(timed)} timed runs per round; warming up")
    warm_up(timed, pause)
    rates = interleaved_rounds(timed, settings.repeats, settings.min_seconds, pause,
                               lambda i: say(f"  prediction: round {i + 1}/{settings.repeats}"))

    flop_per_row = 2 * sum(a * b for a, b in zip(layers, layers[1:]))
    table: list[PredictRow] = []
    for rows in settings.predict_rows:
        best = best_thread_counts(rates, (rows,))
        medians = {name: statistics.median(values) for name, (_, values) in best.items()}
        ratios = native_ratios(medians)
        table.append({
            "rows": rows,
            "rows_per_second": {name: summary(values) for name, (_, values) in best.items()},
            "microseconds_per_call": {name: 1e6 * rows / v for name, v in medians.items()},
            "threads": {name: threads for name, (threads, _) in best.items()},
            "gflops": {name: v * flop_per_row / 1e9 for name, v in medians.items()},
            "ratios": ratios,
        })
    return {
        "machine": machine, "layer_sizes": list(layers), "activation": ACTIVATION, "dtype": "float32",
        "flop_per_row": flop_per_row, "rows": table,
        "all_rates": [{"rows": r, "backend": name, "threads": threads, "rows_per_second": summary(values)}
                      for (r, name, threads), values in rates.items()],
    }
