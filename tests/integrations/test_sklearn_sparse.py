"""fastmlp.sklearn on scipy.sparse X: every solver, the early-stopping split, sample weights,
warm starts, partial_fit and every target type give what a fit on X.toarray() gives (float64 to
~1e-12, float32 to rounding); lbfgs on sparse X takes scikit-learn's own steps on the same
sparse X; every format and index dtype predicts as dense; a malformed matrix is refused with
the estimator unchanged; and X is never densified on the way."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
sp = pytest.importorskip("scipy.sparse")

from sklearn import neural_network  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from tests.helpers import MALFORMED_CSR, malformed_csr, needs_sklearn_mlp_1_7  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Sparse and dense fits differ only in the order of the first layer's sums (over a row's nonzeros,
# against all its columns): float64 agrees to ~1e-12 relative, float32 to its rounding.
TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-13}, np.float32: {"rtol": 2e-4, "atol": 1e-5}}
CLASSIFICATION = ("multiclass", "binary", "multilabel")
FORMATS = ["csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix", "coo_array", "lil_matrix",
           "dok_matrix", "bsr_matrix", "dia_matrix"]


def _data(kind="multiclass", n_rows=120, n_cols=60, density=0.1, seed=0):
    """A text-like CSR X (about 6 nonzeros per row, some rows empty) and targets of `kind` that
    depend on X, so that training moves the weights."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=np.random.RandomState(seed),
                  data_rvs=lambda k: rng.uniform(0.1, 1.0, k))
    scores = np.asarray(X @ rng.normal(size=(n_cols, 4)))
    y = {"multiclass": lambda: np.argmax(scores[:, :3], axis=1),
         "binary": lambda: (scores[:, 0] > np.median(scores[:, 0])).astype(np.int64),
         "multilabel": lambda: (scores > np.median(scores, axis=0)).astype(np.int64),
         "regression": lambda: scores[:, 0],
         "multi_output": lambda: scores[:, :3]}[kind]()
    return X, y


def _estimator(kind, **params):
    return (MLPClassifier if kind in CLASSIFICATION else MLPRegressor)(**params)


def _params_of(est):
    return [np.array(a) for a in est.coefs_ + est.intercepts_]


def _assert_same_fit(sparse_est, dense_est, dtype=np.float64):
    assert sparse_est.network_.dtype == dense_est.network_.dtype == dtype
    assert sparse_est.n_iter_ == dense_est.n_iter_
    for a, b in zip(_params_of(sparse_est), _params_of(dense_est)):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    np.testing.assert_allclose(sparse_est.loss_, dense_est.loss_, rtol=TOL[dtype]["rtol"])
    if hasattr(dense_est, "loss_curve_"):
        np.testing.assert_allclose(sparse_est.loss_curve_, dense_est.loss_curve_, rtol=TOL[dtype]["rtol"])


# ------------------------------------------------------------------ sparse fit = dense fit


SOLVERS = {
    # momentum=0 and alpha=0: plain SGD, whose first-layer step runs over the nonzeros only
    "sgd-plain": {"solver": "sgd", "momentum": 0.0, "alpha": 0.0, "learning_rate_init": 0.1},
    "sgd-nesterov": {"solver": "sgd", "learning_rate_init": 0.05},
    "adam": {"solver": "adam", "learning_rate_init": 0.01},
    "adamw": {"solver": "adamw", "learning_rate_init": 0.01, "alpha": 1e-2},
    "rmsprop": {"solver": "rmsprop", "learning_rate_init": 0.003},
    "lbfgs": {"solver": "lbfgs"},
}


@no_convergence_warning
@pytest.mark.parametrize("kind", ["multiclass", "regression"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_sparse_fit_equals_dense_fit(solver, dtype, kind):
    X, y = _data(kind)
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(12,), max_iter=6, batch_size=16, random_state=0, **SOLVERS[solver])
    sparse_est = _estimator(kind, **params).fit(X, y)
    dense_est = _estimator(kind, **params).fit(X.toarray(), y)
    assert sparse_est.n_iter_ == 6
    _assert_same_fit(sparse_est, dense_est, dtype)
    for method in ("predict_proba", "predict") if kind in CLASSIFICATION else ("predict",):
        got, want = getattr(sparse_est, method)(X), getattr(dense_est, method)(X.toarray())
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **TOL[dtype])


def _partial_fits(est, X, y, w):
    classes = {}
    if isinstance(est, MLPClassifier):  # every label on the first call (the label columns for multilabel)
        classes = {"classes": np.unique(y) if y.ndim == 1 else np.arange(y.shape[1])}
    for _ in range(3):
        est.partial_fit(X, y, sample_weight=w, **classes)
    return est


