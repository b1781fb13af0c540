"""fastmlp.sklearn against scikit-learn's own MLP on the same data: lbfgs, the learning-rate
schedules, n_iter_no_change=np.inf, assignable coefs_, the dtype rule, partial_fit's presence
and equivalence with fit, pickled continuation, scikit-learn's error wording; and the
reliability promises of the estimators (a failed refit changes nothing, divergence errors in
the estimator's own terms)."""

import pickle
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn import neural_network
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import fastmlp
from fastmlp.sklearn import MLPClassifier, MLPRegressor
from tests.helpers import needs_sklearn_mlp_1_7

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _digits(n=400):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n]


def _blobs(n=120, classes=3, seed=0):
    X, y = make_blobs(n_samples=n, centers=classes, n_features=4, random_state=seed, cluster_std=1.0)
    return StandardScaler().fit_transform(X), y


def _params_of(est):
    return [a.copy() for a in est.coefs_ + est.intercepts_]


def _from_the_same_weights(Ours, Theirs, X, y, **params):
    """Both estimators fitted once (max_iter=1, warm_start), then ours given scikit-learn's
    weights through the coefs_/intercepts_ setters: the next warm fit starts from one point."""
    params = dict(params, warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = Theirs(**params).fit(X, y)
        ours = Ours(**params).fit(X, y)
    ours.coefs_ = theirs.coefs_
    ours.intercepts_ = theirs.intercepts_
    return ours, theirs


# ------------------------------------------------------------------ lbfgs


@needs_sklearn_mlp_1_7
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression", "weighted"])
def test_lbfgs_takes_scikit_learns_steps_in_float64(kind):
    X, y = _digits()
    weights = None
    if kind == "binary":
        y = y % 2
    if kind == "weighted":
        weights = np.random.default_rng(0).uniform(0.2, 3.0, size=len(X))
    classifier = kind != "regression"
    if not classifier:
        y = X[:, 10:20].sum(axis=1)
    Ours, Theirs = (MLPClassifier, neural_network.MLPClassifier) if classifier else \
        (MLPRegressor, neural_network.MLPRegressor)
    ours, theirs = _from_the_same_weights(Ours, Theirs, X, y, hidden_layer_sizes=(10,), solver="lbfgs",
                                          activation="tanh", alpha=1e-2, random_state=0)
    for est in (ours, theirs):
        est.set_params(max_iter=25)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y, sample_weight=weights)
    assert ours.network_.dtype == np.float64
    assert ours.n_iter_ == theirs.n_iter_ == 25
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-9)
    for mine, their in zip(_params_of(ours), _params_of(theirs)):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)


def test_lbfgs_warns_like_scikit_learn_when_max_iter_or_max_fun_runs_out():
    X, y = _digits(200)
    for limits in ({"max_iter": 3}, {"max_fun": 4}):
        ours = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, **limits)
        theirs = neural_network.MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, **limits)
        with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
            ours.fit(X, y)
        with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
            theirs.fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_ <= limits.get("max_iter", 4)


def test_lbfgs_fits_and_has_no_partial_fit_as_in_scikit_learn():
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=100, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    for est in (clf, MLPClassifier(solver="lbfgs"), MLPRegressor(solver="lbfgs"),
                neural_network.MLPClassifier(solver="lbfgs")):
        assert not hasattr(est, "partial_fit")
        with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
            est.partial_fit(X, y)
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit") and hasattr(MLPRegressor(), "partial_fit")


# ------------------------------------------------------------------ sgd's learning-rate schedules


@pytest.mark.parametrize("learning_rate, extra", [
    ("constant", {}),
    ("invscaling", {"power_t": 0.3}),
    # tol no loss can beat, patience 1: the rule fires every second epoch and divides the rate by 5.
    ("adaptive", {"tol": 1e9, "n_iter_no_change": 1}),
])
def test_sgd_learning_rate_schedules_are_scikit_learns(learning_rate, extra):
    X, y = _blobs(n=60)
    params = dict(hidden_layer_sizes=(7,), activation="tanh", solver="sgd", learning_rate=learning_rate,
                  learning_rate_init=0.2, momentum=0.5, shuffle=False, batch_size=20, alpha=1e-3,
                  random_state=0, **extra)
    ours, theirs = _from_the_same_weights(MLPClassifier, neural_network.MLPClassifier, X, y, **params)
    for est in (ours, theirs):
        est.set_params(max_iter=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours._learning_rate, theirs._optimizer.learning_rate, rtol=1e-12)
    for mine, their in zip(_params_of(ours), _params_of(theirs)):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)
    if learning_rate == "adaptive":
        assert ours._learning_rate < params["learning_rate_init"]


