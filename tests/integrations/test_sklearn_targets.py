"""fastmlp.sklearn's target types against scikit-learn's own MLP on the same data: multilabel
indicator matrices (logistic outputs, per-label probabilities), multi-output regression, and
MLPRegressor(loss="poisson") (exp outputs, half the Poisson deviance). lbfgs in float64 takes
scikit-learn's path, so those comparisons are to rounding; one minibatch epoch from the same
weights takes scikit-learn's step."""

import inspect
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn import neural_network
from sklearn.datasets import make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from fastmlp.sklearn import MLPClassifier, MLPRegressor
from tests.helpers import needs_sklearn_mlp_1_7

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _params_of(est):
    return [a.copy() for a in est.coefs_ + est.intercepts_]


def _multilabel(n=200):
    X, Y = make_multilabel_classification(n_samples=n, n_features=8, n_classes=4, random_state=0)
    return StandardScaler().fit_transform(X), Y


def _counts(n=200, outputs=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    rates = np.exp(0.4 * X[:, :outputs] - 0.3 * X[:, 1:outputs + 1] + 0.5)
    y = rng.poisson(rates).astype(float)
    return X, (y[:, 0] if outputs == 1 else y)


def _both(Ours, Theirs, X, y, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Ours(**params).fit(X, y, sample_weight), Theirs(**params).fit(X, y, sample_weight)


def _assert_same_fit(ours, theirs):
    assert ours.n_iter_ == theirs.n_iter_
    assert (ours.out_activation_, ours.n_outputs_) == (theirs.out_activation_, theirs.n_outputs_)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-9)
    for mine, their in zip(_params_of(ours), _params_of(theirs)):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------ multilabel


@needs_sklearn_mlp_1_7
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multilabel_lbfgs_is_scikit_learns_fit(weighted):
    X, Y = _multilabel()
    weights = np.random.default_rng(1).uniform(0.2, 3.0, size=len(X)) if weighted else None
    ours, theirs = _both(MLPClassifier, neural_network.MLPClassifier, X, Y, weights, hidden_layer_sizes=(12,),
                         solver="lbfgs", activation="tanh", alpha=1e-2, max_iter=40, random_state=0)
    _assert_same_fit(ours, theirs)
    assert ours.out_activation_ == "logistic" and ours.n_outputs_ == 4
    # predict_proba: each label's own probability (rows need not sum to 1); predict thresholds at 0.5.
    proba = ours.predict_proba(X)
    np.testing.assert_allclose(proba, theirs.predict_proba(X), rtol=1e-6, atol=1e-9)
    assert proba.shape == Y.shape and not np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.predict(X), (proba > 0.5).astype(Y.dtype))
    assert ours.score(X, Y) == theirs.score(X, Y)  # subset accuracy, as for any multilabel classifier


@no_convergence_warning
def test_multilabel_partial_fit_takes_the_label_columns_as_classes_and_keeps_their_count():
    X, Y = _multilabel(120)
    for Estimator in (MLPClassifier, neural_network.MLPClassifier):  # both need classes on the first call
        with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
            Estimator().partial_fit(X, Y)
        with pytest.raises(ValueError, match="classes"):
            Estimator().partial_fit(X, Y, classes=[0, 1])
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0).partial_fit(X, Y, classes=np.arange(4))
    assert clf.n_outputs_ == 4 and list(clf.classes_) == [0, 1, 2, 3]
    clf.partial_fit(X, Y)
    with pytest.raises(ValueError, match="a 4-column label indicator matrix"):
        clf.partial_fit(X, Y[:, :3])
    with pytest.raises(ValueError, match="a 4-column label indicator matrix"):
        clf.partial_fit(X, Y[:, 0])


# ------------------------------------------------------------------ multi-output regression


@needs_sklearn_mlp_1_7
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multi_output_regression_lbfgs_is_scikit_learns_fit(weighted):
    X, Y = make_regression(n_samples=200, n_features=6, n_targets=3, noise=0.5, random_state=0)
    Y = Y / Y.std(axis=0)
    weights = np.random.default_rng(1).uniform(0.2, 3.0, size=len(X)) if weighted else None
    ours, theirs = _both(MLPRegressor, neural_network.MLPRegressor, X, Y, weights, hidden_layer_sizes=(12,),
                         solver="lbfgs", activation="tanh", alpha=1e-2, max_iter=40, random_state=0)
    _assert_same_fit(ours, theirs)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)
    assert ours.predict(X).shape == Y.shape
    np.testing.assert_allclose(ours.score(X, Y), theirs.score(X, Y), rtol=1e-9)


# ------------------------------------------------------------------ loss="poisson"


