"""Kernel micro-benchmark: GFLOP/s of the three GEMM forms of backprop in fastmlp._core against
numpy.matmul of the same product, at 1 and N threads, with the best kernels and a lower path (the
generic ones, or with --compare avx2 the AVX2 kernel on an AVX-512 CPU).

Holds the shape table (every layer of the training cases, plus 1024^3), the interleaved timing loop
and the table. Deliberately times through the Python bindings as users reach them: each call
allocates its result and packing scratch (numpy.matmul allocates its result too), so the smallest
shapes measure call overhead as much as arithmetic. No training, no assertion about speed.
Usage: python bench/bench_gemm.py [--threads 2] [--repeats 5] [--quick] [--compare ISA] [--json gemm.json]
"""

import argparse
import contextlib
import datetime
import json
import statistics
import sys
import time

import numpy as np

import fastmlp
from fastmlp import _core
from fastmlp.bench import blas_thread_limiter, usable_cores
from fastmlp.bench._timing import settle

# (B, IN, OUT) of every layer of the bench cases: a layer is W (OUT, IN) applied to a batch of B rows.
LAYER_SHAPES = (
    (16, 64, 32), (16, 32, 10),                       # 64-32-10 tanh, batch 16
    (32, 784, 128), (32, 128, 10),                    # 784-128-10, batch 32
    (128, 784, 128), (128, 128, 10),                  # 784-128-10, batch 128
    (128, 784, 256), (128, 256, 256), (128, 256, 10),  # 784-256-256-10, batch 128
    (256, 4096, 4096), (256, 4096, 10),               # 4096-4096-4096-10, batch 256
    (1024, 1024, 1024),                               # square: the ceiling's shape, smaller
)
QUICK_MAX_FLOP = 2e8  # --quick leaves out the shapes above this many FLOP per product


def _forward(B, IN, OUT, rng):
    x = rng.standard_normal((B, IN), dtype=np.float32)
    W = rng.standard_normal((OUT, IN), dtype=np.float32)
    b = np.zeros(OUT, dtype=np.float32)
    return (lambda: _core.dense_forward(x, W, b, "identity"),
            lambda: np.matmul(x, W.T))


def _backward_input(B, IN, OUT, rng):
    da = rng.standard_normal((B, OUT), dtype=np.float32)
    W = rng.standard_normal((OUT, IN), dtype=np.float32)
    return (lambda: _core.dense_backward_input(da, W),
            lambda: np.matmul(da, W))


def _backward_params(B, IN, OUT, rng):
    da = rng.standard_normal((B, OUT), dtype=np.float32)
    h = rng.standard_normal((B, IN), dtype=np.float32)
    # fastmlp also sums db = da.sum(0): B*OUT adds, negligible beside the product's 2*B*IN*OUT.
    return (lambda: _core.dense_backward_params(da, h)[0],
            lambda: np.matmul(da.T, h))


# name, the product, its builder; all three cost 2*B*IN*OUT FLOP.
FORMS = (
    ("forward", "x W^T", _forward),
    ("dh", "da W", _backward_input),
    ("dW", "da^T h", _backward_params),
)


@contextlib.contextmanager
def _fastmlp_config(isa, threads):
    before = (_core.get_isa(), fastmlp.get_num_threads())
    _core.set_isa(isa)
    _core.set_num_threads(threads)
    try:
        yield
    finally:
        _core.set_isa(before[0])
        _core.set_num_threads(before[1])


def _gflops(call, flop, min_seconds):
    """Calls until `min_seconds` have passed; GFLOP/s of the mean call."""
    calls, started = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return flop * calls / elapsed / 1e9


def measure(shapes, threads, repeats, min_seconds, say, compare="generic", pause_seconds=0.05):
    blas_limits = blas_thread_limiter()
    best_isa = fastmlp.build_info()["isa_available"]
    isas = [best_isa] + ([compare] if best_isa != compare else [])
    thread_counts = sorted({1, threads})
    rng = np.random.default_rng(0)
    rows = []
    for B, IN, OUT in shapes:
        flop = 2.0 * B * IN * OUT
        for form, product, build in FORMS:
            fast_call, numpy_call = build(B, IN, OUT, rng)
            expected = numpy_call()
            configurations = []  # (label, call, context factory)
            for isa in isas:
                for n in thread_counts:
                    configurations.append(((isa, n), fast_call, lambda isa=isa, n=n: _fastmlp_config(isa, n)))
            for n in (thread_counts if blas_limits is not None else [None]):
                configurations.append((("numpy", n), numpy_call,
                                       lambda n=n: blas_limits(n) if n is not None else contextlib.nullcontext()))
            # A kernel path that computes the wrong product would be benchmarked meaninglessly.
            errors = {}
            for isa in isas:
                with _fastmlp_config(isa, threads):
                    got = fast_call()
                errors[isa] = float(np.max(np.abs(got - expected)) / max(1e-30, np.max(np.abs(expected))))
            rates = {label: [] for label, _, _ in configurations}
            for _label, call, context in configurations:  # warm-up: thread start-up, first-touch faults
                with context():
                    call()
            for round_index in range(repeats):
                shift = round_index % len(configurations)
                for label, call, context in configurations[shift:] + configurations[:shift]:
                    # Until the last configuration's threads are idle: OpenBLAS's spin for about
                    # 0.1 s after a call, and a two-thread run right after numpy's measured half
                    # a core short (the 128 x 784 x 256 dh product then "scaled" 1.02x).
                    settle(pause_seconds)
                    with context():
                        rates[label].append(_gflops(call, flop, min_seconds))
            rows.append({
                "B": B, "IN": IN, "OUT": OUT, "form": form, "product": product, "flop": flop,
                "gflops": {f"{label[0]}@{label[1]}": {"median": statistics.median(v), "min": min(v),
                                                      "max": max(v), "rounds": v}
                           for label, v in rates.items()},
                "max_relative_error": errors,
            })
            say(f"  {form} {B}x{IN}x{OUT} done")
    return rows, isas, thread_counts, blas_limits is not None


