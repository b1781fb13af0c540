"""fastmlp.sklearn: scikit-learn's own estimator checks, label and target types, sample
weights, partial_fit, early stopping, the coefs_ layout, single updates against scikit-learn's
MLP from the same weights, and the estimators inside Pipeline, GridSearchCV, pickle and clone."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_blobs, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from tests.helpers import needs_sklearn_mlp_1_7  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# n_threads=1: the check data are tiny, and a second OpenMP thread only adds synchronisation.
# dtype=None (the default) trains float64 data in float64 as scikit-learn does, so that
# check_sample_weight_equivalence passes at its rtol=1e-7 (in float32 it needed an xfail).
@parametrize_with_checks(
    [MLPClassifier(n_threads=1), MLPRegressor(n_threads=1),
     MLPClassifier(solver="lbfgs", max_iter=100, n_threads=1),
     MLPRegressor(solver="lbfgs", max_iter=100, n_threads=1)])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_import_fastmlp_does_not_import_sklearn():
    code = "import sys, fastmlp; assert 'sklearn' not in sys.modules, 'import fastmlp imported sklearn'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _blobs(n=120, classes=3, seed=0):
    X, y = make_blobs(n_samples=n, centers=classes, n_features=4, random_state=seed, cluster_std=1.0)
    return StandardScaler().fit_transform(X), y


@no_convergence_warning
@pytest.mark.parametrize("labels", [
    np.array(["cat", "dog", "emu"]), np.array([-7, 3, 40]), np.array([2.0, 0.0, 5.0]),
    np.array([False, True]), np.array(["no", "yes"]), np.array([1, 0]), np.array(["only"]),
], ids=["str3", "int3", "float3", "bool2", "str2", "int2", "one-class"])
def test_labels_of_any_type_go_through_classes_(labels):
    X, codes = _blobs(classes=max(len(labels), 2))
    y = labels[codes % len(labels)]
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=60, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype and set(pred) <= set(clf.classes_)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels)) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], pred)
    with np.errstate(divide="ignore"):  # a probability that rounds to 0 has the log -inf
        np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    if len(labels) > 2:
        assert (clf.out_activation_, clf.n_outputs_) == ("softmax", len(labels))
    else:  # binary (and a single class): one logistic unit, as scikit-learn
        assert (clf.out_activation_, clf.n_outputs_) == ("logistic", 1)
    assert clf.score(X, y) > 0.9


@no_convergence_warning
def test_multilabel_indicator_targets_get_logistic_outputs():
    X, Y = make_multilabel_classification(n_samples=150, n_features=6, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=150, random_state=0).fit(X, Y)
    assert (clf.out_activation_, clf.n_outputs_) == ("logistic", 4)
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    pred = clf.predict(X)
    assert pred.shape == Y.shape and pred.dtype == Y.dtype and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(Y.dtype))
    assert np.mean(pred == Y) > 0.85  # per-label accuracy
    assert clf.predict(X.astype(bool)).shape == Y.shape
    bool_clf = clf.set_params(max_iter=5).fit(X, Y.astype(bool))
    assert bool_clf.predict(X).dtype == bool


@no_convergence_warning
def test_multi_output_regression():
    X, Y = make_regression(n_samples=150, n_features=5, n_targets=3, noise=0.1, random_state=0)
    Y /= Y.std(axis=0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=200, random_state=0).fit(X, Y)
    assert (reg.out_activation_, reg.n_outputs_, reg.n_layers_) == ("identity", 3, 3)
    pred = reg.predict(X)
    assert pred.shape == Y.shape and pred.dtype == np.float64
    assert reg.score(X, Y) > 0.9
    assert reg.fit(X, Y[:, 0]).predict(X).shape == (len(X),)


# ------------------------------------------------------------------ sample_weight


@no_convergence_warning
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_zero_weight_is_dropping_the_row_and_integer_weight_repeating_it(Estimator):
    # One batch holds all rows (batch_size "auto" = n <= 200): the weighted mean loss of the
    # batch is then the mean over the kept / repeated rows, and the L2 term alpha / (batch_size
    # * mean weight) = alpha / sum of weights is the same too. Only the order of the sums
    # differs, so float64 weights agree to rounding.
    rng = np.random.default_rng(0)
    X, y = _blobs(n=60, classes=3)
    if Estimator is MLPRegressor:
        y = X @ rng.normal(size=4) + rng.normal(size=60) * 0.1
    weights = rng.integers(0, 3, size=60)
    params = dict(hidden_layer_sizes=(8,), alpha=1e-2, max_iter=30, random_state=1, dtype="float64", n_threads=1)
    weighted = Estimator(**params).fit(X, y, sample_weight=weights)
    repeated = Estimator(**params).fit(np.repeat(X, weights, axis=0), np.repeat(y, weights))
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, repeated.coefs_ + repeated.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)


def test_sample_weight_errors_name_the_problem():
    X, y = _blobs(n=30)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(30,\)"):
        MLPClassifier().fit(X, y, sample_weight=np.ones(29))
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(30))
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(30))


# ------------------------------------------------------------------ the mapping onto fastmlp


def _targets(kind, X, rng):
    if kind == "multiclass":
        return np.arange(len(X)) % 3
    if kind == "binary":
        return np.arange(len(X)) % 2
    if kind == "multilabel":
        return (rng.random((len(X), 3)) < 0.4).astype(int)
    if kind == "regression":
        return X @ rng.normal(size=X.shape[1])
    return X @ rng.normal(size=(X.shape[1], 3))  # multi-output regression


@needs_sklearn_mlp_1_7
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression", "multi-output"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_an_epoch_from_the_same_weights_is_scikit_learns(solver, kind, weighted):
    # The gradient scale of each output layer, the learning rate, epsilon and the L2 mapping
    # (see the Notes of the estimators): one full-batch epoch from scikit-learn's weights with
    # a fresh optimizer (a warm_start fit) must take scikit-learn's own step.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5))
    y = _targets(kind, X, rng)
    weights = rng.uniform(0.2, 3.0, size=len(X)) if weighted else None
    # Adam's epsilon enters scikit-learn's step divided by sqrt(1 - beta_2^t) (31.6 at the first
    # step) and PyTorch's (fastmlp's) as is: a documented difference of 1e-3 relative on small
    # gradients, so a negligible epsilon here; alpha large enough for the L2 term to matter.
    params = dict(hidden_layer_sizes=(7,), activation="tanh", solver=solver, alpha=0.3, learning_rate_init=0.05,
                  max_iter=1, shuffle=False, warm_start=True, momentum=0.0, epsilon=1e-14, random_state=0)
    classifier = kind in ("multiclass", "binary", "multilabel")
    Ours, Theirs = (MLPClassifier, neural_network.MLPClassifier) if classifier else \
        (MLPRegressor, neural_network.MLPRegressor)
    theirs = Theirs(**params).fit(X, y, sample_weight=weights)
    ours = Ours(**params, dtype="float64").fit(X, y, sample_weight=weights)
    assert ours.out_activation_ == theirs.out_activation_ and ours.n_outputs_ == theirs.n_outputs_
    for mine, their in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        mine[...] = their  # coefs_ are views of the network's weights: this sets them
    squared_norm_before = sum(np.sum(W**2) for W in theirs.coefs_)
    theirs.fit(X, y, sample_weight=weights)
    ours.fit(X, y, sample_weight=weights)
    for mine, their in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)
    # The loss on scikit-learn's scale: the same data term (before the step), and the L2 term
    # taken with the weights after the epoch instead of before its (one) batch.
    squared_norm_after = sum(np.sum(W**2) for W in ours.coefs_)
    weight_sum = len(X) if weights is None else weights.sum()
    l2_shift = 0.5 * params["alpha"] * (squared_norm_after - squared_norm_before) / weight_sum
    np.testing.assert_allclose(ours.loss_, theirs.loss_ + l2_shift, rtol=1e-9)


@no_convergence_warning  # the last fit runs the default max_iter
def test_solvers_and_activations_map_onto_fastmlp():
    X, y = _blobs(n=40)
    for solver, kind in [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW"), ("rmsprop", "RMSprop")]:
        clf = MLPClassifier(hidden_layer_sizes=(4, 3), activation="logistic", solver=solver, max_iter=2,
                            random_state=0)
        with pytest.warns(ConvergenceWarning):
            clf.fit(X, y)
        assert type(clf._optimizer).__name__ == kind
        assert clf.network_.layer_sizes == [4, 4, 3, 3] and clf.network_.activations == ["sigmoid", "sigmoid"]
        assert clf.n_layers_ == 4
    assert MLPClassifier(solver="adamw", alpha=0.05).fit(X, y)._optimizer.weight_decay == 0.05


# scikit-learn's InvalidParameterError wording ("The 'x' parameter of MLPClassifier must be ...
# Got ... instead.") wherever it has a constraint; fastmlp's own words for what it checks beyond.
_INVALID = "The '{}' parameter of MLPClassifier must be "


@pytest.mark.parametrize("param, value, message", [
    ("solver", "newton", _INVALID.format("solver") + r"a str among \{.*'lbfgs'.*\}\. Got 'newton' instead\."),
    ("activation", "swish", _INVALID.format("activation") + r"a str among \{.*'gelu'.*\}\. Got 'swish' instead\."),
    ("alpha", -1.0, _INVALID.format("alpha") + r"a float in the range \[0\.0, inf\)\. Got -1\.0 instead\."),
    ("batch_size", 0, _INVALID.format("batch_size") + r"a str among \{'auto'\} or an int in the range \[1, inf\)"),
    ("batch_size", "big", _INVALID.format("batch_size") + r".* Got 'big' instead\."),
    ("hidden_layer_sizes", (10, 0), r"hidden_layer_sizes\[1\] must be >= 1"),
    ("validation_fraction", 1.0, _INVALID.format("validation_fraction") + r"a float in the range \[0\.0, 1\.0\)"),
    ("dtype", "float16", "dtype must be None, 'float32' or 'float64'"),
    ("n_threads", 0, _INVALID.format("n_threads") + r"None or an int in the range \[1, inf\)\. Got 0 instead\."),
    ("beta_2", 1.0, _INVALID.format("beta_2") + r"a float in the range \[0\.0, 1\.0\)\. Got 1\.0 instead\."),
])
def test_parameter_errors_name_the_parameter(param, value, message):
    X, y = _blobs(n=20)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**{param: value}).fit(X, y)


# ------------------------------------------------------------------ stopping rules


def test_tol_rule_stops_at_scikit_learns_epoch():
    # A tol no loss can beat: the first epoch sets best_loss_, each later one counts, and the
    # fit stops after n_iter_no_change + 1 epochs without improvement, as scikit-learn does.
    X, y = _blobs(n=50)
    ours = MLPClassifier(hidden_layer_sizes=(5,), tol=1e9, n_iter_no_change=3, random_state=0).fit(X, y)
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(5,), tol=1e9, n_iter_no_change=3,
                                          random_state=0).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 5
    assert len(ours.loss_curve_) == 5 and ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    assert ours.t_ == 5 * 50


def test_max_iter_without_convergence_warns():
    X, y = _blobs(n=50)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, tol=1e9, n_iter_no_change=3, random_state=0).fit(X, y)


class _RecordingClassifier(MLPClassifier):
    """Keeps the weights seen at every validation, to check which epoch's weights fit ends with."""

    def _validation_score(self, X_val, y_val, weights_val):
        score = super()._validation_score(X_val, y_val, weights_val)
        self.seen_.append((score, [a.copy() for a in self.coefs_ + self.intercepts_]))
        self.y_val_ = y_val
        return score


