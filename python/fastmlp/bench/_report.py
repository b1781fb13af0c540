"""The bench's printed report: a header naming the machine and the settings, then one aligned table per
part (training cases, configuration matrix, prediction, busy CPU), each headed by the machine line.

Formatting only: every number arrives measured; deliberately nothing here times or imports a peer.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._backends import ADAM_LEARNING_RATE, LEARNING_RATE
from ._machine import machine_line
from ._training import DTYPE, FLOP_CONVENTION

if TYPE_CHECKING:
    from ._busy import BusyResult
    from ._machine import Environment
    from ._matrix import MatrixResult
    from ._predict import PredictResult
    from ._settings import Settings
    from ._training import CaseResult, Ceiling


def symbols() -> tuple[str, str, str]:
    """(en dash, em dash, times) in the output's encoding, with ASCII stand-ins where it lacks them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "\u2013\u2014\u00d7".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "-", "--", "x"
    return "\u2013", "\u2014", "\u00d7"


def format_rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def format_ratio(value: float, times: str) -> str:
    if value >= 100:
        return f"{value:.0f}{times}"
    if value >= 10:
        return f"{value:.1f}{times}"
    return f"{value:.2f}{times}"


def _format_gflops(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _format_percent(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 else f"{value:.1f}%" if value >= 0.1 else f"{value:.2f}%"


def _thread_label(threads: int | None) -> str:
    return "dflt" if threads is None else str(threads)


def _spread(s: Any, en_dash: str) -> str:
    return f"{format_rate(s['median'])} ({format_rate(s['min'])}{en_dash}{format_rate(s['max'])})"


def aligned(table: list[list[str]], left_columns: tuple[int, ...] = (0,)) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for index, row in enumerate(table):
        cells = [text.ljust(widths[i]) if i in left_columns else text.rjust(widths[i])
                 for i, text in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def reference_ceiling(ceiling: Ceiling, native_threads: int) -> tuple[int | None, float]:
    """(threads, GFLOP/s) of the ceiling every % sgemm is read against: the native thread count's."""
    threads = native_threads if None not in ceiling["gflops"] else None
    return threads, ceiling["gflops"][threads]  # the plan always times this count


def format_header(environment: Environment, settings: Settings, ceiling: Ceiling | None, native_threads: int,
                  peer_threads: list[int]) -> list[str]:
    en_dash, _, _ = symbols()
    build = ", ".join(f"{key} {value}" for key, value in environment["build_info"].items())
    versions = environment["versions"]
    blas = f" ({environment['numpy_blas']})" if environment["numpy_blas"] else ""
    peer_text = [f"numpy {versions['numpy']}" + blas]
    for name in ("torch", "sklearn", "threadpoolctl"):
        if name in versions:
            peer_text.append(f"{'scikit-learn' if name == 'sklearn' else name} {versions[name]}")
    for name, why in environment["peers_skipped"].items():
        peer_text.append(f"{name} {why}")
    flags = environment["cpu_flags"]
    lines = [
        f"fastmlp bench: medians (min{en_dash}max) of {settings.repeats} rounds; in each round every backend and "
        "thread count runs once, the first one rotating, each after a pause until the other runtimes' "
        f"threads are idle (at least {settings.pause_seconds:g} s)",
        f"command : {environment['command']}  ({environment['date']})",
        f"machine : {environment['platform']}; {environment['cpu_model']}, {environment['usable_cores']} "
        f"usable cores; CPU flags: {' '.join(flags) if flags else 'unknown'}",
        f"fastmlp : {build}",
        f"numpy   : BLAS kernel {environment['machine']['numpy_blas']}",
        f"peers   : {'; '.join(peer_text)}",
        f"threads : native {native_threads}; peers at {' and '.join(map(str, peer_threads))}, each at its best median",
        f"memory  : {environment['allocator']}",
    ]
    if ceiling is not None:
        threads, gflops = reference_ceiling(ceiling, native_threads)
        sizes = "; ".join(f"n={m['n']} {_thread_label(m['threads'])} thr {m['gflops']['median']:.1f}"
                          for m in ceiling["by_size"])
        cube = chr(179) if en_dash != "-" else "^3"
        lines.append(f"sgemm   : numpy.matmul float32 square, 2n{cube}/t, median: {sizes} GFLOP/s; "
                     f"ceiling = {gflops:.1f} GFLOP/s ({_thread_label(threads)} threads)")
    lines.append(f"data    : synthetic standard-normal X, uniform labels, seed {settings.seed}")
    return lines


def format_cases(results: list[CaseResult], ceiling: Ceiling, native_threads: int) -> list[str]:
    en_dash, em_dash, times = symbols()
    ceiling_threads, ceiling_gflops = reference_ceiling(ceiling, native_threads)
    lines = [
        f"training throughput: {DTYPE}, one epoch of minibatch SGD (lr {LEARNING_RATE}; the -adam case Adam, "
        f"lr {ADAM_LEARNING_RATE}, in every backend), softmax cross-entropy, reshuffled each epoch, per timed call",
        machine_line(results[0]["machine"]),
        f"FLOP: {FLOP_CONVENTION} (forward, dh, dW). It counts layer 1's dh, which nobody computes, so the "
        "true rate is 0.67x-0.83x of it on these cases",
        "",
    ]
    header = ["case", "batch", "rows", f"native ({native_threads} thr)", "GFLOP/s", "% sgemm",
              "best peer (thr)", "peer samples/s", "native/best peer", "native/pure"]
    table = [header]
    for result in results:
        rates, ratios, peer = result["samples_per_second"], result["ratios"], result["best_peer"]
        gflops = rates["native"]["median"] * result["flop_per_sample"] / 1e9
        table.append([
            result["name"], str(result["batch_size"]), str(result["rows_per_epoch"]["native"]),
            _spread(rates["native"], en_dash), _format_gflops(gflops), _format_percent(100 * gflops / ceiling_gflops),
            f"{peer} ({_thread_label(result['threads'][peer])})" if peer else em_dash,
            format_rate(rates[peer]["median"]) if peer else em_dash,
            format_ratio(ratios["native/best_peer"], times) if peer else em_dash,
            format_ratio(ratios["native/pure"], times) if "native/pure" in ratios else em_dash,
        ])
    lines += aligned(table)

    lines += ["", "every backend and thread count (* = the thread count kept for that backend):"]
    table = [["case", "backend", "thr", f"samples/s median (min{en_dash}max)", "GFLOP/s", "% sgemm", "native/this"]]
    for result in results:
        native_median = result["samples_per_second"]["native"]["median"]
        for index, m in enumerate(result["measurements"]):
            rate = _spread(m["samples_per_second"], en_dash)
            if m["backend"] == "pure":
                rate += f" [{result['rows_per_epoch']['pure']} rows]"
            table.append([
                result["name"] if index == 0 else "", m["backend"],
                _thread_label(m["threads"]) + ("*" if m["best_thread_count"] else " "), rate,
                _format_gflops(m["gflops"]), _format_percent(100 * m["gflops"] / ceiling_gflops),
                em_dash if m["backend"] == "native" else
                format_ratio(native_median / m["samples_per_second"]["median"], times),
            ])
    lines += aligned(table)

    scaling = [r for r in results if "native_scaling" in r]
    if scaling:
        lines += ["", "native thread scaling (same rounds):"]
        one_thread = ceiling["gflops"].get(1)
        for r in scaling:
            sc = r["native_scaling"]
            lines.append(f"  {r['name']}: 1 thread {format_rate(sc['one_thread_samples_per_second'])}, "
                         f"{sc['threads']} threads {format_rate(sc['samples_per_second'])} samples/s = "
                         f"{format_ratio(sc['speedup'], times)}")
        if one_thread and ceiling_threads not in (None, 1):
            lines.append(f"  (numpy sgemm in this run: {native_threads} threads / 1 thread = "
                         f"{format_ratio(ceiling_gflops / one_thread, times)}, "
                         "what the host granted to a second thread)")
    diverged = [result["name"] for result in results if not result["losses_finite"]]
    if diverged:
        lines += ["", "warning: the training loss became NaN or infinite in " + ", ".join(diverged)
                  + "; those rates may not be representative"]
    return lines


def format_matrix(matrix: MatrixResult) -> list[str]:
    en_dash, em_dash, times = symbols()
    layers = "-".join(map(str, matrix["layer_sizes"]))
    lines = [
        f"configuration matrix: {layers}, batch {matrix['batch_size']}, {matrix['rows_per_epoch']} rows per epoch, "
        f"native at {matrix['native_threads']} threads; vs base = samples/s over {matrix['baseline']}'s in the same "
        "rounds, per backend",
        machine_line(matrix["machine"]),
        f"% peak = samples/s x {matrix['flop_done_per_sample']:,} FLOP per sample (the products a step computes: "
        "forward and dW of every layer, dh of all but the first) over the same run's numpy.matmul rate of the row's "
        f"dtype at {matrix['native_threads']} threads: "
        + ", ".join(f"{dtype} {gflops:.1f} GFLOP/s" for dtype, gflops in matrix["gemm_ceilings"].items()),
        "",
    ]
    table = [["configuration", "native samples/s", "vs base", "torch (thr)", "vs base", "numpy (thr)", "vs base",
              "native/torch", "native/numpy", "% peak: native", "torch", "numpy"]]
    for row in matrix["rows"]:
        cells = [row["label"]]
        for name in ("native", "torch", "numpy"):
            s = row["samples_per_second"].get(name)
            if s is None:
                cells += [em_dash, em_dash]
                continue
            rate = _spread(s, en_dash) if name == "native" else \
                f"{format_rate(s['median'])} ({_thread_label(row['threads'][name])})"
            ratio = row["ratio_to_baseline"].get(name)
            cells += [rate, format_ratio(ratio, times) if ratio is not None else em_dash]
        for name in ("torch", "numpy"):
            ratio = row["ratios"].get(f"native/{name}")
            cells.append(format_ratio(ratio, times) if ratio is not None else em_dash)
        for name in ("native", "torch", "numpy"):
            share = row["percent_of_ceiling"].get(name)
            cells.append(_format_percent(share) if share is not None else em_dash)
        table.append(cells)
    return lines + aligned(table)


def format_predict(result: PredictResult, ceiling: Ceiling | None, native_threads: int) -> list[str]:
    _, em_dash, times = symbols()
    layers = "-".join(map(str, result["layer_sizes"]))
    lines = [
        f"prediction: predict_proba end to end from Python on {layers} {result['activation']} {result['dtype']} "
        "(NumPy array in, probabilities out) vs NumPy's relu/matmul/softmax forward and torch.inference_mode; "
        f"GFLOP/s = rows/s x 2 sum(IN*OUT) = {result['flop_per_row']:,} FLOP per row",
        machine_line(result["machine"]),
        "",
    ]
    ceiling_gflops = reference_ceiling(ceiling, native_threads)[1] if ceiling is not None else None
    table = [["rows", "native", "thr", "numpy", "thr", "torch", "thr", "native/best peer", "native GFLOP/s",
              "% sgemm"]]
    for row in result["rows"]:
        small = row["rows"] < 1024
        cells = [str(row["rows"])]
        for name in ("native", "numpy", "torch"):
            if name not in row["rows_per_second"]:
                cells += [em_dash, em_dash]
                continue
            value = (f"{row['microseconds_per_call'][name]:.1f} us/call" if small
                     else f"{format_rate(row['rows_per_second'][name]['median'])} rows/s")
            cells += [value, _thread_label(row["threads"][name])]
        best = row["ratios"].get("native/best_peer")
        gflops = row["gflops"]["native"]
        cells += [format_ratio(best, times) if best is not None else em_dash, _format_gflops(gflops),
                  _format_percent(100 * gflops / ceiling_gflops) if ceiling_gflops and not small else em_dash]
        table.append(cells)
    return lines + aligned(table)


def format_busy(result: BusyResult) -> list[str]:
    en_dash, _, times = symbols()
    layers = "-".join(map(str, result["layer_sizes"]))
    lines = [
        f"busy CPU: SGD + relu on {layers}, batch {result['batch_size']}, while {result['load']}",
        machine_line(result["machine"]),
        "",
    ]
    table = [["backend", f"samples/s median (min{en_dash}max)"]]
    for name, s in result["samples_per_second"].items():
        label = f"numpy ({_thread_label(result['numpy_threads'])} thr)" if name == "numpy" else name
        table.append([label, _spread(s, en_dash)])
    lines += aligned(table)
    lines += [f"  {name}: {format_ratio(value, times)}" for name, value in result["ratios"].items()]
    return lines


def format_notes(environment: Environment) -> list[str]:
    lines = []
    for name, why in environment["peers_skipped"].items():
        if name == "threadpoolctl":
            lines.append(f"note: threadpoolctl {why}: NumPy's BLAS (numpy rows and the sgemm "
                         "ceiling) ran at its own default thread count, shown as dflt")
        else:
            lines.append(f"note: {name} {why}: no {name} rows")
    return lines
