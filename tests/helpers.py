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


# The ways a CSR matrix can be malformed that fastmlp must refuse before anything changes
# (tests/api/test_sparse_input.py, tests/integrations/test_sklearn_sparse.py).
MALFORMED_CSR = ["index_too_large", "negative_index", "indptr_decreases", "indptr_not_at_zero", "indptr_short_of_nnz",
                 "nan_value"]


def malformed_csr(X, how):
    """A copy of the scipy CSR matrix X malformed as `how` (one of MALFORMED_CSR) says, with its arrays set directly
    so that scipy's own checks are bypassed. X needs a fourth stored value and four rows."""
    import scipy.sparse as sp

    indptr, indices, data = X.indptr.copy(), X.indices.copy(), X.data.copy()
    if how == "index_too_large":
        indices[3] = X.shape[1]
    elif how == "negative_index":
        indices[3] = -1
    elif how == "indptr_decreases":
        indptr[2] = indptr[3] + 1  # always below its predecessor, whatever the rows hold
    elif how == "indptr_not_at_zero":
        indptr[0] = 1
    elif how == "indptr_short_of_nnz":
        indptr[-1] -= 1
    elif how == "nan_value":
        data[0] = float("nan")
    else:
        raise ValueError(f"unknown malformation {how!r}")
    bad = sp.csr_matrix(X.shape, dtype=X.dtype)
    bad.indptr, bad.indices, bad.data = indptr, indices, data
    return bad


def gemm_products(x, W, b, da, h_prev, activations=("relu", "tanh")):
    """Every product form of the GEMM engine through _core, for tests that compare paths or thread
    counts bitwise: the forward with each of `activations`, the input gradient fused with tanh's g',
    the weight and bias gradients, and the plain SGD step (which reads its own copy of W)."""
    from fastmlp import _core

    stepped = W.copy()
    _core.sgd_update(stepped, W, 0.1)
    return [
        *(_core.dense_forward(x, W, b, g) for g in activations),
        _core.dense_backward_input(da, W, h_prev, "tanh"),
        *_core.dense_backward_params(da, h_prev),
        stepped,
    ]
