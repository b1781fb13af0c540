"""Peak memory of a native fit (developer probe): one epoch of [784, 128, 10] relu on 60,000 x 784
float32 data in a fresh interpreter, its peak RSS against data + parameters + the trainer's workspace.

Run on its own (``python bench/memory_probe.py [--threads N] [--json out.json]``) or as the ``memory``
part of ``bench/bench_training.py`` (``--memory``, and every full run). Linux reads VmRSS/VmHWM from
/proc; elsewhere only ru_maxrss. Nothing here is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

MEMORY_ROWS = 60000
MEMORY_LAYERS = (784, 128, 10)
MEMORY_BATCH = 128
# Depth of the native GEMM's packed panels (kGemmKC in cpp/fastmlp/gemm.hpp), for the estimate only.
GEMM_PANEL_DEPTH = 256

# Run as `python -c`: nothing but NumPy and fastmlp is loaded, so the RSS is the fit's, not the bench's.
_MEMORY_PROBE = r"""
import json, resource, sys, time

def status():
    fields = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return fields

def max_rss_bytes():
    # Only a fallback: after fork + exec Linux keeps the forked parent's peak in ru_maxrss, so a
    # large parent (this bench) shows through; VmHWM belongs to this process alone.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux

args = json.loads(sys.argv[1])
import numpy as np
import fastmlp
fastmlp.set_num_threads(args["threads"])
report = {"after_import": status()}
rng = np.random.default_rng(args["seed"])
X = rng.standard_normal((args["rows"], args["layers"][0]), dtype=np.float32)  # no float64 temporary
y = rng.integers(0, args["layers"][-1], size=args["rows"], dtype=np.int64)
report["after_data"] = status()
net = fastmlp.Network(args["layers"], activation="relu", dtype="float32", seed=args["seed"])
trainer = fastmlp.Trainer(net, lr=0.01, batch_size=args["batch"], seed=args["seed"])
report["before_fit"] = status()
try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0), so the next peak is the fit's own
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    report["peak_reset"] = True
except OSError:
    report["peak_reset"] = False
started = time.perf_counter()
trainer.fit(X, y, epochs=1)
report["fit_seconds"] = time.perf_counter() - started
report["after_fit"] = status()
report["ru_maxrss"] = max_rss_bytes()
report["X_bytes"], report["y_bytes"] = X.nbytes, y.nbytes
report["parameter_bytes"] = sum(W.nbytes for W in net.weights) + sum(b.nbytes for b in net.biases)
report["n_parameters"] = sum(W.size for W in net.weights) + sum(b.size for b in net.biases)
print(json.dumps(report))
"""

WORKSPACE_FORMULA = ("itemsize * (B * (sum_k n_k + 2 max_k n_k + K) + P + "
                     f"{GEMM_PANEL_DEPTH} * (max(B, max_k n_k) + max_k n_k)) + 8 B; "
                     "k = 1..L, K classes, P parameters (a shuffled batch is read from X in place)")


def workspace_estimate_bytes(layer_sizes: Sequence[int], batch: int, itemsize: int = 4) -> int:
    """The native trainer's scratch memory for one fit, from the buffers its Workspace documents:
    gathered batch targets, every layer's activations, two deltas at the widest layer, one
    gradient per parameter, and the GEMM's packed panels (see WORKSPACE_FORMULA)."""
    widths = layer_sizes[1:]
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(layer_sizes, widths))
    per_batch = batch * (sum(widths) + 2 * max(widths) + layer_sizes[-1])
    packing = GEMM_PANEL_DEPTH * (max(batch, max(widths)) + max(layer_sizes))
    return itemsize * (per_batch + n_params + packing) + 8 * batch  # + int64 labels of a batch


