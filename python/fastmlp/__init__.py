"""fastmlp: train multi-layer perceptrons on the CPU.

The hot loops of backpropagation run in C++ (``fastmlp._core``, OpenMP when built with it);
this package validates input, owns the parameters as NumPy arrays and records training.
``fastmlp.reference`` holds the same math in NumPy and in pure Python, as an oracle."""

from __future__ import annotations

import os
import warnings
from typing import Optional, TypedDict

from . import _core, datasets, optim, reference, schedules
from ._validation import check_int
from ._version import __version__ as __version__  # the `as` marks a re-export for type checkers
from .convert import from_sklearn, from_torch
from .gradcheck import gradcheck
from .history import History
from .network import ModelFileError, Network
from .trainer import Trainer, TrainingDivergedError

if _core.__version__ != __version__:
    raise ImportError(
        f"fastmlp's compiled extension is version {_core.__version__} but the Python package is "
        f"{__version__}: the build is stale; reinstall with `pip install .`")



def _choose_isa_from_environment() -> None:
    """FASTMLP_ISA=generic|avx2|avx512 forces a kernel path (auto or unset: the best the CPU runs)."""
    name = os.environ.get("FASTMLP_ISA", "").strip().lower()
    if name in ("", "auto"):
        return
    try:
        _core.set_isa(name)
    except ValueError as exc:
        warnings.warn(f"ignoring FASTMLP_ISA={name!r}: {exc}; using {_core.get_isa()!r}",
                      RuntimeWarning, stacklevel=3)


_choose_isa_from_environment()

__all__ = [
    "BuildInfo",
    "History",
    "ModelFileError",
    "Network",
    "Trainer",
    "TrainingDivergedError",
    "build_info",
    "datasets",
    "from_sklearn",
    "from_torch",
    "get_num_threads",
    "gradcheck",
    "optim",
    "reference",
    "schedules",
    "set_num_threads",
]


class BuildInfo(TypedDict):
    """What :func:`build_info` returns (a plain dict at run time; this class only names its keys)."""

    # typing.Optional, not `int | None`: a TypedDict's field types stay inspectable at run time
    # (typing.get_type_hints), which on Python 3.9 cannot evaluate the `|` form.
    version: str
    compiler: str
    openmp: bool
    openmp_runtime: Optional[str]
    openmp_version: Optional[int]
    simd: str
    isa: str
    isa_available: str
    max_threads: int


# The largest thread count the native side takes (a C int); far above any useful value.
_MAX_THREADS = 2**31 - 1


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use `n` threads (>= 1) in the native kernels from now on, process-wide.

    Results are bitwise identical for every thread count. More threads than the process has
    cores is allowed (the setting is kept) but warns: the kernels then run slower, not faster.
    In a build without OpenMP the kernels are serial: asking for more than one thread warns
    and changes nothing; so does asking in a process created by ``fork()`` (the OpenMP runtime
    cannot start threads there), which stays on one thread.
    """
    n = check_int(n, "n", 1)
    if n > _MAX_THREADS:
        raise ValueError(f"n must be at most {_MAX_THREADS}, got {n}; this machine lets the process use "
                         f"{_usable_cores()} cores, a sensible upper bound")
    if n > 1 and not _core.build_info()["openmp"]:
        warnings.warn(
            f"fastmlp was built without OpenMP, so set_num_threads({n}) has no effect; rebuild "
            "with a compiler that supports OpenMP (FASTMLP_OPENMP=ON pip install .) for threads",
            RuntimeWarning, stacklevel=2)
        return
    cores = _usable_cores()
    if n > cores:
        warnings.warn(
            f"set_num_threads({n}): this process can use only {cores} cores, so {n} threads would "
            f"take turns on them and make the kernels slower; set_num_threads({cores}) is the most "
            "that helps", RuntimeWarning, stacklevel=2)
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads the native kernels use (1 in a build without OpenMP)."""
    return _core.get_num_threads()


def build_info() -> BuildInfo:
    """How the native extension was built and runs: a dict with ``version``, ``compiler``,
    ``openmp`` (bool), ``openmp_runtime`` (the file of the OpenMP runtime in use, None in a serial build),
    ``openmp_version``, ``simd`` (the instruction set the module is compiled
    for: baseline), ``isa`` (the micro-kernels in use, chosen at import from the CPU's features
    or forced with the environment variable ``FASTMLP_ISA=generic|avx2|avx512``), ``isa_available``
    (the best this CPU supports) and ``max_threads``."""
    return _core.build_info().copy()  # a new dict per call: callers may edit theirs
