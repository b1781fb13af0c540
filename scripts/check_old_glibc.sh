#!/usr/bin/env bash
# Shows the wheels' glibc floor by running one, not only by its tag: installs the CPython 3.9 wheel from
# wheelhouse/ in a Debian 11 "bullseye" userland (glibc 2.31, its own python3.9), bootstrapped from Debian's
# packages into a chroot (kept in $FASTMLP_BULLSEYE for the next run), with NumPy from the registry, and runs
# the test suite there. Needs root (chroot, mounts). A plain gcc build of this machine (glibc 2.36) fails to
# import there ("GLIBC_2.3x not found").
# Usage: scripts/check_old_glibc.sh [full|core]   (after scripts/build_wheels.sh; default: full)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scope=${1:-full}
jail=${FASTMLP_BULLSEYE:-/var/tmp/fastmlp-bullseye}
wheel=$(ls "$root"/wheelhouse/fastmlp-*-cp39-cp39-*manylinux*.whl)

if [ ! -x "$jail/usr/bin/python3.9" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    rm -rf "$jail"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bullseye "$jail" http://deb.debian.org/debian >/dev/null
fi
echo "userland: $(chroot "$jail" /usr/bin/ldd --version | head -1)"

check=$jail/tmp/fastmlp-check
rm -rf "$check"
mkdir -p "$check"
cp "$wheel" "$check/"
cp -r "$root/tests" "$root/bench" "$root/pyproject.toml" "$check/"
cp /etc/resolv.conf "$jail/etc/resolv.conf"
# The host's certificate bundle (it may hold a local CA that the registry's certificate chains to).
cp /etc/ssl/certs/ca-certificates.crt "$jail/etc/ssl/certs/host-ca-certificates.crt"
mount -t proc proc "$jail/proc"
mount --bind /dev "$jail/dev"
mount --bind /dev/shm "$jail/dev/shm"
# A process the tests started may still hold a file in /dev for a moment after pytest returns ("target is
# busy"): try again after a pause, then detach lazily, so that the check's result, not the clean-up, decides.
unmount() { umount "$1" 2>/dev/null || { sleep 2; umount "$1" 2>/dev/null; } || umount -l "$1"; }
trap 'unmount "$jail/dev/shm"; unmount "$jail/dev"; unmount "$jail/proc"; rm -rf "$check"' EXIT

tests="tests"
[ "$scope" = full ] || tests="tests/kernels/test_kernels.py tests/kernels/test_gradients.py tests/api/test_trainer.py"
chroot "$jail" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
    PIP_DEFAULT_TIMEOUT=180 /bin/bash -euc "
    python3 -m venv /tmp/fastmlp-check/venv
    . /tmp/fastmlp-check/venv/bin/activate
    pip install --quiet --upgrade pip
    pip install --quiet numpy pytest hypothesis
    pip install --no-index /tmp/fastmlp-check/$(basename "$wheel")
    cd /tmp/fastmlp-check
    python -c 'import fastmlp, platform; print(platform.libc_ver(), fastmlp.build_info())'
    python -m pytest -q -p no:cacheprovider $tests
"
