"""Training-throughput benchmark: native fastmlp vs. the NumPy and pure-Python references.

A thin launcher for ``fastmlp.bench`` (the same as ``python -m fastmlp bench``), kept here so the
benchmark has the conventional home beside its README. It measures nothing itself; see bench/README.md.
Usage: python bench/bench_training.py [--repeats 7] [--cases NAME ...] [--json results.json]
"""

import sys

from fastmlp import bench

if __name__ == "__main__":
    sys.exit(bench.main(sys.argv[1:], prog="bench_training.py"))
