"""The machine a bench figure comes from, and the thread controls of every runtime the bench drives.

Holds the optional imports (torch, scikit-learn, threadpoolctl: a missing one becomes a note), the
thread-count context managers (native, NumPy's BLAS), the allocator settings every backend runs
with (:func:`pin_allocator`), and the description of the machine: CPU model and flags, the ISA
fastmlp runs (``build_info()``), NumPy's BLAS and its kernel. Measures nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import importlib
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

import fastmlp

if TYPE_CHECKING:
    from typing import TypedDict

    # n -> a context manager holding NumPy's BLAS at n threads (threadpoolctl).
    BlasLimits = Callable[[int], AbstractContextManager[object]]

    class Machine(TypedDict):
        """The three facts every figure carries: where it ran and on which kernels."""
        cpu_model: str
        fastmlp_isa: str
        numpy_blas: str

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
        allocator: str
        machine: Machine

INSTALL_HINT = "pip install fastmlp[bench]"
_MODULE_FOR_PEER = {"torch": "torch", "sklearn": "sklearn.neural_network", "threadpoolctl": "threadpoolctl"}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset and container CPU sets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# glibc's malloc moves its thresholds as a process runs: freeing a mapped block of up to 32 MiB
# raises the size from which blocks are mapped to that block's size, and the size of free heap top
# it gives back to the OS to twice that. Whether a training step's temporaries are reused from the
# heap, or faulted in and handed back every step, then depends on what the process ran before.
# Measured (2026-12-05, AMD EPYC Zen 4, 2 cores): the NumPy peer trained 784-256-256-10 at batch
# 128 at 63k samples/s on one thread, then at 35k after one fastmlp epoch in the same process (its
# heap grew 3.24 MiB and was trimmed back every step, past a threshold of 3.2 MiB: 7,000 brk calls
# in 3 s), so a run's ranking depended on its order. With both thresholds fixed, as
# :func:`pin_allocator` does, it ran at 63-65k whatever ran before, and fastmlp as before.
MALLOC_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest on 64-bit
MALLOC_TRIM_THRESHOLD_BYTES = 512 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def pin_allocator() -> str:
    """Fix glibc malloc's mmap and trim thresholds for the rest of this process (see above), so
    every backend's temporaries are reused from the heap whatever ran before it; returns what was
    done, for the report. Elsewhere than Linux with glibc, changes nothing and says so."""
    if not sys.platform.startswith("linux"):
        return f"not pinned ({sys.platform}: the thresholds are glibc's)"
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc_version = libc.gnu_get_libc_version  # only glibc has it (not musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "not pinned (the C library is not glibc)"
    libc_version.restype = ctypes.c_char_p
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    version = libc_version().decode("ascii", "replace")
    if not (mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES) == 1
            and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES) == 1):
        # glibc refused, or another allocator in front of it answered (ASan's returns 0)
        return f"not pinned (mallopt refused; C library glibc {version})"
    return (f"glibc {version} malloc, thresholds pinned for the run: blocks mapped from "
            f"{MALLOC_MMAP_THRESHOLD_BYTES >> 20} MiB, heap given back from {MALLOC_TRIM_THRESHOLD_BYTES >> 20} MiB")


def import_optional(name: str) -> tuple[ModuleType | None, str | None]:
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
    threadpoolctl, _ = import_optional("threadpoolctl")
    if threadpoolctl is None:
        return None
    return lambda n: threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def blas_threads(blas_limits: BlasLimits | None, n: int | None) -> AbstractContextManager[object]:
    """The BLAS limited to n threads for a with-block; n None (no threadpoolctl) leaves it as it is."""
    if n is None:
        return contextlib.nullcontext()
    if blas_limits is None:
        raise ValueError("a BLAS thread count needs threadpoolctl; pass None to keep the BLAS's default")
    return blas_limits(n)


@contextlib.contextmanager
def native_threads(n: int) -> Iterator[None]:
    """fastmlp's kernels at n threads for a with-block (the caller has checked OpenMP once)."""
    before = fastmlp.get_num_threads()
    fastmlp._core.set_num_threads(n)
    try:
        yield
    finally:
        fastmlp._core.set_num_threads(before)


