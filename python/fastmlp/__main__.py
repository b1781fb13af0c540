"""``python -m fastmlp <command>``: the command-line entry point, dispatching to ``train`` and ``bench``.

Only the top-level parser lives here: each command's options and work are in ``fastmlp.cli`` (train)
and ``fastmlp.bench`` (bench), so each can also be driven on its own (``fastmlp.bench.main(argv)``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _version() -> str:
    import fastmlp

    version = getattr(fastmlp, "__version__", None)
    if version is None:  # an __init__ without __version__: fall back to the installed metadata
        from importlib import metadata

        version = metadata.version("fastmlp")
    return f"fastmlp {version}"


def build_parser() -> argparse.ArgumentParser:
    from fastmlp import bench, cli

    parser = argparse.ArgumentParser(
        prog="fastmlp",
        description="Train multi-layer perceptrons on the CPU with fastmlp's native kernels.",
        epilog="Run 'python -m fastmlp <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="<command>", title="commands")

    train = commands.add_parser(
        "train", help="train on the bundled digits or your .npz/.csv and report held-out accuracy"
    )
    cli.configure_parser(train)
    train.set_defaults(run=cli.run)

    bench_parser = commands.add_parser(
        "bench",
        help="measure training throughput: native vs. NumPy, pure Python, and PyTorch/scikit-learn when installed",
    )
    bench.configure_parser(bench_parser)
    bench_parser.set_defaults(run=bench.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No command is a usage error, like any other: help on stderr and argparse's exit status.
        parser.print_help(sys.stderr)
        return 2
    run: Callable[[argparse.Namespace], int] = args.run  # the command's run, set by set_defaults
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
