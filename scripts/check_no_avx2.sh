#!/usr/bin/env bash
# Runs fastmlp on an emulated CPU without AVX2 (qemu-user, -cpu Nehalem: SSE4.2, no AVX):
# the module must import, pick its generic kernels, pass the kernel and gradient tests and
# train. Usage: scripts/check_no_avx2.sh [python]   (the python of an environment where
# fastmlp and pytest are installed; default: python3). Installs Debian's qemu-user if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(command -v "${1:-python3}")
if ! command -v qemu-x86_64 >/dev/null; then
    apt-get update -qq && apt-get install -y -qq qemu-user >/dev/null
fi
emulate() { qemu-x86_64 -cpu Nehalem "$py" "$@"; }

emulate - <<'PY'
import fastmlp
info = fastmlp.build_info()
print("under qemu -cpu Nehalem:", info)
assert info["isa"] == "generic" and info["isa_available"] == "generic", info
X, y = fastmlp.datasets.load_digits()
Xtr, Xte, ytr, yte = fastmlp.datasets.train_test_split(X, y, seed=0)
net = fastmlp.Network([64, 64, 10], activation="tanh", seed=0)
fastmlp.Trainer(net, lr=0.1, batch_size=32, seed=0).fit(Xtr, ytr, epochs=10)
accuracy = net.accuracy(Xte, yte)
print(f"trained on the generic kernels: held-out accuracy {accuracy:.4f}")
assert accuracy > 0.9
PY
cd "$(mktemp -d)"
# pyproject.toml too: the same [tool.pytest.ini_options] (strict markers, warnings as errors) as in the tree.
cp -r "$root/tests" "$root/pyproject.toml" .
emulate -m pytest -q -p no:cacheprovider tests/kernels/test_kernels.py tests/kernels/test_gradients.py