def format_table(rows, isas, thread_counts, numpy_threads_controlled):
    best, many = isas[0], thread_counts[-1]
    other = isas[1] if len(isas) > 1 else None  # the lower kernel path timed beside the best
    numpy_key = (lambda n: f"numpy@{n}") if numpy_threads_controlled else (lambda n: "numpy@None")
    header = ["form", "product", "B", "IN", "OUT"]
    header += [f"{best} {n}t" for n in thread_counts]
    header += [f"numpy {n}t" for n in thread_counts]
    header += [f"{best}/numpy {n}t" for n in thread_counts]
    if other is not None:
        header += [f"{other} {n}t" for n in thread_counts]
        header += [f"{best}/{other} {n}t" for n in thread_counts]
    if many > 1:
        header += [f"{best} {many}t/1t"]
    table = [header]
    for r in rows:
        g = {key: value["median"] for key, value in r["gflops"].items()}
        line = [r["form"], r["product"], str(r["B"]), str(r["IN"]), str(r["OUT"])]
        line += [f"{g[f'{best}@{n}']:.1f}" for n in thread_counts]
        line += [f"{g[numpy_key(n)]:.1f}" for n in thread_counts]
        line += [f"{g[f'{best}@{n}'] / g[numpy_key(n)]:.2f}" for n in thread_counts]
        if other is not None:
            line += [f"{g[f'{other}@{n}']:.1f}" for n in thread_counts]
            line += [f"{g[f'{best}@{n}'] / g[f'{other}@{n}']:.2f}" for n in thread_counts]
        if many > 1:
            line += [f"{g[f'{best}@{many}'] / g[f'{best}@1']:.2f}"]
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for index, row in enumerate(table):
        lines.append("  ".join(text.ljust(widths[i]) if i < 2 else text.rjust(widths[i])
                               for i, text in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench_gemm.py",
        description="GFLOP/s (2*B*IN*OUT per product) of fastmlp's forward (x W^T), dh (da W) and dW "
                    "(da^T h) kernels against numpy.matmul of the same float32 product, at 1 and N "
                    "threads, with the best kernel path and a lower one (--compare); medians of interleaved rounds.")
    parser.add_argument("--threads", type=int, default=usable_cores(), metavar="N",
                        help=f"the multi-threaded column's thread count (default: the usable cores, "
                             f"{usable_cores()})")
    parser.add_argument("--repeats", type=int, default=None, metavar="N", help="rounds (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: shapes under {QUICK_MAX_FLOP:.0e} FLOP, short timings")
    parser.add_argument("--compare", choices=list(_core.ISAS), default="generic", metavar="ISA",
                        help="the lower kernel path to time beside the best one: generic (default), or avx2 "
                             "on an AVX-512 CPU to see what its kernel adds")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write every number to this file")
    args = parser.parse_args(argv)
    best = fastmlp.build_info()["isa_available"]
    if _core.ISAS.index(args.compare) > _core.ISAS.index(best):
        parser.error(f"--compare {args.compare}: this CPU's best kernel path is {best}")
    if args.threads < 1 or (args.repeats is not None and args.repeats < 1):
        parser.error("--threads and --repeats must be at least 1")
    repeats = args.repeats or (2 if args.quick else 5)
    min_seconds = 0.005 if args.quick else 0.1
    shapes = [s for s in LAYER_SHAPES if not args.quick or 2.0 * s[0] * s[1] * s[2] <= QUICK_MAX_FLOP]

    def say(message):
        print(message, file=sys.stderr, flush=True)

    command = " ".join(["python bench/bench_gemm.py", *(sys.argv[1:] if argv is None else argv)])
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    rows, isas, thread_counts, numpy_controlled = measure(shapes, args.threads, repeats, min_seconds, say,
                                                          args.compare, 0.02 if args.quick else 0.05)
    info = fastmlp.build_info()
    print(f"fastmlp GEMM kernels vs numpy.matmul, float32, GFLOP/s = 2*B*IN*OUT / time per call, median of "
          f"{repeats} interleaved rounds ({min_seconds:g} s of calls each)")
    print(f"command : {command}  ({date})")
    print(f"fastmlp : {', '.join(f'{k} {v}' for k, v in info.items())}")
    if not numpy_controlled:
        print("numpy   : threadpoolctl not installed (pip install fastmlp[bench]): numpy runs at its "
              "BLAS's default thread count in both columns")
    print("\n".join(format_table(rows, isas, thread_counts, numpy_controlled)))
    wrong = [(r, isa) for r in rows for isa, e in r["max_relative_error"].items() if e > 1e-3]
    for r, isa in wrong:
        print(f"warning: {isa} {r['form']} {r['B']}x{r['IN']}x{r['OUT']} differs from numpy by "
              f"{r['max_relative_error'][isa]:.1e} (relative to the largest entry)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"command": command, "date": date, "build_info": info, "threads": thread_counts,
                       "isas": isas, "repeats": repeats, "min_seconds": min_seconds, "rows": rows},
                      handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