def measure_fit_memory(native_threads: int, seed: int) -> dict[str, Any]:
    """Peak RSS of a one-epoch native fit on MNIST-sized float32 data, in a fresh subprocess,
    against data + parameters + workspace. Returns a JSON-ready dict (with "error" if it failed)."""
    args = {"rows": MEMORY_ROWS, "layers": list(MEMORY_LAYERS), "batch": MEMORY_BATCH,
            "threads": native_threads, "seed": seed}
    completed = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(args)],
                               capture_output=True, text=True, timeout=600)
    if completed.returncode != 0:  # the child's last stderr line is its exception
        last_lines = completed.stderr.strip().splitlines()[-1:]
        return {"error": last_lines or [f"exit status {completed.returncode}"]}
    probe = json.loads(completed.stdout)
    stages = ("after_import", "after_data", "before_fit", "after_fit")
    data_bytes = probe["X_bytes"] + probe["y_bytes"]
    workspace = workspace_estimate_bytes(MEMORY_LAYERS, MEMORY_BATCH)
    expected = data_bytes + probe["parameter_bytes"] + workspace
    result: dict[str, Any] = {
        "layer_sizes": list(MEMORY_LAYERS), "rows": MEMORY_ROWS, "batch_size": MEMORY_BATCH,
        "threads": native_threads, "fit_seconds": probe["fit_seconds"],
        "data_bytes": data_bytes, "X_bytes": probe["X_bytes"], "y_bytes": probe["y_bytes"],
        "parameter_bytes": probe["parameter_bytes"], "n_parameters": probe["n_parameters"],
        "workspace_estimate_bytes": workspace, "workspace_formula": WORKSPACE_FORMULA,
        "shuffle_order_bytes": 8 * MEMORY_ROWS,  # fit's int64 permutation, alive for the epoch
        "expected_bytes": expected,
        "rss": {stage: probe[stage].get("VmRSS") for stage in stages},
        "ru_maxrss": probe["ru_maxrss"],
    }
    peaks = [probe[stage].get("VmHWM") for stage in stages]
    if None in peaks:  # no /proc: ru_maxrss is the only peak there is
        result["peak_rss"], result["peak_source"] = probe["ru_maxrss"], "ru_maxrss"
    else:  # VmHWM was reset before the fit, so the process's peak is the larger of before and during
        result["peak_rss"], result["peak_source"] = max(peaks), "VmHWM"
    baseline = result["rss"]["after_import"]
    if baseline is not None:
        result["peak_over_baseline"] = result["peak_rss"] - baseline
        result["ratio_to_expected"] = result["peak_over_baseline"] / expected
    if probe["peak_reset"] and None not in peaks:
        result["fit_peak_increase"] = probe["after_fit"]["VmHWM"] - result["rss"]["before_fit"]
    return result


def format_bytes(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def format_ratio(value: float, times: str) -> str:
    return f"{value:.2f}{times}"


def format_memory(memory: dict[str, Any], times: str = "x") -> list[str]:
    title = (f"peak RSS, native fit: {memory.get('layer_sizes', list(MEMORY_LAYERS))} relu, batch "
             f"{MEMORY_BATCH}, {MEMORY_ROWS:,} x {MEMORY_LAYERS[0]} float32, one epoch, fresh process")
    if "error" in memory:
        return [title, f"  failed: {' '.join(memory['error'])}"]
    lines = [
        title,
        f"  data (X {format_bytes(memory['X_bytes'])} + y {format_bytes(memory['y_bytes'])})"
        f" = {format_bytes(memory['data_bytes'])}; parameters {memory['n_parameters']:,} float32 = "
        f"{format_bytes(memory['parameter_bytes'])}; workspace estimate "
        f"{format_bytes(memory['workspace_estimate_bytes'])}; sum {format_bytes(memory['expected_bytes'])}",
        f"  workspace = {memory['workspace_formula']}",
    ]
    rss = memory["rss"]
    if rss["after_import"] is not None:
        after_data, before_fit, after_fit = rss["after_data"], rss["before_fit"], rss["after_fit"]
        # With /proc every stage has its RSS, without it none has.
        assert after_data is not None and before_fit is not None and after_fit is not None
        lines.append(
            f"  RSS after import {format_bytes(rss['after_import'])}, after data "
            f"{format_bytes(after_data)}, before fit {format_bytes(before_fit)}, "
            f"after fit {format_bytes(after_fit)}; peak {format_bytes(memory['peak_rss'])} "
            f"({memory['peak_source']})")
        lines.append(
            f"  peak - RSS after import = {format_bytes(memory['peak_over_baseline'])} = "
            f"{format_ratio(memory['ratio_to_expected'], times)} (data + parameters + workspace)")
    else:
        lines.append(f"  peak RSS {format_bytes(memory['peak_rss'])} ({memory['peak_source']}, "
                     "whole process; no /proc to split it by stage)")
    if "fit_peak_increase" in memory:
        lines.append(
            f"  fit's own peak over RSS before it (VmHWM reset before fit): "
            f"{format_bytes(memory['fit_peak_increase'])} (workspace estimate "
            f"{format_bytes(memory['workspace_estimate_bytes'])} + shuffle order "
            f"{format_bytes(memory['shuffle_order_bytes'])})")
    return lines


def memory_part(args: argparse.Namespace, native_threads: int, say: Any) -> tuple[dict[str, Any], list[str]]:
    """The bench's ``memory`` part (see fastmlp.bench.run's extra_parts)."""
    say("  peak RSS of a native fit (fresh process)")
    memory = measure_fit_memory(native_threads, args.seed)
    return memory, format_memory(memory, "\u00d7" if (sys.stdout.encoding or "").lower().startswith("utf") else "x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="native threads of the fit (default: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    memory = measure_fit_memory(args.threads, args.seed)
    print("\n".join(format_memory(memory)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(memory, handle, indent=2)
    return 0 if "error" not in memory else 1


if __name__ == "__main__":
    sys.exit(main())