def test_adaptive_stops_once_the_rate_is_tiny_as_scikit_learn_does():
    X, y = _blobs(n=40)
    params = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive", learning_rate_init=1e-5,
                  tol=1e9, n_iter_no_change=1, max_iter=100, random_state=0)
    ours = MLPClassifier(**params).fit(X, y)
    theirs = neural_network.MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 100  # 1e-5 / 5 = 2e-6, / 5 = 4e-7 <= 1e-6: stop


def _sorted_sets(message):
    """The message with each {...} choice list sorted: scikit-learn prints a set's own order."""
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)


@pytest.mark.parametrize("Ours, Theirs", [(MLPClassifier, neural_network.MLPClassifier),
                                          (MLPRegressor, neural_network.MLPRegressor)], ids=["classifier", "regressor"])
@pytest.mark.parametrize("param, value", [
    ("alpha", -1.0), ("alpha", np.nan), ("alpha", np.inf), ("batch_size", 0), ("batch_size", "big"),
    ("learning_rate", "optimal"), ("learning_rate_init", 0.0), ("power_t", -0.5), ("max_iter", 1.5),
    ("shuffle", "yes"), ("random_state", "seed"), ("tol", -1.0), ("verbose", -1), ("warm_start", 1),
    ("momentum", 1.5), ("nesterovs_momentum", None), ("early_stopping", "no"), ("validation_fraction", 1.0),
    ("beta_1", 1.0), ("beta_2", -0.1), ("epsilon", 0.0), ("n_iter_no_change", 0), ("n_iter_no_change", -np.inf),
    ("max_fun", 0),
])
def test_bad_parameters_raise_scikit_learns_error_word_for_word(Ours, Theirs, param, value):
    # Scripts catch InvalidParameterError (a ValueError and a TypeError) and match its text.
    X, y = _blobs(n=20)
    errors = []
    for Estimator in (Ours, Theirs):
        with pytest.raises(InvalidParameterError) as info:
            Estimator(**{param: value}).fit(X, y)
        errors.append(_sorted_sets(str(info.value)))
    assert errors[0] == errors[1]
    assert errors[0].startswith(f"The '{param}' parameter of {Ours.__name__} must be ")


def test_the_wider_choices_keep_scikit_learns_wording():
    X, y = _blobs(n=20)
    with pytest.raises(InvalidParameterError) as info:
        MLPRegressor(loss="absolute_error").fit(X, y)
    assert isinstance(info.value, ValueError)
    assert _sorted_sets(str(info.value)) == ("The 'loss' parameter of MLPRegressor must be a str among "
                                             "{'poisson', 'squared_error'}. Got 'absolute_error' instead.")
    with pytest.raises(InvalidParameterError) as info:
        MLPClassifier(solver="newton").fit(X, y)
    assert _sorted_sets(str(info.value)) == ("The 'solver' parameter of MLPClassifier must be a str among "
                                             "{'adam', 'adamw', 'lbfgs', 'rmsprop', 'sgd'}. Got 'newton' instead.")


