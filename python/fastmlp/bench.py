"""``python -m fastmlp bench``: training throughput (samples/s) of the native trainer against the NumPy
oracle and the pure-Python reference, on the same networks, starting weights and synthetic data.

Holds the case table, one timing adapter per backend, the interleaved measuring loop and the report
(an aligned table, optionally JSON). Deliberately no plotting, no history of past runs and no
assertion about speed: machines are shared and noisy, so it reports medians and ratios from one run.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

import fastmlp
from fastmlp import reference
from fastmlp.reference import pure

__all__ = ["CASES", "configure_parser", "run", "main"]


@dataclass(frozen=True)
class BenchCase:
    name: str
    layer_sizes: tuple
    activation: str
    batch_size: int
    n_samples: int  # rows per epoch for native and NumPy; pure Python gets a calibrated subset
    with_pure: bool  # pure Python on a 784-wide layer needs minutes for a meaningful sample count


CASES = (
    BenchCase("64-32-10-tanh-b16", (64, 32, 10), "tanh", 16, 8192, True),
    BenchCase("64-128-10-relu-b32", (64, 128, 10), "relu", 32, 8192, True),
    BenchCase("784-128-10-relu-b32", (784, 128, 10), "relu", 32, 4096, False),
    BenchCase("784-128-10-relu-b128", (784, 128, 10), "relu", 128, 4096, False),
)
CASES_BY_NAME = {case.name: case for case in CASES}

# Random labels never become learnable, so a large step only stirs the weights; 0.01 keeps the
# losses finite (NaN or denormal arithmetic would change the speed being measured).
LEARNING_RATE = 0.01
DTYPE = "float32"


@dataclass(frozen=True)
class Settings:
    repeats: int
    min_seconds: float  # per native/NumPy measurement: enough epochs to make timer noise negligible
    pure_seconds: float  # target length of one pure-Python epoch, reached by choosing its sample count
    max_samples: int  # caps a case's n_samples (quick mode uses small epochs)
    seed: int


FULL = dict(repeats=5, min_seconds=0.5, pure_seconds=1.0, max_samples=1 << 30)
QUICK = dict(repeats=2, min_seconds=0.02, pure_seconds=0.05, max_samples=1024)


# --- backends: each times only its training call, never setup or the shuffle it is handed ------------


class NativeBackend:
    name = "native"

    def __init__(self, net, X, y, batch_size, seed):
        self.X, self.y = X, y
        # Built once: the benchmark is of training, not of workspace allocation.
        self.trainer = fastmlp.Trainer(net, lr=LEARNING_RATE, batch_size=batch_size, shuffle=True, seed=seed)
        self.last_loss = float("nan")

    def epoch(self):
        started = time.perf_counter()
        history = self.trainer.fit(self.X, self.y, epochs=1, verbose=False)
        seconds = time.perf_counter() - started
        self.last_loss = float(history.loss[-1])
        return len(self.X), seconds


class NumpyBackend:
    name = "numpy"

    def __init__(self, weights, biases, activation, X, y, batch_size, seed):
        self.weights = [W.copy() for W in weights]
        self.biases = [b.copy() for b in biases]
        self.activation = activation
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.last_loss = float("nan")

    def epoch(self):
        order = self.rng.permutation(len(self.X))
        started = time.perf_counter()
        loss = reference.train_epoch(self.weights, self.biases, self.activation, self.X, self.y,
                                     self.batch_size, LEARNING_RATE, order=order)
        seconds = time.perf_counter() - started
        self.last_loss = float(loss)
        return len(self.X), seconds


class PureBackend:
    name = "pure"

    def __init__(self, weights, biases, activation, X, y, batch_size, seed):
        # Converted once here so the timed epochs measure Python arithmetic, not NumPy-to-list copies.
        self.weights = [W.astype(np.float64).tolist() for W in weights]
        self.biases = [b.astype(np.float64).tolist() for b in biases]
        self.activation = activation
        self.X_all = X.astype(np.float64).tolist()
        self.y_all = y.tolist()
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.use_rows(len(self.X_all))
        self.last_loss = float("nan")

    def use_rows(self, n_rows):
        self.X, self.y = self.X_all[:n_rows], self.y_all[:n_rows]

    def epoch(self):
        order = self.rng.permutation(len(self.X)).tolist()
        started = time.perf_counter()
        loss = pure.train_epoch(self.weights, self.biases, self.activation, self.X, self.y,
                                self.batch_size, LEARNING_RATE, order=order)
        seconds = time.perf_counter() - started
        self.last_loss = float(loss)
        return len(self.X), seconds

    def calibrate(self, target_seconds):
        """Pick the number of rows that makes one epoch last about `target_seconds`; return it.

        A whole number of batches, at least one, so every timed epoch has the same batch shapes.
        """
        probe_rows = min(len(self.X_all), 4 * self.batch_size)
        self.use_rows(probe_rows)
        rows, seconds = self.epoch()
        per_row = seconds / rows
        batches = max(1, int(target_seconds / per_row) // self.batch_size)
        n_rows = min(len(self.X_all), batches * self.batch_size)
        self.use_rows(n_rows)
        return n_rows


def _measure(backend, min_seconds):
    """Run whole epochs until at least `min_seconds` of training time; return samples per second."""
    samples, seconds = 0, 0.0
    while True:
        rows, elapsed = backend.epoch()
        samples += rows
        seconds += elapsed
        if seconds >= min_seconds:
            return samples / seconds


def _synthetic_data(case, n_samples, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, case.layer_sizes[0]), dtype=np.float32)
    y = rng.integers(0, case.layer_sizes[-1], size=n_samples, dtype=np.int64)
    return X, y


def _summary(values):
    return {
        "rounds": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def run_case(case, settings, say):
    """Benchmark one case with every backend it supports; return a JSON-ready dict of results."""
    n_samples = min(case.n_samples, settings.max_samples)
    X, y = _synthetic_data(case, n_samples, settings.seed)
    net = fastmlp.Network(list(case.layer_sizes), activation=case.activation, dtype=DTYPE, seed=settings.seed)
    # The references start from the native network's initial weights: the same function, three speeds.
    start_weights = [np.array(W, copy=True) for W in net.weights]
    start_biases = [np.array(b, copy=True) for b in net.biases]

    backends = [
        NativeBackend(net, X, y, case.batch_size, settings.seed),
        NumpyBackend(start_weights, start_biases, case.activation, X, y, case.batch_size, settings.seed),
    ]
    rows = {"native": n_samples, "numpy": n_samples, "pure": None}
    if case.with_pure:
        pure_backend = PureBackend(start_weights, start_biases, case.activation, X, y, case.batch_size,
                                   settings.seed)
        rows["pure"] = pure_backend.calibrate(settings.pure_seconds)
        backends.append(pure_backend)

    say(f"  {case.name}: warming up")
    for backend in backends:
        if backend.name != "pure":  # calibration already ran it
            backend.epoch()

    rates = {backend.name: [] for backend in backends}
    for round_index in range(settings.repeats):
        # Rotating who goes first spreads any drift in machine load evenly over the backends.
        shift = round_index % len(backends)
        for backend in backends[shift:] + backends[:shift]:
            rates[backend.name].append(_measure(backend, settings.min_seconds))
        say(f"  {case.name}: round {round_index + 1}/{settings.repeats}")

    summaries = {name: _summary(values) for name, values in rates.items()}
    ratios = {}
    for other in ("numpy", "pure"):
        if other in summaries:
            ratios[f"native/{other}"] = summaries["native"]["median"] / summaries[other]["median"]
    final_losses = {backend.name: backend.last_loss for backend in backends}
    return {
        "name": case.name,
        "layer_sizes": list(case.layer_sizes),
        "activation": case.activation,
        "batch_size": case.batch_size,
        "dtype": DTYPE,
        "rows_per_epoch": rows,
        "samples_per_second": summaries,
        "ratios": ratios,
        "final_loss": final_losses,
        "losses_finite": all(np.isfinite(v) for v in final_losses.values()),
    }


# --- describing the machine -------------------------------------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _blas_name():
    """NumPy's BLAS as NumPy reports it, or None when this NumPy cannot say."""
    try:
        config = np.show_config(mode="dicts")  # NumPy >= 1.25
        return config["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy, or a build without that entry: the name is only informative
        return None


_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def _blas_threads():
    """How many threads NumPy's BLAS may use, as text: threadpoolctl's count if it is installed
    (an optional extra), else the environment variables that set it, else "its default"."""
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        counts = [info["num_threads"] for info in threadpoolctl.threadpool_info()
                  if info.get("user_api") == "blas"]
        if counts:
            return str(counts[0])
    settings = [f"{name}={os.environ[name]}" for name in _BLAS_THREAD_VARIABLES if name in os.environ]
    return ", ".join(settings) if settings else "its default"


def _command_line():
    """The command that started this process, as a user would type it."""
    script = os.path.basename(sys.argv[0])
    if script == "__main__.py":  # run as python -m fastmlp
        return " ".join(["python -m fastmlp", *sys.argv[1:]])
    return " ".join(["python", sys.argv[0], *sys.argv[1:]])


def describe_environment():
    info = fastmlp.build_info()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": _command_line(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _blas_name(),
        "build_info": {key: (value if isinstance(value, (bool, int, float, str, type(None))) else str(value))
                       for key, value in dict(info).items()},
        "threads": fastmlp.get_num_threads(),
        "numpy_blas_threads": _blas_threads(),
    }