@no_convergence_warning
def test_early_stopping_restores_the_best_validated_weights():
    X, y = load_digits(return_X_y=True)
    X = X[:600] / 16
    clf = _RecordingClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, early_stopping=True,
                               validation_fraction=0.2, n_iter_no_change=4, tol=0.0, max_iter=100, random_state=0)
    clf.seen_ = []
    clf.fit(X, y[:600])
    scores = [s for s, _ in clf.seen_]
    assert clf.validation_scores_ == scores and clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    best = int(np.argmax(scores))  # the first epoch with the best score
    assert best < len(scores) - 1, "the run should go on past its best epoch for this test to mean anything"
    for now, then in zip(clf.coefs_ + clf.intercepts_, clf.seen_[best][1]):
        np.testing.assert_array_equal(now, then)
    # The validation rows never trained on: 20 % of 600, stratified.
    assert clf.t_ == clf.n_iter_ * 480


@pytest.mark.parametrize("call", ["partial_fit", "warm_start"])
def test_switching_early_stopping_off_continues_on_the_training_loss(call):
    """fit with early stopping, then partial_fit or a warm start without it: the training loss's
    counter starts at that call (best_loss_ from inf), instead of failing on early stopping's
    best_loss_ = None (scikit-learn's own MLP raises a TypeError there)."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16, y[:300]
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        assert clf.best_loss_ is None
        clf.set_params(early_stopping=False)
        if call == "partial_fit":
            clf.partial_fit(X, y)
        else:
            clf.set_params(warm_start=True).fit(X, y)
    assert np.isfinite(clf.best_loss_) and clf.best_loss_ == min(clf.loss_curve_[-clf.n_iter_:])


def test_early_stopping_split_is_stratified():
    X, _ = _blobs(n=100, classes=2)
    y = np.where(np.arange(100) < 90, "common", "rare")
    clf = _RecordingClassifier(hidden_layer_sizes=(4,), early_stopping=True, validation_fraction=0.2,
                               max_iter=1, random_state=0)
    clf.seen_ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.t_ == 80
    assert sorted(clf.y_val_.tolist()) == ["common"] * 18 + ["rare"] * 2  # the labels' 9:1, as in y


# ------------------------------------------------------------------ partial_fit and warm_start


@no_convergence_warning
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_partial_fit_continues_weights_and_optimizer(Estimator):
    # Without shuffling, k partial_fit calls are the k epochs of one fit: the same initial
    # weights (drawn first from random_state) and one optimizer carried through.
    X, y = _blobs(n=80)
    if Estimator is MLPRegressor:
        y = X.sum(axis=1)
    params = dict(hidden_layer_sizes=(6,), batch_size=32, shuffle=False, random_state=0, tol=0.0)
    whole = Estimator(**params, max_iter=4).fit(X, y)
    pieces = Estimator(**params)
    extra = {"classes": np.unique(y)} if Estimator is MLPClassifier else {}
    for _ in range(4):
        pieces.partial_fit(X, y, **extra)
        assert pieces.n_iter_ == 1
    for a, b in zip(whole.coefs_ + whole.intercepts_, pieces.coefs_ + pieces.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert pieces.loss_curve_ == whole.loss_curve_ and pieces.t_ == whole.t_ == 4 * 80
    assert pieces._optimizer.steps == whole._optimizer.steps == 4 * 3


def test_partial_fit_classes():
    X, y = _blobs(n=60)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        MLPClassifier().partial_fit(X, y)
    clf = MLPClassifier(hidden_layer_sizes=(4,)).partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.out_activation_ == "softmax" and list(clf.classes_) == [0, 1, 2]
    clf.partial_fit(X, y)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="not in classes"):
        MLPClassifier().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_continues_from_the_fitted_weights():
    X, y = _blobs(n=60)
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    before = [a.copy() for a in clf.coefs_]
    first_curve = list(clf.loss_curve_)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.loss_curve_[:3] == first_curve and len(clf.loss_curve_) == 6 and clf.n_iter_ == 3
    assert clf.t_ == 6 * 60
    # Continued, not restarted: a new network from the same seed would start where `before` did.
    fresh = MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        fresh.fit(X, y)
    np.testing.assert_array_equal(fresh.coefs_[0], before[0])
    assert not np.array_equal(clf.coefs_[0], before[0])
    with pytest.raises(ValueError, match="warm_start needs y with the same classes"):
        clf.fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="set warm_start=False"):
        clf.set_params(hidden_layer_sizes=(7,)).fit(X, y)


# ------------------------------------------------------------------ attributes, threads, composition


@no_convergence_warning
def test_feature_names_in_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = _blobs(n=40)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)  # fitted with names, predicting without: scikit-learn's warning


@no_convergence_warning
def test_coefs_are_live_transposed_views_of_the_network_weights():
    X, y = _blobs(n=50)
    clf = MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=5, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 6), (6, 5), (5, 3)]
    for coef, W, intercept, b in zip(clf.coefs_, clf.network_.weights, clf.intercepts_, clf.network_.biases):
        np.testing.assert_array_equal(coef, W.T)
        assert np.shares_memory(coef, W) and intercept is b
    # scikit-learn's forward pass on coefs_/intercepts_ gives predict_proba.
    h = X
    for coef, intercept in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ coef + intercept, 0)
    a = h @ clf.coefs_[-1] + clf.intercepts_[-1]
    expected = np.exp(a - a.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), expected / expected.sum(axis=1, keepdims=True), rtol=1e-4)
    # Still views after unpickling, and after training more.
    copy = pickle.loads(pickle.dumps(clf))
    copy.coefs_[0][0, 0] = 42.0
    assert copy.network_.weights[0][0, 0] == 42.0 and clf.network_.weights[0][0, 0] != 42.0
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.coefs_[0], copy.network_.weights[0].T)
    with pytest.raises(AttributeError, match="before fit"):
        _ = MLPClassifier().coefs_


@no_convergence_warning
def test_n_threads_applies_during_the_call_only(threads):
    X, y = _blobs(n=80)
    threads(2)
    results = []
    for n in (1, 2):
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_threads=n).fit(X, y)
        assert fastmlp.get_num_threads() == 2
        results.append((clf.coefs_[0].copy(), clf.predict_proba(X)))
        assert fastmlp.get_num_threads() == 2
    np.testing.assert_array_equal(results[0][0], results[1][0])  # bitwise, any thread count
    np.testing.assert_array_equal(results[0][1], results[1][1])


@no_convergence_warning
def test_pipeline_pickle_and_clone():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0))
    pipe.fit(X_train, y_train)
    assert pipe.score(X_test, y_test) > 0.9
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict_proba(X_test), pipe.predict_proba(X_test))
    clf = pipe[-1]
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "network_")


@no_convergence_warning
def test_grid_search_with_two_processes():
    X, y = _blobs(n=90)
    # learning_rate_init=0.01: from scikit-learn's initial weights (those of random_state=0), 20
    # epochs at its default 1e-3 leave this network predicting the wrong class, as scikit-learn's does.
    search = GridSearchCV(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=0.01,
                                        random_state=0, n_threads=1),
                          {"alpha": [1e-4, 1e-1], "solver": ["adam", "sgd"]}, cv=2, n_jobs=2, error_score="raise")
    search.fit(X, y)
    assert set(search.best_params_) == {"alpha", "solver"} and search.best_estimator_.score(X, y) > 0.5


@no_convergence_warning
def test_similar_to_scikit_learns_mlp_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25, random_state=0, stratify=y)
    params = dict(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=40, random_state=0)
    ours = MLPClassifier(**params).fit(X_train, y_train)
    theirs = neural_network.MLPClassifier(**params).fit(X_train, y_train)
    ours_acc, theirs_acc = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    assert ours_acc > 0.94 and theirs_acc > 0.94 and abs(ours_acc - theirs_acc) < 0.03
    # The losses are on the same scale (cross-entropy plus the same L2 term).
    assert 0.5 < ours.loss_curve_[0] / theirs.loss_curve_[0] < 2
    assert 0.3 < ours.loss_ / theirs.loss_ < 3
