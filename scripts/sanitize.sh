#!/usr/bin/env bash
# Builds fastmlp with AddressSanitizer + UndefinedBehaviorSanitizer (gcc) into a fresh virtual
# environment and runs the test suite under them; any report fails the run. Takes a few
# minutes. Usage: scripts/sanitize.sh [pytest args...]   (default: the whole suite)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install --quiet --upgrade pip
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
pip install --quiet "$root[test]" \
    -Cbuild-dir="$work/build" \
    -Ccmake.define.CMAKE_CXX_FLAGS="$flags" \
    -Ccmake.define.CMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
# Python itself is not instrumented: preload the ASan runtime, let Python use malloc so its
# allocations are visible too, and leave leak checking off (the interpreter never frees all).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$work"
# pyproject.toml too: the same [tool.pytest.ini_options] (strict markers, warnings as errors) as in the tree.
cp -r "$root/tests" "$root/bench" "$root/pyproject.toml" .
python -c "import fastmlp; print('sanitized build:', fastmlp.build_info())"
python -m pytest -q -p no:cacheprovider "${@:-tests}"
