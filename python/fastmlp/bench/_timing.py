"""How every part of the bench times: a settle pause before each timed run, whole calls until a
minimum time, and rounds in which every configuration runs once, the first one rotating.

The pause is the point of this module: OpenBLAS and OpenMP workers spin for about 0.1 s after a call
before they sleep, and a measurement that starts while the previous runtime's workers spin shares
the cores with them. Deliberately no statistics beyond median/min/max and no knowledge of backends.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypedDict

    class Summary(TypedDict):
        rounds: list[float]
        median: float
        min: float
        max: float

# The settle pause: at least MIN, then slices of SLICE until one slice in which the process's other
# threads used under QUIET_FRACTION of a core, at most MAX (a thread that never sleeps, e.g. a busy
# OMP_WAIT_POLICY=active runtime, must not stall the bench).
SETTLE_MIN_SECONDS = 0.2
SETTLE_SLICE_SECONDS = 0.05
SETTLE_MAX_SECONDS = 1.0
QUIET_FRACTION = 0.05


def settle(
    min_seconds: float = SETTLE_MIN_SECONDS,
    max_seconds: float = SETTLE_MAX_SECONDS,
    *,
    slice_seconds: float = SETTLE_SLICE_SECONDS,
    cpu_clock: Callable[[], float] = time.process_time,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Sleep until every other thread of this process is idle; return the seconds slept.

    `cpu_clock` is the CPU time of the whole process (all threads): while this thread sleeps, any
    increase is another thread spinning. Sleeps `min_seconds`, then `slice_seconds` at a time until
    a slice passes with less than QUIET_FRACTION of a core used, or `max_seconds` in all.
    """
    slept = 0.0
    tolerance = 1e-9  # the sums of slices are not exact in binary floating point
    while True:
        step = max(slice_seconds, min_seconds - slept)
        step = min(step, max(max_seconds - slept, 0.0))
        before = cpu_clock()
        sleep(step)
        used = cpu_clock() - before
        slept += step
        quiet = used < QUIET_FRACTION * step
        if (quiet and slept + tolerance >= min_seconds) or slept + tolerance >= max_seconds:
            return slept


def summary(values: list[float]) -> Summary:
    return {"rounds": values, "median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass(frozen=True)
class Timed:
    """One configuration to time: `once()` does one unit of work and returns (units done, seconds
    it took, its own setup excluded); `threads()` holds the runtime at this configuration's thread
    count around it. `key` names it in the results."""

    key: tuple[Any, ...]
    threads: Callable[[], AbstractContextManager[object]]
    once: Callable[[], tuple[float, float]]


def measure(once: Callable[[], tuple[float, float]], min_seconds: float) -> float:
    """Call `once` until at least `min_seconds` of measured time; return units per second."""
    units, seconds = 0.0, 0.0
    while True:
        done, elapsed = once()
        units += done
        seconds += elapsed
        if seconds >= min_seconds:
            return units / seconds


def warm_up(configurations: Sequence[Timed], pause: Callable[[], object]) -> None:
    """One untimed call of each configuration's work, at the first thread count it is timed at:
    first-touch page faults, lazy set-up, thread start-up (one backend at two thread counts warms once)."""
    warmed: set[Callable[[], tuple[float, float]]] = set()
    for timed in configurations:
        if timed.once in warmed:
            continue
        warmed.add(timed.once)
        pause()
        with timed.threads():
            timed.once()


def interleaved_rounds(
    configurations: Sequence[Timed],
    repeats: int,
    min_seconds: float,
    pause: Callable[[], object],
    after_round: Callable[[int], object] = lambda index: None,
) -> dict[tuple[Any, ...], list[float]]:
    """`repeats` rounds, each timing every configuration once (units per second), the first one
    rotating from round to round so that a slow spell of a shared machine hits all of them alike.
    `pause()` runs before every timed measurement. Returns {key: one rate per round}."""
    rates: dict[tuple[Any, ...], list[float]] = {timed.key: [] for timed in configurations}
    for round_index in range(repeats):
        shift = round_index % len(configurations) if configurations else 0
        for timed in list(configurations[shift:]) + list(configurations[:shift]):
            pause()
            with timed.threads():
                rates[timed.key].append(measure(timed.once, min_seconds))
        after_round(round_index)
    return rates


def best_thread_counts(rates: dict[tuple[Any, ...], list[float]],
                       prefix: tuple[Any, ...]) -> dict[str, tuple[Any, list[float]]]:
    """Of the rates keyed (*prefix, backend, threads): {backend: (threads, rates)} at the thread
    count with the highest median, each backend judged on its own."""
    best: dict[str, tuple[Any, list[float]]] = {}
    for key, values in rates.items():
        if key[:-2] != prefix:
            continue
        name, threads = key[-2], key[-1]
        if name not in best or statistics.median(values) > statistics.median(best[name][1]):
            best[name] = (threads, values)
    return best


def native_ratios(medians: dict[str, float]) -> dict[str, float]:
    """native's median over each peer's ("native/numpy", ...) and over the best peer's."""
    ratios = {f"native/{name}": medians["native"] / value for name, value in medians.items() if name != "native"}
    peers = [value for name, value in medians.items() if name != "native"]
    if peers:
        ratios["native/best_peer"] = medians["native"] / max(peers)
    return ratios
