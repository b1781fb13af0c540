"""The sparse-input case of issue 16 on its own: a synthetic text-like CSR (100,000 x 50,000 at 0.1 %,
TF-IDF-like rows), network 50000-256-20, batch 128, float32; fastmlp's sparse first layer against
densifying each batch inside fastmlp and against PyTorch's torch.sparse CSR first layer, plain SGD and
Adam, and prediction. The same measurement as `python -m fastmlp bench --only sparse`
(python/fastmlp/bench/_sparse.py), with the sizes as options. Ratios only mean something side by side.
Usage: python bench/bench_sparse.py [--quick] [--threads N] [--rows 100000] [--cols 50000] [--json PATH]
"""

import argparse
import dataclasses
import json
import sys

from fastmlp.bench._machine import usable_cores
from fastmlp.bench._sparse import FULL_CASE, QUICK_CASE, run_sparse

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="20,000 rows, shorter baselines, one round")
parser.add_argument("--threads", type=int, default=usable_cores())
parser.add_argument("--rows", type=int, default=None)
parser.add_argument("--cols", type=int, default=None)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--json", default=None)
args = parser.parse_args()
case = QUICK_CASE if args.quick else FULL_CASE
if args.rows is not None:
    case = dataclasses.replace(case, n_rows=args.rows)
if args.cols is not None:
    case = dataclasses.replace(case, n_cols=args.cols)
document, lines = run_sparse(args.quick, args.seed, args.threads, lambda m: print(m, file=sys.stderr, flush=True),
                             case)
print("\n".join(lines))
if args.json:
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
