"""Plain helper functions shared by test modules in several folders (fixtures live in conftest.py).
Only small functions that several files would otherwise each define; no assertions of their own, so that a
failure always points into the test that made it."""

import re

import pytest


def snapshot(net):
    """The network's parameters as bytes, weights then biases: two snapshots of one network are equal exactly when
    every parameter is bitwise unchanged. Bytes only, so no dtype or shape check: compare snapshots of one network
    (tests/api/test_gradcheck.py and tests/robustness/test_validation.py keep their own, wider snapshots)."""
    return [a.tobytes() for a in net.weights + net.biases]


def diverged_batch(exc_info):
    """(epoch, batch) named by a divergence error's message ("... epoch E, batch B of N ...")."""
    epoch, batch = re.search(r"epoch (\d+), batch (\d+) of", str(exc_info.value)).groups()
    return int(epoch), int(batch)


def _sklearn_version():
    try:
        import sklearn
    except ImportError:
        return None
    return tuple(int(part) for part in sklearn.__version__.split(".")[:2])


# Tests that compare fastmlp.sklearn against scikit-learn's own MLP where that MLP needs 1.7: sample_weight in
# fit and loss="poisson" came with scikit-learn 1.7, and Python 3.9's newest scikit-learn is 1.6.1. Without
# scikit-learn the tests skip by their own importorskip.
needs_sklearn_mlp_1_7 = pytest.mark.skipif(
    (_sklearn_version() or (99, 0)) < (1, 7),
    reason="compares against scikit-learn's own MLP as of 1.7 (sample_weight, loss='poisson'); "
           "this scikit-learn is older")
