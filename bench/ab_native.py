"""Native-only A/B of two or more fastmlp builds, side by side in one run.

Each build is a directory to put on PYTHONPATH (holding a `fastmlp` package with its own
`_core*.so`, e.g. a copy of python/fastmlp plus the library ninja built). Every round runs one
fresh interpreter per build, in rotating order, so a slow spell of the shared VM hits all
builds alike; a child trains each case (the bench's networks, data and Trainer settings) for
one warm-up epoch, then takes the best of three measurements of >= 0.3 s. The table gives the
median over rounds with (min-max), the ratio of medians to the first build, and the ratio of
the best rounds (the least disturbed; on a noisy host the more stable of the two).

    python bench/ab_native.py --builds /tmp/before /tmp/after --cases 784-128-10-relu-b128
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import fastmlp
cases, threads = json.loads(sys.argv[1]), int(sys.argv[2])
fastmlp.set_num_threads(threads)
out = {}
for name in cases:
    parts = name.split("-")
    batch, activation, sizes = int(parts[-1][1:]), parts[-2], [int(p) for p in parts[:-2]]
    rows = 512 if sizes[0] >= 4096 else 16384
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], rows)
    net = fastmlp.Network(sizes, activation=activation, dtype="float32", seed=0)
    trainer = fastmlp.Trainer(net, lr=0.01, batch_size=batch, shuffle=True, seed=0)
    trainer.fit(X, y, epochs=1)
    best = 0.0
    for _ in range(3):
        t0, n = time.perf_counter(), 0
        while True:
            trainer.fit(X, y, epochs=1)
            n += rows
            elapsed = time.perf_counter() - t0
            if elapsed > 0.3:
                break
        best = max(best, n / elapsed)
    out[name] = best
print(json.dumps(out))
"""

DEFAULT_CASES = ["64-32-10-tanh-b16", "784-128-10-relu-b32", "784-128-10-relu-b128", "784-256-256-10-relu-b128"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builds", nargs="+", required=True, help="PYTHONPATH directories; the first is the reference")
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES,
                    help="LAYERS-ACTIVATION-bBATCH names, as in bench_training.py")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    res: dict[str, dict[str, list[float]]] = {b: {c: [] for c in args.cases} for b in args.builds}
    for r in range(args.rounds):
        k = r % len(args.builds)
        for build in args.builds[k:] + args.builds[:k]:
            env = dict(os.environ, PYTHONPATH=build)
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args.cases), str(args.threads)],
                                  env=env, cwd="/", capture_output=True, text=True, check=True)
            for case, value in json.loads(proc.stdout).items():
                res[build][case].append(value)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"native samples/s at {args.threads} thread(s), median (min-max) of {args.rounds} rounds; "
          f"x = median / first build's median, best x = best round / first build's best round")
    ref = args.builds[0]
    for case in args.cases:
        line = f"{case:28s}"
        for build in args.builds:
            v = res[build][case]
            med = statistics.median(v)
            line += (f"  {os.path.basename(build.rstrip('/'))}: {med:9.4g} ({min(v):.3g}-{max(v):.3g})"
                     f" x{med / statistics.median(res[ref][case]):.2f} best x{max(v) / max(res[ref][case]):.2f}")
        print(line)


if __name__ == "__main__":
    main()