@needs_sklearn_mlp_1_7
def test_regressor_signature_is_scikit_learns():
    for Ours, Theirs in ((MLPRegressor, neural_network.MLPRegressor),
                         (MLPClassifier, neural_network.MLPClassifier)):
        ours = inspect.signature(Ours.__init__).parameters
        theirs = inspect.signature(Theirs.__init__).parameters
        assert list(ours)[:len(theirs)] == list(theirs)  # positional order too: loss comes first
        for name, parameter in theirs.items():
            assert (ours[name].default, ours[name].kind) == (parameter.default, parameter.kind), name
    assert MLPRegressor().loss == "squared_error" and MLPRegressor("poisson").loss == "poisson"


@needs_sklearn_mlp_1_7
@pytest.mark.parametrize("outputs", [1, 2])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_poisson_lbfgs_is_scikit_learns_fit(outputs, weighted):
    X, y = _counts(outputs=outputs)
    weights = np.random.default_rng(1).uniform(0.2, 3.0, size=len(X)) if weighted else None
    ours, theirs = _both(MLPRegressor, neural_network.MLPRegressor, X, y, weights, loss="poisson",
                         hidden_layer_sizes=(10,), solver="lbfgs", activation="tanh", alpha=1e-2, max_iter=30,
                         random_state=0)
    _assert_same_fit(ours, theirs)
    assert ours.out_activation_ == "exp" and ours.network_.output == "poisson"
    prediction = ours.predict(X)
    assert (prediction > 0).all() and prediction.shape == y.shape
    np.testing.assert_allclose(prediction, theirs.predict(X), rtol=1e-6)


@needs_sklearn_mlp_1_7
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("outputs", [1, 2])
def test_a_poisson_epoch_from_the_same_weights_is_scikit_learns(solver, outputs):
    X, y = _counts(n=40, outputs=outputs)
    params = dict(loss="poisson", hidden_layer_sizes=(7,), activation="tanh", solver=solver, alpha=0.3,
                  learning_rate_init=0.05, max_iter=1, shuffle=False, warm_start=True, momentum=0.0,
                  epsilon=1e-14, random_state=0)  # epsilon: see test_an_epoch_from_the_same_weights...
    theirs = neural_network.MLPRegressor(**params).fit(X, y)
    ours = MLPRegressor(**params).fit(X, y)
    ours.coefs_, ours.intercepts_ = theirs.coefs_, theirs.intercepts_
    squared_norm_before = sum(np.sum(W**2) for W in theirs.coefs_)
    theirs.fit(X, y)
    ours.fit(X, y)
    for mine, their in zip(_params_of(ours), _params_of(theirs)):
        np.testing.assert_allclose(mine, their, rtol=1e-6, atol=1e-9)
    # The loss on scikit-learn's scale; the L2 term taken after the epoch (see the estimators' Notes).
    l2_shift = 0.5 * params["alpha"] * (sum(np.sum(W**2) for W in ours.coefs_) - squared_norm_before) / len(X)
    np.testing.assert_allclose(ours.loss_, theirs.loss_ + l2_shift, rtol=1e-9)


@needs_sklearn_mlp_1_7
@no_convergence_warning
def test_poisson_minibatch_fit_is_as_good_as_scikit_learns():
    X, y = _counts(n=1000, outputs=1, seed=2)
    X_test, y_test = _counts(n=500, outputs=1, seed=3)
    params = dict(loss="poisson", hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=60, random_state=0)
    ours, theirs = _both(MLPRegressor, neural_network.MLPRegressor, X, y, **params)

    def deviance(est):
        mu = est.predict(X_test)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mean(np.where(y_test > 0, y_test * np.log(y_test / mu), 0.0) - y_test + mu)

    assert deviance(ours) < 1.1 * deviance(theirs) and deviance(theirs) < 1.1 * deviance(ours)
    assert ours.score(X_test, y_test) > 0.3


def test_poisson_refuses_negative_targets_and_a_changed_loss_before_changing_anything():
    X, y = _counts(n=60)
    with pytest.raises(ValueError, match=r'loss="poisson" needs targets y >= 0'):
        MLPRegressor(loss="poisson").fit(X, y - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(5,), max_iter=3, warm_start=True,
                           random_state=0).fit(X, y)
    before = _params_of(reg)
    with pytest.raises(ValueError, match="needs a identity output but the fitted network has a poisson output"):
        reg.set_params(loss="squared_error").fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="absolute_error").fit(X, y)
    for now, then in zip(_params_of(reg), before):
        np.testing.assert_array_equal(now, then)
    assert reg.out_activation_ == "exp"


def test_a_poisson_regressor_tells_scikit_learn_its_targets_are_positive():
    assert MLPRegressor(loss="poisson").__sklearn_tags__().target_tags.positive_only
    assert not MLPRegressor().__sklearn_tags__().target_tags.positive_only
