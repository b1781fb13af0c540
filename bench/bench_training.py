"""Training-throughput benchmark: native fastmlp vs. NumPy, PyTorch, scikit-learn and pure Python.

A thin launcher for ``fastmlp.bench`` (the same as ``python -m fastmlp bench``), kept here so the
benchmark has the conventional home beside its README and bench_gemm.py. It measures nothing itself;
see bench/README.md. Usage: python bench/bench_training.py [--quick] [--cases NAME ...] [--json out.json]
"""

import sys

from fastmlp import bench

if __name__ == "__main__":
    sys.exit(bench.main(sys.argv[1:], prog="bench_training.py"))
