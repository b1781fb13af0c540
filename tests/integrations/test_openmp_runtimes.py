"""fastmlp's OpenMP runtime beside the ones other packages load into the same process: scikit-learn's
bundled GNU OpenMP and PyTorch's, each initialised before or after fastmlp's. Every combination runs in
a fresh subprocess (a runtime clash aborts the whole process: "OMP: Error #15"), trains on two threads
and on one, and must give the same weights both ways; threadpoolctl must list fastmlp's runtime and its
limit must reach fastmlp's kernels. Intel's OpenMP runtime (the intel-openmp package, LLVM's runtime under
Intel's name) is loaded into the process first with RTLD_GLOBAL, as MKL builds of NumPy do: fastmlp's
OpenMP calls then bind to it, and must still train and keep their bits. No PyPI package ships LLVM's
libomp for Linux on its own, so that case is this one."""

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys

import pytest

import fastmlp

pytestmark = pytest.mark.skipif(not fastmlp.build_info()["openmp"], reason="a serial build loads no OpenMP runtime")

# Loads the packages in the order given on the command line, each one starting its OpenMP pool, then
# trains fastmlp on 2 threads and on 1 and prints what the test checks, as JSON.
CHILD = r"""
import json, sys
import numpy as np

def start_sklearn():
    from sklearn.cluster import KMeans  # KMeans runs OpenMP loops in scikit-learn's own runtime
    KMeans(n_clusters=3, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(2000, 8)))

def start_torch():
    import torch
    torch.set_num_threads(2)
    float((torch.ones(300, 300) @ torch.ones(300, 300)).sum())

def start_intel():
    import ctypes, importlib.metadata
    files = importlib.metadata.distribution("intel-openmp").files
    path = next(str(f.locate()) for f in files if f.name == "libiomp5.so")
    intel = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    intel.omp_get_max_threads()  # starts Intel's runtime before fastmlp is imported

def start_fastmlp():
    import fastmlp
    fastmlp.Network([8, 8, 2], seed=0).predict(np.zeros((4, 8)))

def train(threads):
    import fastmlp
    fastmlp.set_num_threads(threads)
    X, y = fastmlp.datasets.load_digits()
    net = fastmlp.Network([64, 128, 10], activation="tanh", seed=0)  # wide enough to share among threads
    fastmlp.Trainer(net, lr=0.1, batch_size=32, seed=0).fit(X, y, epochs=10)
    return net

for name in sys.argv[1].split(","):
    {"sklearn": start_sklearn, "torch": start_torch, "intel": start_intel, "fastmlp": start_fastmlp}[name]()
import fastmlp
X, y = fastmlp.datasets.load_digits()
two, one = train(2), train(1)
same = all(np.array_equal(a, b) for a, b in zip(two.weights + two.biases, one.weights + one.biases))
print(json.dumps({"accuracy": float(two.accuracy(X, y)), "same_weights": same,
                  "runtime": fastmlp.build_info()["openmp_runtime"]}))
"""


def _run(code, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("KMP_DUPLICATE_LIB_OK", None)  # the workaround that would hide a runtime clash
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env=env, check=False)


def _needs(*packages):
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (not installed)")


def _has_distribution(name):
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


_NEEDS_INTEL = pytest.mark.skipif(not _has_distribution("intel-openmp"),
                                  reason="needs intel-openmp (pip install intel-openmp; scripts/test_wheel.sh does)")


@pytest.mark.parametrize(
    "order",
    [
        pytest.param("sklearn,fastmlp", marks=_needs("sklearn")),
        pytest.param("fastmlp,sklearn", marks=_needs("sklearn")),
        pytest.param("torch,fastmlp", marks=_needs("torch")),
        pytest.param("fastmlp,torch", marks=_needs("torch")),
        pytest.param("torch,sklearn,fastmlp", marks=_needs("torch", "sklearn")),
        pytest.param("intel,fastmlp", marks=_NEEDS_INTEL),
    ],
)
def test_trains_beside_other_openmp_runtimes(order):
    result = _run(CHILD, order)
    assert result.returncode == 0, f"the process failed (loaded {order}):\n{result.stderr[-3000:]}"
    assert "OMP: Error" not in result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["accuracy"] > 0.9, report
    assert report["same_weights"], "2 threads and 1 thread gave different weights"
    # A runtime loaded first with RTLD_GLOBAL (Intel's here; PyTorch loads its libgomp so too) takes
    # fastmlp's OpenMP calls, and build_info names the one in use; scikit-learn's stays private.
    if order.startswith("intel"):
        assert report["runtime"] == "libiomp5.so", report
    elif order.startswith("torch"):
        assert report["runtime"].startswith("libgomp"), report
    else:
        assert report["runtime"] == fastmlp.build_info()["openmp_runtime"], report


# threadpoolctl finds fastmlp's runtime among the loaded libraries, and its limit (omp_set_num_threads in
# that runtime) is the thread count fastmlp's kernels use while nothing called fastmlp.set_num_threads.
LIMITS = r"""
import json, os
import numpy as np
import sklearn.cluster  # scikit-learn's runtime loaded too: threadpoolctl must tell them apart
import fastmlp
from threadpoolctl import threadpool_info, threadpool_limits

runtime = fastmlp.build_info()["openmp_runtime"]
# threadpoolctl reports the resolved file (libgomp.so.1.0.0 behind a source build's libgomp.so.1).
ours = [i for i in threadpool_info() if os.path.basename(i["filepath"]).startswith(runtime)]
before = fastmlp.get_num_threads()
with threadpool_limits(limits=1, user_api="openmp"):
    inside = fastmlp.get_num_threads()
    X, y = fastmlp.datasets.load_digits()
    net = fastmlp.Network([64, 64, 10], activation="tanh", seed=0)
    fastmlp.Trainer(net, lr=0.1, batch_size=32, seed=0).fit(X, y, epochs=10)
after = fastmlp.get_num_threads()
print(json.dumps({"found": [(i["user_api"], i["num_threads"]) for i in ours], "before": before,
                  "inside": inside, "after": after, "accuracy": float(net.accuracy(X, y))}))
"""


@_needs("threadpoolctl", "sklearn")
def test_threadpoolctl_sees_and_limits_fastmlps_pool():
    result = _run(LIMITS)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["found"] == [["openmp", 2]], report  # OMP_NUM_THREADS=2 in the child
    assert (report["before"], report["inside"], report["after"]) == (2, 1, 2), report
    assert report["accuracy"] > 0.9, report


# Numbers written through an ostringstream (the bindings' messages) beside PyTorch, which loads a
# libstdc++.so with RTLD_GLOBAL: a wheel that exported its static libstdc++'s symbols had them
# interposed, and the message stopped at "layer sizes [".
MESSAGE_BESIDE_TORCH = r"""
import torch
float((torch.ones(3, 3) @ torch.ones(3, 3)).sum())
from fastmlp import _core
try:
    _core._workspace_bytes([1 << 40, 1 << 40, 2], 1 << 20, "float32")
except MemoryError as exc:
    print(exc)
"""


@_needs("torch")
def test_messages_keep_their_numbers_beside_torch():
    result = _run(MESSAGE_BESIDE_TORCH)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "layer sizes [1099511627776, 1099511627776, 2] and max_batch 1048576" in result.stdout, result.stdout
