"""Side-by-side cost of the training paths of issue 13 (optimizers, activations, dropout,
sample weights) relative to plain SGD + relu, in one process: configurations interleaved,
a pause before each timed epoch, medians. Ratios only; absolute times on a shared machine
mean little.  Usage: python bench/bench_paths.py [--threads 1] [--rounds 7] [--dtype float32]
"""
import argparse
import time

import numpy as np

import fastmlp
from fastmlp import optim

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=1)
p.add_argument("--rounds", type=int, default=7)
p.add_argument("--dtype", default="float32")
p.add_argument("--samples", type=int, default=8192)
p.add_argument("--only", default="")
args = p.parse_args()
fastmlp.set_num_threads(args.threads)
rng = np.random.default_rng(0)
X = rng.standard_normal((args.samples, 784)).astype(args.dtype)
y = rng.integers(0, 10, args.samples)
w = rng.random(args.samples).astype(args.dtype)

CONFIGS = {
    "sgd+relu": dict(),
    "momentum": dict(opt=lambda: optim.SGD(0.01, momentum=0.9)),
    "nesterov+wd": dict(opt=lambda: optim.SGD(0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)),
    "adam": dict(opt=lambda: optim.Adam(1e-3)),
    "adamw": dict(opt=lambda: optim.AdamW(1e-3)),
    "rmsprop": dict(opt=lambda: optim.RMSprop(1e-3)),
    "gelu": dict(act="gelu"),
    "silu": dict(act="silu"),
    "elu": dict(act="elu"),
    "softplus": dict(act="softplus"),
    "tanh": dict(act="tanh"),
    "sigmoid": dict(act="sigmoid"),
    "dropout0.2": dict(dropout=0.2),
    "sample_weight": dict(sw=True),
}
names = [n for n in CONFIGS if not args.only or n == "sgd+relu" or n in args.only.split(",")]
runs = {}
for n in names:
    c = CONFIGS[n]
    net = fastmlp.Network([784, 256, 256, 10], activation=c.get("act", "relu"), dtype=args.dtype, seed=0,
                          dropout=c.get("dropout", 0.0))
    opt = c["opt"]() if "opt" in c else optim.SGD(0.01)
    tr = fastmlp.Trainer(net, batch_size=128, seed=0, optimizer=opt)
    sw = w if c.get("sw") else None

    def epoch(tr=tr, sw=sw):
        tr.fit(X, y, epochs=1, sample_weight=sw) if sw is not None else tr.fit(X, y, epochs=1)
    epoch()
    runs[n] = epoch
times = {n: [] for n in names}
for _ in range(args.rounds):
    for n in names:
        time.sleep(0.2)
        t0 = time.perf_counter()
        runs[n]()
        times[n].append(time.perf_counter() - t0)
base = np.median(times["sgd+relu"])
print(f"threads={args.threads} dtype={args.dtype} rounds={args.rounds}")
for n in names:
    m = np.median(times[n])
    print(f"{n:14s} {args.samples / m:9.0f} samples/s  {base / m:5.2f}x sgd+relu")
