"""scipy.sparse X through the public API (issue 16): Network.predict/predict_proba/loss/accuracy/
gradients and Trainer.fit/step take CSR matrices and arrays (other formats converted once), any
integer index dtype, unsorted and repeated indices, stored zeros; sparse training equals dense
training on the densified data; a malformed structure is a ValueError before anything changes;
without scipy, nothing imports it and dense input works as before."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmlp
from tests.helpers import MALFORMED_CSR, diverged_batch, malformed_csr, snapshot

sp = pytest.importorskip("scipy.sparse")

TOL = {"float32": {"rtol": 1e-4, "atol": 1e-6}, "float64": {"rtol": 1e-12, "atol": 1e-13}}
FORMATS = ["csr_matrix", "csr_array", "csc_matrix", "coo_matrix", "coo_array", "lil_matrix"]


def text_like(rng, n_rows=60, n_cols=80, density=0.08):
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=np.random.RandomState(5),
                  data_rvs=lambda k: rng.uniform(0.1, 1.0, k))
    y = rng.integers(0, 3, size=n_rows)
    return X, y


def as_format(X, fmt):
    return getattr(sp, fmt)(X)


def fit_pair(X_sparse, y, dtype, optimizer, epochs=2, **fit):
    """The weights after training on sparse X and on its dense copy, from the same start."""
    nets = []
    for data in (X_sparse, X_sparse.toarray()):
        net = fastmlp.Network([X_sparse.shape[1], 16, 3], seed=0, dtype=dtype)
        fastmlp.Trainer(net, batch_size=8, seed=1, optimizer=optimizer()).fit(data, y, epochs=epochs, **fit)
        nets.append(net)
    return nets


def assert_same_weights(a, b, dtype):
    for u, v in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(u, v, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [lambda: fastmlp.optim.SGD(lr=0.3), lambda: fastmlp.optim.Adam(lr=1e-2),
                                       lambda: fastmlp.optim.SGD(lr=0.1, momentum=0.9)],
                         ids=["sgd", "adam", "momentum"])
def test_sparse_fit_equals_dense_fit(rng, dtype, optimizer):
    X, y = text_like(rng)
    sparse_net, dense_net = fit_pair(X, y, dtype, optimizer, epochs=3)
    assert_same_weights(sparse_net, dense_net, dtype)


def test_sparse_fit_with_validation_fraction_and_data_equals_dense(rng):
    X, y = text_like(rng)
    hs = []
    for data in (X, X.toarray()):
        net = fastmlp.Network([80, 16, 3], seed=0, dtype="float64")
        t = fastmlp.Trainer(net, batch_size=8, seed=1, optimizer=fastmlp.optim.Adam(lr=1e-2))
        hs.append((net, t.fit(data, y, epochs=2, validation_fraction=0.25),
                   t.fit(data, y, epochs=1, validation_data=(data[:10], y[:10]))))
    assert_same_weights(hs[0][0], hs[1][0], "float64")
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(hs[0][1].to_dict()[key], hs[1][1].to_dict()[key], rtol=1e-12)
        np.testing.assert_allclose(hs[0][2].to_dict()[key], hs[1][2].to_dict()[key], rtol=1e-12)


def _csr_with_index_dtype(X, fmt, index_dtype):
    X = as_format(X, fmt)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype if np.iinfo(index_dtype).max > X.nnz else np.int64)
    return X


CASES = [(fmt, np.int32) for fmt in FORMATS] + [
    (fmt, dt) for fmt in ("csr_matrix", "csr_array") for dt in (np.int64, np.uint16, np.int8)]


@pytest.mark.parametrize("fmt, index_dtype", CASES)
def test_every_format_and_index_dtype_predicts_as_dense(rng, fmt, index_dtype):
    X, y = text_like(rng)
    if index_dtype is np.int8:  # int8 indices name at most 127 columns: a narrow matrix
        X = X[:, :100]
    Xf = _csr_with_index_dtype(X, fmt, index_dtype) if fmt.startswith("csr") else as_format(X, fmt)
    net = fastmlp.Network([X.shape[1], 16, 3], seed=0, dtype="float64")
    dense = X.toarray()
    np.testing.assert_allclose(net.predict_proba(Xf), net.predict_proba(dense), rtol=1e-12)
    assert (net.predict(Xf) == net.predict(dense)).all()
    assert net.loss(Xf, y) == pytest.approx(net.loss(dense, y), rel=1e-12)
    assert net.accuracy(Xf, y) == net.accuracy(dense, y)
    loss_s, grads_s = net.gradients(Xf, y)
    loss_d, grads_d = net.gradients(dense, y)
    assert loss_s == pytest.approx(loss_d, rel=1e-12)
    for (a, b), (c, d) in zip(grads_s, grads_d):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-15)


def test_unsorted_repeated_indices_and_stored_zeros_mean_their_dense_sum(rng):
    # rows: {2: 1.0, 0: 0.5, 2: 0.25}, {}, {5: 0.0, 1: -1.0}
    X = sp.csr_matrix((np.array([1.0, 0.5, 0.25, 0.0, -1.0]), np.array([2, 0, 2, 5, 1]), np.array([0, 3, 3, 5])),
                      shape=(3, 6))
    dense = np.array([[0.5, 0, 1.25, 0, 0, 0], [0] * 6, [0, -1.0, 0, 0, 0, 0]])
    net = fastmlp.Network([6, 5, 2], seed=0, dtype="float64")
    np.testing.assert_allclose(net.predict_proba(X), net.predict_proba(dense), rtol=1e-13)
    y = np.array([0, 1, 1])
    a, b = net.copy(), net.copy()
    fastmlp.Trainer(a, batch_size=3, seed=0).step(X, y)
    fastmlp.Trainer(b, batch_size=3, seed=0).step(dense, y)
    assert_same_weights(a, b, "float64")


def test_float_dtype_rules_follow_dense_input(rng):
    X, _ = text_like(rng)
    net32 = fastmlp.Network([80, 16, 3], seed=0, dtype="float32")
    out = net32.predict_proba(X)  # float64 values into a float32 network: converted, as for dense X
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, net32.predict_proba(X.toarray()), rtol=1e-5)
    Xi = sp.csr_matrix(X.toarray().round() + 0)  # integer-valued, stored as float; and an int matrix
    net64 = fastmlp.Network([80, 16, 3], seed=0, dtype="float64")
    np.testing.assert_allclose(net64.predict_proba(Xi.astype(np.int64)), net64.predict_proba(Xi.toarray()),
                               rtol=1e-13)


@pytest.mark.parametrize("how", MALFORMED_CSR)
@pytest.mark.parametrize("call", ["fit", "step", "predict", "gradients"])
def test_malformed_structure_is_a_value_error_before_anything_changes(rng, how, call):
    X, y = text_like(rng)
    bad = malformed_csr(X, how)
    net = fastmlp.Network([80, 16, 3], seed=0)
    trainer = fastmlp.Trainer(net, batch_size=8, seed=0, optimizer=fastmlp.optim.Adam(lr=1e-2))
    before = snapshot(net)
    steps = trainer.optimizer.steps
    run = {"fit": lambda: trainer.fit(bad, y, epochs=1, validation_fraction=0.2),
           "step": lambda: trainer.step(bad, y), "predict": lambda: net.predict(bad),
           "gradients": lambda: net.gradients(bad, y)}[call]
    with pytest.raises(ValueError, match=r"X"):
        run()
    assert snapshot(net) == before
    assert trainer.optimizer.steps == steps


def test_wrong_width_and_empty_sparse_input_are_refused(rng):
    X, _ = text_like(rng)
    net = fastmlp.Network([81, 4, 2], seed=0)
    with pytest.raises(ValueError, match="81 input features"):
        net.predict(X)
    with pytest.raises(ValueError, match="0 samples"):
        fastmlp.Network([80, 4, 2]).predict(X[:0])


def test_sparse_validation_rows_are_not_copied_into_a_dense_array(rng):
    X, y = text_like(rng, n_rows=40)
    net = fastmlp.Network([80, 8, 3], seed=0)
    h = fastmlp.Trainer(net, batch_size=8, seed=0).fit(X, y, epochs=1, validation_fraction=0.5)
    assert np.isfinite(h.to_dict()["val_loss"][0])


def test_the_issue_example_runs(rng):
    X, y = text_like(rng, n_rows=200, n_cols=300, density=0.02)
    net = fastmlp.Network([X.shape[1], 32, 3], seed=0)
    fastmlp.Trainer(net, optimizer=fastmlp.optim.Adam(lr=1e-3), batch_size=128).fit(
        X, y, epochs=2, validation_fraction=0.1)
    assert net.predict(X[:17]).shape == (17,)


def test_sparse_path_never_imports_scipy():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import fastmlp

        class FakeCsr:  # a CSR matrix by its attributes only, of a module that is not scipy
            format = "csr"
            shape = (2, 3)
            data = np.array([1.0, 2.0])
            indices = np.array([2, 0], dtype=np.int32)
            indptr = np.array([0, 1, 2], dtype=np.int32)
            def tocsr(self):
                return self

        net = fastmlp.Network([3, 2], seed=0, dtype="float64")
        got = net.predict_proba(FakeCsr())
        want = net.predict_proba(np.array([[0, 0, 1.0], [2.0, 0, 0]]))
        assert np.allclose(got, want), (got, want)
        fastmlp.Trainer(net, batch_size=2).fit(FakeCsr(), np.array([0, 1]), epochs=1)
        assert "scipy" not in sys.modules
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_diverging_sparse_sgd_epoch_rolls_back_as_a_dense_one(rng):
    # the plain-SGD epoch steps a transposed copy of W_1: a stopped epoch must still leave W_1 as dense training does
    X, y = text_like(rng)
    nets, batches = [], []
    for data in (X, X.toarray()):
        net = fastmlp.Network([80, 16, 3], seed=0, dtype="float64")
        trainer = fastmlp.Trainer(net, batch_size=8, seed=1, optimizer=fastmlp.optim.SGD(lr=1e155))
        with pytest.raises(fastmlp.TrainingDivergedError) as exc:
            trainer.fit(data, y, epochs=3)
        nets.append(net)
        batches.append(diverged_batch(exc))
    assert batches[0] == batches[1]
    assert_same_weights(nets[0], nets[1], "float64")
    assert all(np.isfinite(a).all() for a in nets[0].weights + nets[0].biases)


def test_sparse_prediction_runs_in_calls_sized_by_nonzeros(rng):
    X = sp.random(20_000, 3000, density=0.001, format="csr", random_state=np.random.RandomState(0))
    net = fastmlp.Network([3000, 64, 4], seed=0, dtype="float64")
    checked = fastmlp._sparse.check_sparse(X, 3000, net.dtype)
    dense_rows = net._eval_workspace(X.shape[0]).max_batch
    sparse_rows = net._eval_workspace(X.shape[0], checked).max_batch
    assert sparse_rows == fastmlp._sparse.SPARSE_EVAL_MAX_ROWS > dense_rows
    np.testing.assert_allclose(net.predict_proba(X)[-300:], net.predict_proba(X[-300:].toarray()), rtol=1e-12)