def peer_thread_counts(name: str, peer_threads: list[int], blas_limits: BlasLimits | None) -> list[int | None]:
    """The thread counts a peer is timed at: NumPy and scikit-learn only at the BLAS's default
    (None) without threadpoolctl; pure Python at one."""
    if name == "pure":
        return [1]
    if name in ("numpy", "sklearn") and blas_limits is None:
        return [None]
    return list(peer_threads)


# --- describing the machine ---------------------------------------------------------------------------


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
    threadpoolctl, _ = import_optional("threadpoolctl")
    if threadpoolctl is None:
        return None
    keys = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads",
            "filepath")
    return [{key: info[key] for key in keys if key in info} for info in threadpoolctl.threadpool_info()]


def numpy_blas_kernel(thread_pools: list[dict[str, object]] | None, blas_name: str | None) -> str:
    """NumPy's BLAS with the kernel it runs ("openblas 0.3.31 Haswell"), as threadpoolctl sees it;
    the name alone without threadpoolctl (the kernel is then unknown)."""
    blas_pools = [pool for pool in thread_pools or [] if pool.get("user_api") == "blas"]
    # NumPy's own BLAS is the one loaded from numpy's folder (SciPy may load a second one).
    blas_pools.sort(key=lambda pool: "numpy" not in str(pool.get("filepath", "")))
    if blas_pools:
        words = [blas_pools[0].get(key) for key in ("internal_api", "version", "architecture")]
        return " ".join(str(word) for word in words if word)
    return f"{blas_name or 'unknown BLAS'} (kernel unknown: threadpoolctl not installed)"


def _command_line() -> str:
    """The command that started this process, as a user would type it."""
    script = os.path.basename(sys.argv[0])
    if script == "__main__.py":  # run as python -m fastmlp
        return " ".join(["python -m fastmlp", *sys.argv[1:]])
    return " ".join(["python", sys.argv[0], *sys.argv[1:]])


def describe_environment(modules: dict[str, ModuleType | None], skipped: dict[str, str],
                         allocator: str) -> Environment:
    """The environment of a run; `allocator` is what :func:`pin_allocator` reported."""
    info = fastmlp.build_info()
    versions: dict[str, str | list[str]] = {"numpy": np.__version__}
    torch = modules.get("torch")
    if torch is not None:
        versions["torch"] = torch.__version__
        versions["torch_parallel_info"] = torch.__config__.parallel_info().strip().splitlines()[:3]
    if modules.get("sklearn") is not None:
        import sklearn

        versions["sklearn"] = sklearn.__version__
    threadpoolctl, _ = import_optional("threadpoolctl")
    if threadpoolctl is not None:
        versions["threadpoolctl"] = threadpoolctl.__version__
    cpu_model, pools, blas = _cpu_model(), _thread_pools(), _blas_name()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": _command_line(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "numpy_blas": blas,
        "versions": versions,
        "thread_pools": pools,
        "build_info": {key: (value if isinstance(value, (bool, int, float, str, type(None))) else str(value))
                       for key, value in dict(info).items()},
        "peers_skipped": skipped,
        "allocator": allocator,
        "machine": {"cpu_model": cpu_model, "fastmlp_isa": str(info["isa"]),
                    "numpy_blas": numpy_blas_kernel(pools, blas)},
    }


def machine_line(machine: Machine) -> str:
    """The one line that heads every table: which CPU, which fastmlp kernels, which NumPy kernel."""
    return (f"machine: {machine['cpu_model']}; fastmlp ISA {machine['fastmlp_isa']}; "
            f"NumPy BLAS {machine['numpy_blas']}")
