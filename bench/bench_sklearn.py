"""The scikit-learn-workflow bench: fastmlp.sklearn.MLPClassifier against scikit-learn's own on
the same data and settings (fastmlp/bench/_sklearn.py measures; this file prints). Usage:
python bench/bench_sklearn.py [--repeats N] [--threads N] [--tiny] [--cases NAME ...]"""

import argparse
import json
import sys

import fastmlp
from fastmlp.bench._machine import pin_allocator
from fastmlp.bench._sklearn import format_results, run_workflow, workflow_cases


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_sklearn.py", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="rounds per case; medians are reported (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="fastmlp's native threads (default: its own)")
    parser.add_argument("--tiny", action="store_true", help="tiny data and iterations: a smoke test")
    parser.add_argument("--cases", nargs="+", default=None, help="run only these cases (names as printed)")
    parser.add_argument("--json", default=None, help="also write the rounds to this file")
    args = parser.parse_args(argv)
    allocator = pin_allocator()  # as `python -m fastmlp bench` does: the same heap rules for both estimators
    if args.threads is not None:
        fastmlp.set_num_threads(args.threads)
    cases = [c for c in workflow_cases(args.tiny) if args.cases is None or c.name in args.cases]
    results = [run_workflow(case, args.repeats, say=lambda m: print(m, file=sys.stderr, flush=True))
               for case in cases]
    print(f"fastmlp {fastmlp.__version__}, native threads {fastmlp.get_num_threads()}, medians of {args.repeats}; "
          f"memory: {allocator}")
    print("\n".join(format_results(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([vars(r) for r in results], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
