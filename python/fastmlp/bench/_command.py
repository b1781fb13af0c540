"""``python -m fastmlp bench``'s command line: the options, the order the parts run in, the printed
report and the ``--json`` document.

Deliberately thin: each part measures in its own module. A launcher (``bench/bench_training.py``) may
add developer-only parts through `run`'s `extra_parts`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import fastmlp
from fastmlp._argtypes import non_negative_int, positive_int
from fastmlp._atomic import atomic_write

from ._backends import ADAM_LEARNING_RATE, LEARNING_RATE
from ._busy import run_busy
from ._machine import (
    INSTALL_HINT,
    blas_thread_limiter,
    describe_environment,
    import_optional,
    pin_allocator,
    usable_cores,
)
from ._matrix import run_matrix
from ._predict import run_predict
from ._report import format_busy, format_cases, format_header, format_matrix, format_notes, format_predict
from ._settings import FULL, QUICK, Settings
from ._sparse import run_sparse
from ._timing import settle
from ._training import CASES, CASES_BY_NAME, DTYPE, FLOP_CONVENTION, PEERS, measure_gemm_ceiling, run_case

PARTS = ("cases", "configs", "predict", "busy", "sparse")
PART_HELP = {
    "cases": "training throughput of plain SGD (and one Adam case) on the cases below, vs every peer",
    "configs": "every optimizer, activation, dropout, float64 and sample weights on 784-256-256-10, "
               "as samples/s and as a ratio to plain SGD + relu, vs PyTorch and the NumPy oracle",
    "predict": "predict_proba latency at 1 and 32 rows and throughput at 1024+ rows, vs NumPy and PyTorch",
    "busy": "native at 2 and 1 threads and NumPy while one other CPU-bound process runs",
    "sparse": "a 100,000 x 50,000 text-like CSR (0.1 %): sparse training and prediction vs densified batches "
              "and vs PyTorch's torch.sparse first layer (needs scipy)",
}
# A developer-only part a launcher adds: (args, native threads, say) -> (JSON value, report lines).
ExtraPart = Callable[[argparse.Namespace, int, Callable[[str], None]], "tuple[Any, list[str]]"]


def _parts(text: str) -> list[str]:
    """An argparse type: a comma-separated list of PARTS."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(PARTS)}, got {text!r}")
    return list(dict.fromkeys(names))


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``bench`` options to `parser` (an ``argparse.ArgumentParser`` or a subcommand parser)."""
    parser.description = (
        "Measure fastmlp against the NumPy oracle (fastmlp.reference), PyTorch eager, scikit-learn's "
        "MLPClassifier and pure Python on the same networks, initial weights and synthetic data. Parts: "
        + "; ".join(f"{name}: {text}" for name, text in PART_HELP.items())
        + ". Backends and thread counts take turns within each round, each after a pause until the other "
        "runtimes' threads are idle; tables show medians and name the machine (CPU, fastmlp's ISA, NumPy's "
        f"BLAS kernel). torch and scikit-learn are used when installed ({INSTALL_HINT})."
    )
    parser.epilog = "Cases: " + "; ".join(
        f"{c.name} = {list(c.layer_sizes)} {c.activation}, batch {c.batch_size}"
        f"{'' if c.with_pure else ' (no pure Python)'}" for c in CASES)
    parser.add_argument("--only", type=_parts, default=None, metavar="PARTS",
                        help=f"run only these parts, comma-separated, of {','.join(PARTS)} (default: all; "
                             "with --cases only cases)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES_BY_NAME), default=None, metavar="NAME",
                        help="run only these training cases (default: all; with --quick all but the "
                             "4096-wide one; names listed below)")
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS), metavar="PEER",
                        help="compare against these (default: all of " + ", ".join(PEERS) + "; torch and "
                             "sklearn are skipped with a note when not installed)")
    parser.add_argument("--repeats", type=positive_int, default=None, metavar="N",
                        help=f"rounds per part (default: {FULL.repeats}, or {QUICK.repeats} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="about 1-2 minutes for every part: 2 rounds, small epochs, short timings, a "
                             "small sgemm ceiling, the same pauses (the numbers are rough, the ranking holds)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help=f"native threads (default: the usable cores, here {usable_cores()})")
    parser.add_argument("--peer-threads", type=positive_int, nargs="+", default=None, metavar="N",
                        help="thread counts to try for numpy, torch and sklearn; each keeps its best "
                             "(default: 1 and --threads)")
    parser.add_argument("--scaling", action="store_true",
                        help="also time native at 1 thread in every case (always done for the "
                             "GEMM-bound 4096-wide case)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the data, the weights and the shuffling (default: 0)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write every measured number, the settings and the machine to this file")
    return parser


def _load_peers(peers: list[str], say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, str]]:
    """{name: module} for the optional peers asked for, and {name: why skipped} for the others."""
    modules: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in ("torch", "sklearn"):
        if name in peers:
            say(f"  importing {name}")
            modules[name], why = import_optional(name)
            if why is not None:
                skipped[name] = why
    if "numpy" in peers or "sklearn" in peers:
        _, why = import_optional("threadpoolctl")
        if why is not None:
            skipped["threadpoolctl"] = why
    return modules, skipped


def run(args: argparse.Namespace, *, settings: Settings | None = None,
        extra_parts: Mapping[str, ExtraPart] | None = None) -> int:
    """Run ``bench`` with parsed `args` (at `settings`, default the --quick or full preset); return
    the exit status. Each of `extra_parts` runs after the built-in ones into its own JSON key."""
    preset = settings if settings is not None else QUICK if args.quick else FULL
    settings = replace(preset, seed=args.seed, repeats=args.repeats or preset.repeats)
    parts = args.only or (["cases"] if args.cases else list(PARTS))
    native_threads = args.threads if args.threads is not None else usable_cores()
    if native_threads > 1 and not fastmlp.build_info()["openmp"]:
        fastmlp.set_num_threads(native_threads)  # warns that this build has no OpenMP, once
        native_threads = 1
    peer_threads = args.peer_threads or sorted({1, native_threads})
    cases = [CASES_BY_NAME[name] for name in args.cases] if args.cases else \
        [case for case in CASES if not (args.quick and case.gemm_bound)]

    def say(message: str) -> None:  # progress on stderr keeps stdout to the tables
        print(message, file=sys.stderr, flush=True)

    def pause() -> None:
        if settings.pause_seconds > 0:
            settle(settings.pause_seconds)

    if args.json is not None:
        try:  # checked first, so a bad path fails before minutes of measuring rather than after
            with atomic_write(args.json) as handle:
                handle.write(b"{}\n")
        except OSError as exc:
            print(f"fastmlp: error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2

    allocator = pin_allocator()  # before any backend allocates: the same heap rules for all of them
    peers = list(dict.fromkeys(args.peers))
    modules, skipped = _load_peers(peers, say)
    blas_limits = blas_thread_limiter()
    environment = describe_environment(modules, skipped, allocator)
    machine = environment["machine"]
    document: dict[str, Any] = {"environment": environment, "machine": machine, "parts": parts,
                                "sgemm_ceiling": None, "cases": [], "configs": None, "predict": None, "busy": None,
                                "sparse": None}
    common = (settings, modules, blas_limits, native_threads, peer_threads, machine, pause, say)
    report = format_header(environment, settings, None, native_threads, peer_threads)
    try:
        ceiling = None
        if "cases" in parts or "predict" in parts:
            say("  sgemm ceiling (numpy.matmul)")
            ceiling = measure_gemm_ceiling(settings.ceiling_plan, native_threads, blas_limits)
            report = format_header(environment, settings, ceiling, native_threads, peer_threads)
            document["sgemm_ceiling"] = {"machine": machine, "by_size": ceiling["by_size"],
                                         "gflops": {"null" if k is None else str(k): v  # JSON keys are strings
                                                    for k, v in ceiling["gflops"].items()}}
        sections: list[list[str]] = []
        if "cases" in parts and ceiling is not None:
            document["cases"] = [run_case(case, settings, peers, modules, blas_limits, native_threads, peer_threads,
                                          args.scaling, machine, pause, say) for case in cases]
            sections.append(format_cases(document["cases"], ceiling, native_threads))
        if "configs" in parts:
            document["configs"] = run_matrix(*common)
            sections.append(format_matrix(document["configs"]))
        if "predict" in parts:
            document["predict"] = run_predict(*common)
            sections.append(format_predict(document["predict"], ceiling, native_threads))
        if "busy" in parts:
            document["busy"] = run_busy(*common)
            sections.append(format_busy(document["busy"]))
        if "sparse" in parts:
            document["sparse"], lines = run_sparse(bool(args.quick), settings.seed, native_threads, say)
            sections.append(lines)
        for name, extra in (extra_parts or {}).items():
            document[name], lines = extra(args, native_threads, say)
            sections.append(lines)
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    for lines in sections:
        report += [""] + lines
    notes = format_notes(environment)
    print("\n".join(report + ([""] + notes if notes else [])), flush=True)

    if args.json is not None:
        document["settings"] = {
            "quick": bool(args.quick), "repeats": settings.repeats, "min_seconds_per_measurement": settings.min_seconds,
            "pause_seconds_at_least": settings.pause_seconds, "pure_seconds_target": settings.pure_seconds,
            "learning_rate": LEARNING_RATE, "adam_learning_rate": ADAM_LEARNING_RATE, "dtype": DTYPE,
            "seed": settings.seed, "native_threads": native_threads, "peer_threads": peer_threads, "peers": peers,
            "flop_convention": FLOP_CONVENTION,
        }
        with atomic_write(args.json) as handle:
            handle.write((json.dumps(document, indent=2, default=str) + "\n").encode("utf-8"))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "fastmlp bench") -> int:
    """Parse `argv` (default: ``sys.argv[1:]``) as ``bench`` options and run; return the exit status."""
    parser = configure_parser(argparse.ArgumentParser(prog=prog))
    return run(parser.parse_args(argv))