def _warm_starts(est, X, y, w):
    est.set_params(warm_start=True, max_iter=2)
    for _ in range(3):
        est.fit(X, y, sample_weight=w)
    return est


CASES = {
    "plain": lambda est, X, y, w: est.fit(X, y),
    "sample_weight": lambda est, X, y, w: est.fit(X, y, sample_weight=w),
    "early_stopping": lambda est, X, y, w: est.set_params(early_stopping=True, validation_fraction=0.2,
                                                          n_iter_no_change=3).fit(X, y, sample_weight=w),
    "warm_start": _warm_starts,
    "partial_fit": _partial_fits,
}


@no_convergence_warning
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression", "multi_output"])
@pytest.mark.parametrize("case", CASES)
def test_every_way_of_fitting_equals_the_dense_one(case, kind):
    X, y = _data(kind)
    w = np.random.default_rng(1).uniform(0.0, 2.0, size=X.shape[0])
    params = dict(hidden_layer_sizes=(10,), max_iter=8, batch_size=32, learning_rate_init=0.02, random_state=0)
    sparse_est = CASES[case](_estimator(kind, **params), X, y, w)
    dense_est = CASES[case](_estimator(kind, **params), X.toarray(), y, w)
    _assert_same_fit(sparse_est, dense_est)
    if case == "early_stopping":  # the same validation rows, scored alike
        assert len(sparse_est.validation_scores_) == sparse_est.n_iter_
        np.testing.assert_allclose(sparse_est.validation_scores_, dense_est.validation_scores_, rtol=1e-12)
        assert sparse_est.best_validation_score_ == pytest.approx(dense_est.best_validation_score_, rel=1e-12)
    got, want = sparse_est.predict(X), dense_est.predict(X.toarray())
    if kind in CLASSIFICATION:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(sparse_est.predict_proba(X), dense_est.predict_proba(X.toarray()), **TOL[np.float64])
    else:
        np.testing.assert_allclose(got, want, **TOL[np.float64])
    assert sparse_est.score(X, y) == pytest.approx(dense_est.score(X.toarray(), y), rel=1e-12)


@no_convergence_warning
def test_a_sparse_label_indicator_matrix_fits_as_its_dense_twin():
    X, Y = _data("multilabel")
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    from_sparse = MLPClassifier(**params).fit(X, sp.csr_matrix(Y))
    from_dense = MLPClassifier(**params).fit(X, Y)
    for a, b in zip(_params_of(from_sparse), _params_of(from_dense)):
        np.testing.assert_array_equal(a, b)
    assert from_sparse.predict(X).shape == Y.shape


# ------------------------------------------------------------------ against scikit-learn


@needs_sklearn_mlp_1_7
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression", "weighted"])
def test_lbfgs_on_sparse_X_takes_scikit_learns_steps_in_float64(kind):
    # As tests/integrations/test_sklearn_compat.py does for dense X: both start from the same
    # weights, then 25 L-BFGS iterations each on the same CSR matrix.
    digits, y = load_digits(return_X_y=True)
    X = sp.csr_matrix(digits[:400] / 16)  # about half the pixels are 0
    y = y[:400]
    weights = np.random.default_rng(0).uniform(0.2, 3.0, size=X.shape[0]) if kind == "weighted" else None
    if kind == "binary":
        y = y % 2
    if kind == "regression":
        y = np.asarray(X[:, 10:20].sum(axis=1)).ravel()
    Ours, Theirs = (MLPRegressor, neural_network.MLPRegressor) if kind == "regression" else \
        (MLPClassifier, neural_network.MLPClassifier)
    params = dict(hidden_layer_sizes=(10,), solver="lbfgs", activation="tanh", alpha=1e-2, random_state=0,
                  warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = Theirs(**params).fit(X, y)
        ours = Ours(**params).fit(X, y)
        ours.coefs_, ours.intercepts_ = theirs.coefs_, theirs.intercepts_
        for est in (ours, theirs):
            est.set_params(max_iter=25).fit(X, y, sample_weight=weights)
    assert ours.network_.dtype == np.float64
    assert ours.n_iter_ == theirs.n_iter_ == 25
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-9)
    for mine, their in zip(_params_of(ours), _params_of(theirs)):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.predict(X[:50]), theirs.predict(X[:50]), rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------ formats, index and value dtypes


def _with_index_dtype(X, fmt, index_dtype):
    X = getattr(sp, fmt)(X)
    if fmt.startswith(("csr", "csc")):
        X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    elif fmt.startswith("coo"):
        X.row, X.col = X.row.astype(index_dtype), X.col.astype(index_dtype)
    return X