def test_n_iter_no_change_inf_turns_the_tol_rule_off():
    X, y = _blobs(n=50)
    params = dict(hidden_layer_sizes=(5,), tol=1e9, n_iter_no_change=np.inf, max_iter=12, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(12\) reached"):
        ours = MLPClassifier(**params).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        theirs = neural_network.MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 12


# ------------------------------------------------------------------ coefs_, dtype, partial_fit, pickle


@no_convergence_warning
def test_coefs_and_intercepts_are_assignable_and_used_by_predict():
    X, y = _blobs(n=50)
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, y)
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]
    clf.intercepts_ = [np.zeros(6), np.array([0.0, 5.0, 0.0])]
    assert (clf.predict(X) == 1).all()
    np.testing.assert_array_equal(clf.network_.biases[1], [0.0, 5.0, 0.0])
    before = _params_of(clf)
    with pytest.raises(ValueError, match=r"coefs_\[1\] must be a real array of shape \(6, 3\)"):
        clf.coefs_ = [np.ones((4, 6)), np.ones((6, 4))]
    with pytest.raises(ValueError, match="intercepts_ must be a list of 2 arrays"):
        clf.intercepts_ = [np.zeros(6)]
    for now, then in zip(_params_of(clf), before):  # a refused assignment wrote nothing
        np.testing.assert_array_equal(now, then)


@no_convergence_warning
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_float32_input_trains_in_float32_and_anything_else_in_float64(solver):
    X, y = _blobs(n=60)
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=20, random_state=0)
    cases = ((X.astype(np.float32), np.float32), (X, np.float64), ((X * 10).astype(np.int64), np.float64))
    for X_in, expected in cases:
        ours = MLPClassifier(**params).fit(X_in, y)
        assert ours.network_.dtype == expected and ours.coefs_[0].dtype == expected
        assert ours.predict_proba(X_in).dtype == expected
        if solver != "lbfgs":  # scikit-learn's lbfgs hands back SciPy's float64 vector as coefs_, whatever X
            theirs = neural_network.MLPClassifier(**params).fit(X_in, y)
            assert theirs.coefs_[0].dtype == theirs.predict_proba(X_in).dtype == expected
    # float32 and float64 fits of the same data agree to float32 rounding (a few epochs, no chaos yet).
    reg = dict(hidden_layer_sizes=(6,), solver="sgd", max_iter=3, shuffle=False, random_state=0)
    r64 = MLPRegressor(**reg).fit(X, X.sum(axis=1))
    r32 = MLPRegressor(**reg).fit(X.astype(np.float32), X.sum(axis=1))
    for a, b in zip(_params_of(r32), _params_of(r64)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert MLPClassifier(**params, dtype="float32").fit(X, y).network_.dtype == np.float32  # fastmlp's override


@no_convergence_warning
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_partial_fit_steps_equal_fit_at_constant_rate_without_shuffling(solver, Estimator):
    X, y = _blobs(n=90)
    if Estimator is MLPRegressor:
        y = X @ np.arange(1.0, 5.0)
    params = dict(hidden_layer_sizes=(6,), solver=solver, learning_rate="constant", batch_size=25,
                  shuffle=False, random_state=0, tol=0.0)
    whole = Estimator(**params, max_iter=5).fit(X, y)
    pieces = Estimator(**params)
    extra = {"classes": np.unique(y)} if Estimator is MLPClassifier else {}
    for _ in range(5):
        pieces.partial_fit(X, y, **extra)
    for a, b in zip(_params_of(whole), _params_of(pieces)):
        np.testing.assert_array_equal(a, b)
    assert whole.loss_curve_ == pieces.loss_curve_


@no_convergence_warning
@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_a_pickled_partially_fitted_estimator_continues_bit_for_bit(how):
    X, y = _digits(300)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, warm_start=how == "warm_start", random_state=0)

    def more(est):
        if how == "partial_fit":
            est.partial_fit(X, y, classes=np.arange(10))
        else:
            est.fit(X, y)

    more(clf)
    more(clf)
    twin = pickle.loads(pickle.dumps(clf))
    for _ in range(3):
        more(clf)
        more(twin)
    for a, b in zip(_params_of(clf), _params_of(twin)):
        np.testing.assert_array_equal(a, b)
    assert clf.loss_curve_ == twin.loss_curve_ and clf.t_ == twin.t_


# ------------------------------------------------------------------ errors in scikit-learn's words


@needs_sklearn_mlp_1_7
def test_validation_set_too_small_in_scikit_learns_words():
    # (A stratified classifier split fails earlier, in train_test_split, as test_stratified... shows.)
    X, _ = _blobs(n=30)
    y = X.sum(axis=1)
    for Estimator in (MLPRegressor, neural_network.MLPRegressor):
        with pytest.raises(ValueError, match=r"The validation set is too small\. Increase 'validation_fraction'"):
            Estimator(early_stopping=True, validation_fraction=0.01).fit(X, y)


