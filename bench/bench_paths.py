"""Side-by-side cost of the training paths of issue 13 (optimizers, activations, dropout, sample
weights, float64) relative to plain SGD + relu on 784-256-256-10, batch 128, two ways:
- wall clock (default): every configuration in one process, interleaved rounds, a pause before each
  timed epoch, medians; ratios only (absolute times on a shared machine mean little);
- --instructions: instructions executed in one epoch (after a warm-up epoch) under valgrind's
  callgrind, counted between client requests in one child process: noise-free, whatever else the
  machine runs; ratios to sgd+relu at the same dtype.
Usage: python bench/bench_paths.py [--threads 1] [--rounds 7] [--dtype float32] [--only a,b]
       python bench/bench_paths.py --instructions [--dtype float64] [--samples 1024]
"""
import argparse
import ctypes
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastmlp
from fastmlp import optim

CONFIGS = {
    "sgd+relu": dict(),
    "momentum": dict(opt=lambda: optim.SGD(0.01, momentum=0.9)),
    "nesterov": dict(opt=lambda: optim.SGD(0.01, momentum=0.9, nesterov=True)),
    "weight_decay": dict(opt=lambda: optim.SGD(0.01, weight_decay=1e-4)),
    "adam": dict(opt=lambda: optim.Adam(1e-3)),
    "adamw": dict(opt=lambda: optim.AdamW(1e-3, weight_decay=1e-2)),
    "rmsprop": dict(opt=lambda: optim.RMSprop(1e-3)),
    "leaky_relu": dict(act="leaky_relu"),
    "elu": dict(act="elu"),
    "gelu": dict(act="gelu"),
    "silu": dict(act="silu"),
    "tanh": dict(act="tanh"),
    "sigmoid": dict(act="sigmoid"),
    "softplus": dict(act="softplus"),
    "dropout0.2": dict(dropout=0.2),
    "sample_weight": dict(sw=True),
}


def make_epoch(name, X, y, w, dtype):
    c = CONFIGS[name]
    net = fastmlp.Network([784, 256, 256, 10], activation=c.get("act", "relu"), dtype=dtype, seed=0,
                          dropout=c.get("dropout", 0.0))
    tr = fastmlp.Trainer(net, batch_size=128, seed=0, optimizer=c["opt"]() if "opt" in c else optim.SGD(0.01))
    sw = w if c.get("sw") else None

    def epoch(epochs=1):
        tr.fit(X, y, epochs=epochs, sample_weight=sw, verbose=False)
    return epoch


def data(samples, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((samples, 784)).astype(dtype)
    return X, rng.integers(0, 10, samples), rng.uniform(0.5, 1.5, samples).astype(dtype)


def wall_clock(args, names):
    X, y, w = data(args.samples, args.dtype)
    runs = {}
    for n in names:
        runs[n] = make_epoch(n, X, y, w, args.dtype)
        runs[n]()  # warm-up: workspace, first-touch pages, thread start
    times = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(0.2)  # the other runtimes' and our own workers go to sleep first
            t0 = time.perf_counter()
            runs[n]()
            times[n].append(time.perf_counter() - t0)
    base = np.median(times["sgd+relu"])
    print(f"wall clock: threads={args.threads} dtype={args.dtype} rounds={args.rounds} samples={args.samples}")
    for n in names:
        m = np.median(times[n])
        print(f"{n:14s} {args.samples / m:9.0f} samples/s  {base / m:5.2f}x sgd+relu")


# Client requests of callgrind.h around each counted epoch, loaded through ctypes: one child process
# sets every configuration up once, then zeroes the counters, trains one epoch and dumps, per name.
CLIENT_REQUESTS = r"""
#include <valgrind/callgrind.h>
void counters_zero(void) { CALLGRIND_ZERO_STATS; }
void counters_dump(const char* name) { CALLGRIND_DUMP_STATS_AT(name); }
"""


def instructions(args, names):
    with tempfile.TemporaryDirectory() as tmp:
        source, library = os.path.join(tmp, "requests.c"), os.path.join(tmp, "requests.so")
        with open(source, "w") as f:
            f.write(CLIENT_REQUESTS)
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", library, source], check=True)
        out = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                   "--run-counted", library, "--only", ",".join(names), "--samples", str(args.samples),
                   "--dtype", args.dtype, "--threads", "1"]
        subprocess.run(command, capture_output=True, text=True, check=True)
        per_epoch = {}
        for dump in glob.glob(out + ".*"):
            with open(dump) as f:
                text = f.read()
            trigger = re.search(r"Client Request: (\S+)", text)
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if trigger and total and trigger.group(1) in CONFIGS:
                per_epoch[trigger.group(1)] = int(total.group(1))
    base = per_epoch["sgd+relu"]
    print(f"instructions (callgrind, 1 thread): dtype={args.dtype} samples={args.samples}, one epoch")
    for n in names:
        print(f"{n:14s} {per_epoch[n] / 1e6:9.1f} M  {base / per_epoch[n]:5.2f}x sgd+relu (instruction ratio)")


def run_counted(args, names):
    requests = ctypes.CDLL(args.run_counted)
    X, y, w = data(args.samples, args.dtype)
    for n in names:
        epoch = make_epoch(n, X, y, w, args.dtype)
        epoch()  # warm-up, not counted
        requests.counters_zero()
        epoch()
        requests.counters_dump(n.encode())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--only", default="")
    p.add_argument("--instructions", action="store_true")
    p.add_argument("--run-counted", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.samples = args.samples or (1024 if args.instructions or args.run_counted else 8192)
    fastmlp.set_num_threads(args.threads)
    names = [n for n in CONFIGS if not args.only or n == "sgd+relu" or n in args.only.split(",")]
    if args.run_counted:  # the child of --instructions, under valgrind
        return run_counted(args, names)
    (instructions if args.instructions else wall_clock)(args, names)


if __name__ == "__main__":
    main()
