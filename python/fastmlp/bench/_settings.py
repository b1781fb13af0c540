"""How long and how large a bench run is: the full preset, ``--quick`` and the tiny one the tests use.

One frozen dataclass read by every part; deliberately no command-line parsing here (``_command``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Literal, Union

    # (n, threads, runs): square size, "native" (the native thread count) or a count, timed runs.
    CeilingPlan = tuple[tuple[int, Union[Literal["native"], int], int], ...]


@dataclass(frozen=True)
class Settings:
    repeats: int  # rounds: every configuration of a part is timed once per round
    min_seconds: float  # per measurement: enough whole calls to make timer noise negligible
    pause_seconds: float  # the least settle pause before every timed run (see _timing.settle)
    ceiling_plan: CeilingPlan  # (n, "native"|1, runs) for the sgemm ceiling
    # the training cases
    pure_seconds: float  # target length of one pure-Python epoch, reached by choosing its sample count
    max_samples: int  # caps a case's rows per epoch
    # the configuration matrix and the busy-CPU case
    matrix_layers: tuple[int, ...]
    matrix_batch: int
    matrix_rows: int
    busy_seconds_limit: float  # the load process ends by itself after this long, whatever happens
    # the prediction table
    predict_layers: tuple[int, ...]
    predict_rows: tuple[int, ...]
    seed: int = 0


FULL = Settings(repeats=5, min_seconds=0.5, pause_seconds=0.2,
                ceiling_plan=((2048, "native", 5), (2048, 1, 5), (4096, "native", 3)),
                pure_seconds=1.0, max_samples=1 << 30,
                matrix_layers=(784, 256, 256, 10), matrix_batch=128, matrix_rows=8192, busy_seconds_limit=300.0,
                predict_layers=(784, 128, 10), predict_rows=(1, 32, 1024, 4096))
# About 1-2 minutes with every part: fewer rounds and rows, shorter measurements, the same pauses
# (without them the ranking of the backends would change, which is what --quick must not do).
QUICK = replace(FULL, repeats=2, min_seconds=0.1, ceiling_plan=((1024, "native", 3), (1024, 1, 3)),
                pure_seconds=0.1, max_samples=2048, matrix_rows=2048, busy_seconds_limit=120.0)
# For the tests: every part runs in seconds on small networks; the figures mean nothing.
TINY = replace(QUICK, repeats=1, min_seconds=0.001, pause_seconds=0.0, ceiling_plan=((64, "native", 1),),
               pure_seconds=0.01, max_samples=64, matrix_layers=(12, 16, 4), matrix_batch=16, matrix_rows=64,
               busy_seconds_limit=30.0, predict_layers=(12, 16, 4), predict_rows=(1, 32))
