#!/usr/bin/env bash
# Installs the wheel for one CPython from wheelhouse/ (after scripts/build_wheels.sh) with --no-index into a
# fresh virtual environment of that interpreter, next to NumPy from the registry (no compiler, no CMake, no
# source tree on the path), checks that it is the bundled-runtime wheel and that it chose the best kernels
# this CPU runs, then runs the tests from a copy outside the source tree.
# Usage: scripts/test_wheel.sh VERSION [NUMPY] [full|core]
#   VERSION  3.9 ... 3.13 (the interpreter from pyenv, else pythonX.Y on PATH)
#   NUMPY    a pip requirement for NumPy, e.g. "numpy==1.22.4" (default: the newest for that Python)
#   full     the whole suite, with scikit-learn, threadpoolctl (and torch where /opt/wheels or the index
#            has a CPU build for that Python) so that the integration tests run rather than skip
#   core     (default) the kernel, gradient, ISA-detection and trainer tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${1:?usage: scripts/test_wheel.sh VERSION [NUMPY] [full|core]}
numpy=${2:-numpy}
scope=${3:-core}
tag=cp${version/./}
if command -v pyenv >/dev/null && ls -d "$(pyenv root)/versions/$version".*/bin/python >/dev/null 2>&1; then
    py=$(ls -d "$(pyenv root)/versions/$version".*/bin/python | sort -V | tail -1)
else
    py=$(command -v "python$version")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install --quiet --upgrade pip
pip install --quiet "$numpy" pytest hypothesis
if [ "$scope" = full ]; then
    pip install --quiet scikit-learn threadpoolctl matplotlib tqdm intel-openmp
    # torch only as the CPU build (never the CUDA one the index serves by default); skipped when absent.
    pip install --quiet "torch==2.13.0+cpu" 2>/dev/null || echo "no CPU torch for CPython $version: its tests skip"
fi
pip install --no-index --find-links "$root/wheelhouse" --only-binary=:all: fastmlp
# The tests and the repo-level bench scripts they run, without the package source beside them; pyproject.toml
# for the same [tool.pytest.ini_options] (strict markers, warnings as errors) as in the tree.
cp -r "$root/tests" "$root/bench" "$root/pyproject.toml" "$work/"
cd "$work"
python - "$tag" <<'PY'
import os, sys, sysconfig
import numpy, fastmlp
here = os.path.dirname(fastmlp.__file__)
assert here.startswith(sys.prefix), f"fastmlp imported from {here}, not from the venv"
info = fastmlp.build_info()
print(f"testing the installed {sys.argv[1]} wheel with NumPy {numpy.__version__}:", here, info)
# The bundled runtime (auditwheel's renamed copy in fastmlp.libs), not a system libgomp.
libs = os.path.join(sysconfig.get_paths()["purelib"], "fastmlp.libs")
assert info["openmp"] and info["openmp_runtime"] in os.listdir(libs), (info, os.listdir(libs))
# The best kernels this CPU runs: a wheel that falls back to the generic ones on an AVX2 CPU, or to
# the AVX2 ones on an AVX-512 CPU, fails here.
with open("/proc/cpuinfo") as f:
    flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
best = ("avx512" if "avx512f" in flags else "avx2") if {"avx2", "fma"} <= flags else "generic"
assert info["isa"] == info["isa_available"] == best, (info["isa"], info["isa_available"], best)
PY
if [ "$scope" = full ]; then
    python -m pytest -q -p no:cacheprovider tests
else
    python -m pytest -q -p no:cacheprovider tests/kernels/test_kernels.py tests/kernels/test_gradients.py \
        tests/kernels/test_isa_detection.py tests/kernels/test_isa_agreement.py tests/api/test_trainer.py
fi