# --- the report --------------------------------------------------------------------------------------


def _symbols():
    """(en dash, em dash, times) in the output's encoding, with ASCII stand-ins where it lacks them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "\u2013\u2014\u00d7".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "-", "--", "x"
    return "\u2013", "\u2014", "\u00d7"


def _format_rate(value):
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _format_ratio(value, times):
    if value >= 100:
        return f"{value:.0f}{times}"
    if value >= 10:
        return f"{value:.1f}{times}"
    return f"{value:.2f}{times}"


def format_report(environment, results, settings):
    en_dash, em_dash, times = _symbols()
    build = environment["build_info"]
    build_text = ", ".join(f"{key} {value}" for key, value in build.items())
    blas = f" ({environment['numpy_blas']})" if environment["numpy_blas"] else ""
    lines = [
        f"fastmlp training throughput, samples/s: median (min{en_dash}max) of {settings.repeats} "
        "rounds, backends interleaved in each round",
        f"command : {environment['command']}  ({environment['date']})",
        f"machine : {environment['platform']}; {environment['cpu_model']}; "
        f"os.cpu_count() = {environment['cpu_count']}",
        f"fastmlp : {build_text}",
        f"threads : {environment['threads']} native (fastmlp.get_num_threads()); "
        f"NumPy's BLAS: {environment['numpy_blas_threads']}",
        f"numpy   : {environment['numpy']}{blas}; Python {environment['python']}",
        f"data    : synthetic standard-normal {DTYPE}, seed {settings.seed}; SGD lr {LEARNING_RATE}, "
        "shuffled every epoch",
        "",
    ]

    header = ["case", "batch", "rows", "native", "numpy", "pure (rows)", "native/numpy", "native/pure"]
    table = [header]
    for result in results:
        rates = result["samples_per_second"]

        def cell(name):
            if name not in rates:
                return em_dash
            r = rates[name]
            return (f"{_format_rate(r['median'])} ({_format_rate(r['min'])}{en_dash}"
                    f"{_format_rate(r['max'])})")

        pure_cell = em_dash
        if "pure" in rates:
            pure_cell = f"{cell('pure')} [{result['rows_per_epoch']['pure']}]"
        ratio = result["ratios"]
        table.append([
            result["name"],
            str(result["batch_size"]),
            str(result["rows_per_epoch"]["native"]),
            cell("native"),
            cell("numpy"),
            pure_cell,
            _format_ratio(ratio["native/numpy"], times) if "native/numpy" in ratio else em_dash,
            _format_ratio(ratio["native/pure"], times) if "native/pure" in ratio else em_dash,
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    left_aligned = {0}
    for index, row in enumerate(table):
        cells = [text.ljust(widths[i]) if i in left_aligned else text.rjust(widths[i])
                 for i, text in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))

    diverged = [result["name"] for result in results if not result["losses_finite"]]
    if diverged:
        lines.append("")
        lines.append("warning: the training loss became NaN or infinite in " + ", ".join(diverged)
                     + "; those rates may not be representative")
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------------


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def configure_parser(parser):
    """Add the ``bench`` options to `parser` (an ``argparse.ArgumentParser`` or a subcommand parser)."""
    parser.description = (
        "Measure training throughput (samples per second of minibatch SGD) of fastmlp's native trainer, "
        "the NumPy oracle (fastmlp.reference) and the pure-Python reference (fastmlp.reference.pure) on "
        "the same networks, initial weights and synthetic float32 data. Backends take turns within "
        "each round; the table shows the median and the range over the rounds and the ratios of medians."
    )
    parser.epilog = "Cases: " + "; ".join(
        f"{c.name} = {list(c.layer_sizes)} {c.activation}, batch {c.batch_size}"
        f"{'' if c.with_pure else ' (no pure Python)'}" for c in CASES
    )
    parser.add_argument("--cases", nargs="+", choices=list(CASES_BY_NAME), default=None, metavar="NAME",
                        help="run only these cases (default: all; names listed below)")
    parser.add_argument("--repeats", type=_positive_int, default=None, metavar="N",
                        help=f"rounds per case (default: {FULL['repeats']}, "
                             f"or {QUICK['repeats']} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in seconds: 2 rounds, small epochs, short timings "
                             "(the numbers are rough)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="native threads (fastmlp.set_num_threads); default: the library's choice")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seed of the data, the weights and the shuffling (default: 0)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write every measured number, the settings and the machine to this file")
    return parser


def run(args):
    """Run ``bench`` with parsed `args`; return the process exit status."""
    preset = QUICK if args.quick else FULL
    settings = Settings(
        repeats=args.repeats if args.repeats is not None else preset["repeats"],
        min_seconds=preset["min_seconds"],
        pure_seconds=preset["pure_seconds"],
        max_samples=preset["max_samples"],
        seed=args.seed,
    )
    if args.threads is not None:
        fastmlp.set_num_threads(args.threads)
    cases = [CASES_BY_NAME[name] for name in args.cases] if args.cases else list(CASES)

    def say(message):  # progress on stderr keeps stdout to the table
        print(message, file=sys.stderr, flush=True)

    json_file = None
    if args.json is not None:
        try:  # opened first, so a bad path fails before minutes of measuring rather than after
            json_file = open(args.json, "w", encoding="utf-8")
        except OSError as exc:
            print(f"fastmlp: error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2

    environment = describe_environment()
    results = []
    try:
        for case in cases:
            results.append(run_case(case, settings, say))
    except KeyboardInterrupt:
        if json_file is not None:
            json_file.close()
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    print(format_report(environment, results, settings), flush=True)

    if json_file is not None:
        document = {
            "environment": environment,
            "settings": {
                "quick": bool(args.quick),
                "repeats": settings.repeats,
                "min_seconds_per_measurement": settings.min_seconds,
                "pure_seconds_target": settings.pure_seconds,
                "learning_rate": LEARNING_RATE,
                "seed": settings.seed,
            },
            "cases": results,
        }
        with json_file:
            json.dump(document, json_file, indent=2)
            json_file.write("\n")
    return 0


def main(argv=None, prog="fastmlp bench"):
    """Parse `argv` (default: ``sys.argv[1:]``) as ``bench`` options and run; return the exit status."""
    parser = configure_parser(argparse.ArgumentParser(prog=prog))
    return run(parser.parse_args(argv))
