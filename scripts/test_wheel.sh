#!/usr/bin/env bash
# Installs the repaired wheel from wheelhouse/ into a fresh virtual environment next to NumPy
# alone (no compiler, no CMake, no source tree on the path) and runs the test suite against it.
# Usage: scripts/test_wheel.sh [python]   (after scripts/build_wheel.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
work=$(mktemp -d)
"$py" -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install --quiet numpy pytest hypothesis
pip install --no-index --find-links "$root/wheelhouse" fastmlp
# The tests and the repo-level bench scripts they run, without the package source beside them; pyproject.toml
# for the same [tool.pytest.ini_options] (strict markers, warnings as errors) as in the tree.
cp -r "$root/tests" "$root/bench" "$root/pyproject.toml" "$work/"
cd "$work"
python - <<'PY'
import os, sys, fastmlp
here = os.path.dirname(fastmlp.__file__)
assert here.startswith(sys.prefix), f"fastmlp imported from {here}, not from the venv"
print("testing the installed wheel:", here, fastmlp.build_info())
PY
python -m pytest -q -p no:cacheprovider tests
