"""The scikit-learn-workflow bench (fastmlp/bench/_sklearn.py, bench/bench_sklearn.py) runs in
its tiny mode: both estimators fit every case on the same data, the rounds alternate who goes
first, and the table and JSON are well formed. Never an assertion about a time or a speed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from fastmlp.bench import _sklearn

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_tiny_case_fits_both_estimators_in_alternating_order():
    calls = []
    for case in _sklearn.workflow_cases(tiny=True):
        result = _sklearn.run_workflow(case, repeats=2, say=calls.append)
        assert set(result.fit_seconds) == {"fastmlp", "sklearn"}
        assert all(len(times) == 2 and min(times) > 0 for times in result.fit_seconds.values())
        assert result.n_iter["fastmlp"] == result.n_iter["sklearn"] == case.params["max_iter"]
        assert all(0 <= acc <= 1 for acc in result.test_accuracy.values())
        assert result.speedup > 0
    firsts = [message.split(": ")[1].split()[0] for message in calls[::2]]
    assert firsts == ["fastmlp", "sklearn"] * 2  # round 1 fastmlp first, round 2 scikit-learn first
    names = [line.split()[0] for line in _sklearn.format_results([result])[1:]]
    assert names == [case.name]


def test_the_launcher_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "bench_sklearn.py"), "--tiny", "--repeats", "1",
                          "--cases", "lbfgs-digits-tiny", "--json", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "lbfgs-digits-tiny" in run.stdout and "speedup" in run.stdout
    rounds = json.loads(out.read_text())
    assert [r["name"] for r in rounds] == ["lbfgs-digits-tiny"]