def test_stratified_split_with_a_lone_class_member_fails_as_in_scikit_learn():
    X, _ = _blobs(n=30, classes=2)
    y = np.array([0] * 29 + [1])
    messages = []
    for Estimator in (MLPClassifier, neural_network.MLPClassifier):
        with pytest.raises(ValueError, match="The least populated class") as info:
            Estimator(early_stopping=True).fit(X, y)
        messages.append(str(info.value))
    # scikit-learn stratifies on its binarized labels (it names them 'True'), fastmlp on y's own.
    for message in messages:
        assert message.startswith("The least populated class") and "only 1 member, which is too few" in message


# ------------------------------------------------------------------ reliability


@no_convergence_warning
def test_a_failed_refit_leaves_the_fitted_estimator_untouched():
    X, y = _digits(300)
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=30, random_state=0).fit(X, y)
    score, params = clf.score(X, y), _params_of(clf)
    attributes = {k: v for k, v in vars(clf).items() if k.endswith("_") and not k.startswith("_")}
    assert score > 0.9
    with pytest.raises(ValueError, match="test_size = 1 should be greater or equal to the number of classes"):
        clf.set_params(early_stopping=True, validation_fraction=0.001).fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="sample_weight must have shape"):  # X of another width: n_features_in_ set
        clf.set_params(early_stopping=False).fit(X[:50, :10], y[:50], sample_weight=np.ones(3))
    assert clf.score(X, y) == score and clf.n_features_in_ == 64
    for now, then in zip(_params_of(clf), params):
        np.testing.assert_array_equal(now, then)
    assert {k: v for k, v in vars(clf).items() if k.endswith("_") and not k.startswith("_")}.keys() == attributes.keys()
    assert clf.network_ is attributes["network_"] and clf.loss_curve_ == attributes["loss_curve_"]


def test_divergence_is_reported_in_the_estimators_terms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5))
    y = X @ rng.normal(size=5)
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e6, momentum=0.0, random_state=0)
    with pytest.raises(fastmlp.TrainingDivergedError, match=r"learning_rate_init \(now 1e\+06\)") as info:
        reg.fit(X, y)
    assert "on_nonfinite" not in str(info.value) and "500000" not in str(info.value)
    # Caught as scikit-learn's users catch it too: a ValueError opening with its words.
    assert isinstance(info.value, ValueError) and str(info.value).startswith("Solver produced non-finite parameter")
    assert all(np.isfinite(a).all() for a in _params_of(reg))  # rolled back to the last finite state


@no_convergence_warning
def test_warm_start_one_iteration_at_a_time_equals_one_fit():
    # Stateless steps (sgd without momentum, constant rate, no shuffling): each warm fit's new
    # optimizer changes nothing, so k fits of one epoch are one fit of k, as in scikit-learn.
    X, y = _blobs(n=70)
    params = dict(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, shuffle=False, batch_size=16,
                  random_state=0, tol=0.0)
    whole = MLPClassifier(**params, max_iter=4).fit(X, y)
    steps = MLPClassifier(**params, max_iter=1, warm_start=True)
    for _ in range(4):
        steps.fit(X, y)
    for a, b in zip(_params_of(whole), _params_of(steps)):
        np.testing.assert_array_equal(a, b)
    assert whole.loss_curve_ == steps.loss_curve_ and whole.t_ == steps.t_


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_the_same_random_state_starts_from_scikit_learns_weights(activation):
    # scikit-learn's initialisation, drawn in its order: lbfgs in float64 then follows its path
    # without copying any weight, and the early-stopping split takes the same rows.
    X, y = _digits(300)
    params = dict(hidden_layer_sizes=(12, 7), activation=activation, solver="lbfgs", max_iter=15, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**params).fit(X, y)
        theirs = neural_network.MLPClassifier(**params).fit(X, y)
    for mine, their in zip(_params_of(ours), _params_of(theirs)):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)