@no_convergence_warning
@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")  # dia_matrix of a random matrix
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_index_dtype_fits_and_predicts_as_dense(fmt, index_dtype):
    X, y = _data()
    Xf = _with_index_dtype(X, fmt, index_dtype)
    params = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    ours = MLPClassifier(**params).fit(Xf, y)
    dense = MLPClassifier(**params).fit(X.toarray(), y)
    _assert_same_fit(ours, dense)
    np.testing.assert_allclose(ours.predict_proba(Xf), dense.predict_proba(X.toarray()), **TOL[np.float64])
    np.testing.assert_allclose(ours.predict_log_proba(Xf), dense.predict_log_proba(X.toarray()), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(ours.predict(Xf), dense.predict(X.toarray()))
    assert ours.score(Xf, y) == dense.score(X.toarray(), y)


@no_convergence_warning
def test_the_dtype_rule_is_dense_xs():
    X, y = _data("regression")
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    for values, expected in ((np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64)):
        Xv = (X * 10).astype(values)  # int64: the values truncated, some stored values now 0
        reg = MLPRegressor(**params).fit(Xv, y)
        assert reg.network_.dtype == expected and reg.predict(Xv).dtype == expected
        twin = MLPRegressor(**params).fit(Xv.toarray(), y)
        np.testing.assert_allclose(reg.predict(X), twin.predict(X.toarray()), **TOL[expected])
    reg = MLPRegressor(dtype="float32", **params).fit(X, y)  # float64 sparse X trained in float32 when asked
    assert reg.network_.dtype == np.float32
    reg.set_params(warm_start=True).fit(X.astype(np.float32), y)  # a warm start keeps the fitted dtype
    reg.partial_fit(X, y)
    assert reg.network_.dtype == np.float32 and reg.predict(X).dtype == np.float32


# ------------------------------------------------------------------ refusals and densification


@pytest.mark.parametrize("how", MALFORMED_CSR)
@pytest.mark.parametrize("call", ["fit", "warm_start", "partial_fit", "predict", "predict_proba", "score"])
def test_a_malformed_matrix_is_refused_with_the_estimator_unchanged(how, call):
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", max_iter=3, random_state=0).fit(X, y)
    params, proba = _params_of(clf), clf.predict_proba(X)
    attributes = {k: v for k, v in vars(clf).items() if k.endswith("_") and not k.startswith("_")}
    curve = list(clf.loss_curve_)
    bad = malformed_csr(X, how)
    run = {"fit": lambda: clf.fit(bad, y), "warm_start": lambda: clf.set_params(warm_start=True).fit(bad, y),
           "partial_fit": lambda: clf.partial_fit(bad, y), "predict": lambda: clf.predict(bad),
           "predict_proba": lambda: clf.predict_proba(bad), "score": lambda: clf.score(bad, y)}[call]
    with pytest.raises(ValueError, match="X"):
        run()
    for now, then in zip(_params_of(clf), params):
        np.testing.assert_array_equal(now, then)
    assert vars(clf).keys() >= attributes.keys() and clf.network_ is attributes["network_"]
    assert clf.loss_curve_ == curve and clf.n_iter_ == attributes["n_iter_"]
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_sparse_X_is_never_densified(monkeypatch):
    X, y = _data()
    Xr, yr = _data("regression")

    def refuse(*args, **kwargs):
        raise AssertionError("sparse X was densified")

    # Every scipy.sparse type, and fastmlp's own CSR view, loses its ways to a dense array.
    for name in dir(sp):
        if name.endswith(("_matrix", "_array")) and isinstance(getattr(sp, name), type):
            for method in ("toarray", "todense"):
                monkeypatch.setattr(getattr(sp, name), method, refuse)
    monkeypatch.setattr(fastmlp._sparse.CsrRows, "toarray", refuse)
    with pytest.raises(AssertionError, match="densified"):
        X.toarray()
    w = np.linspace(0.5, 1.5, X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for solver in ("sgd", "adam", "lbfgs"):
            for est, data, target in ((MLPClassifier, sp.csc_matrix(X), y), (MLPRegressor, sp.coo_array(Xr), yr)):
                model = est(hidden_layer_sizes=(8,), solver=solver, max_iter=3, random_state=0,
                            early_stopping=solver != "lbfgs").fit(data, target, sample_weight=w)
                if solver != "lbfgs":
                    again = est(hidden_layer_sizes=(8,), solver=solver, random_state=0)
                    classes = {"classes": np.unique(target)} if est is MLPClassifier else {}
                    again.partial_fit(data, target, **classes).partial_fit(data, target, sample_weight=w)
                    assert again.n_iter_ == 1 and again.t_ == 2 * X.shape[0]
                assert model.predict(data).shape[0] == X.shape[0]
                assert np.isfinite(model.score(data, target))
                if est is MLPClassifier:
                    assert model.predict_proba(data).shape == (X.shape[0], 3)
