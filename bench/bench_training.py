"""The bench with the developer-only parts: ``python -m fastmlp bench`` plus ``--memory``, the peak RSS
of a native fit in a fresh interpreter (``memory_probe.py``), which every full run also measures.

Every other option and part is the installed command's (see bench/README.md); this file measures
nothing itself. Usage: python bench/bench_training.py [--quick] [--only PARTS] [--memory] [--json out.json]
"""

import argparse
import sys

from memory_probe import memory_part

from fastmlp import bench


def main(argv=None):
    parser = bench.configure_parser(argparse.ArgumentParser(prog="bench_training.py"))
    parser.add_argument("--memory", action="store_true",
                        help="also measure the peak RSS of a native fit on 60,000 x 784 float32 data in a "
                             "fresh process (always done in a full run: no --quick, --cases or --only)")
    args = parser.parse_args(argv)
    full_run = not (args.quick or args.cases or args.only)
    extra = {"memory": memory_part} if args.memory or full_run else {}
    return bench.run(args, extra_parts=extra)


if __name__ == "__main__":
    sys.exit(main())
