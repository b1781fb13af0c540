"""Data-parallel training throughput: fastmlp.distributed.DataParallelTrainer on 1 and 2 MPI
ranks (one native thread each), beside fastmlp.Trainer in one process (one thread), and the
communication each step costs.

Usage (the launcher starts the ranks itself; Open MPI as root needs the two OMPI_ALLOW_RUN_AS_ROOT
variables, which it sets):

    python bench/bench_distributed.py [--rows 16384] [--layers 784 256 10] [--batch 256]
                                      [--epochs 5] [--ranks 1 2] [--json out.json]

Per case it prints samples/s (median over the timed epochs, the first epoch untimed), the
parameters, the bytes a ring allreduce moves per rank and step (2 x parameters x bytes per value;
exactly 2 (P-1)/P times that), and the measured time of one allreduce of the gradient buffer
alone (median of 50), which with the single-rank step time gives the cost model of
docs/distributed.md. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    from mpi4py import MPI

    import fastmlp
    from fastmlp.distributed import DataParallelTrainer

    fastmlp.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.layers[0])).astype(np.float32)
    y = rng.integers(0, args.layers[-1], args.rows)
    lo, hi = comm.rank * args.rows // comm.size, (comm.rank + 1) * args.rows // comm.size
    net = fastmlp.Network(args.layers, activation="relu", dtype="float32", seed=0)
    tr = DataParallelTrainer(net, optimizer=fastmlp.optim.SGD(0.01), batch_size=args.batch, seed=0, comm=comm,
                             deterministic=args.deterministic)
    times = []
    for epoch in range(args.epochs + 1):
        comm.Barrier()
        t0 = time.perf_counter()
        tr.fit(X[lo:hi], y[lo:hi], epochs=1)
        comm.Barrier()
        if epoch:  # the first epoch warms caches and allocates the buffers
            times.append(time.perf_counter() - t0)

    # One allreduce of the gradient buffer alone, as a step does it (float32, in place).
    grads = np.ones(net.n_params, dtype=np.float32)
    reduce_times = []
    for _ in range(51):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        reduce_times.append(time.perf_counter() - t0)

    single = None
    if comm.size == 1:  # the one-native-call-per-epoch Trainer, for the overhead of the step loop
        ref = fastmlp.Trainer(fastmlp.Network(args.layers, activation="relu", dtype="float32", seed=0), lr=0.01,
                              batch_size=args.batch, seed=0)
        ref.fit(X, y, epochs=1)
        single_times = []
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            ref.fit(X, y, epochs=1)
            single_times.append(time.perf_counter() - t0)
        single = args.rows / statistics.median(single_times)
    if comm.rank == 0:
        steps = -(-args.rows // args.batch)
        print(json.dumps({
            "ranks": comm.size, "deterministic": args.deterministic,
            "samples_per_s": args.rows / statistics.median(times),
            "step_ms": 1e3 * statistics.median(times) / steps,
            "allreduce_ms": 1e3 * statistics.median(reduce_times[1:]),
            "params": net.n_params, "bytes_per_value": 4,
            "allreduce_bytes_per_rank_per_step": 2 * net.n_params * 4,
            "trainer_samples_per_s": single,
        }), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--layers", type=int, nargs="+", default=[784, 256, 10])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--deterministic", action="store_true", help="also measure deterministic=True")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        print("bench_distributed.py: no mpirun on PATH (scripts/check_mpi.sh installs Open MPI)", file=sys.stderr)
        return 1
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    oversubscribe = ["--oversubscribe"] if "Open MPI" in subprocess.run(
        [mpirun, "--version"], capture_output=True, text=True).stdout else []
    base = [sys.executable, str(Path(__file__).resolve()), "--worker", "--rows", str(args.rows), "--batch",
            str(args.batch), "--epochs", str(args.epochs), "--layers", *map(str, args.layers)]
    results = []
    for deterministic in [False, True] if args.deterministic else [False]:
        for n in args.ranks:
            cmd = [mpirun, "-n", str(n), *oversubscribe, "--bind-to", "core", *base] + \
                (["--deterministic"] if deterministic else [])
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            if out.returncode != 0:
                print(out.stdout, out.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"layers {args.layers}, float32, global batch {args.batch}, {args.rows} rows, SGD, one thread per rank; "
          f"median of {args.epochs} epochs")
    print(f"{'ranks':>5} {'determ.':>7} {'samples/s':>10} {'speed-up':>8} {'step ms':>8} {'allreduce ms':>12} "
          f"{'MB/step/rank':>12}")
    for r in results:
        first = next(q for q in results if q["deterministic"] == r["deterministic"])
        print(f"{r['ranks']:>5} {r['deterministic']!s:>7} {r['samples_per_s']:>10.0f} "
              f"{r['samples_per_s'] / first['samples_per_s']:>8.2f} {r['step_ms']:>8.2f} {r['allreduce_ms']:>12.3f} "
              f"{r['allreduce_bytes_per_rank_per_step'] / 1e6:>12.2f}")
    single = next((r["trainer_samples_per_s"] for r in results if r["trainer_samples_per_s"]), None)
    if single:
        print(f"fastmlp.Trainer, one process, one thread: {single:.0f} samples/s")
    print(f"parameters {results[0]['params']:,}; a ring allreduce moves 2 x {results[0]['params']:,} x 4 bytes "
          f"= {results[0]['allreduce_bytes_per_rank_per_step'] / 1e6:.2f} MB per rank and step")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
