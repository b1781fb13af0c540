"""fastmlp.convert: networks from fitted scikit-learn MLPs, from and to torch.nn.Sequential.

The oracle is the other library's own forward pass: every conversion is checked by
predicting with both, and the torch round trip by comparing the parameters bit for bit."""

import sys
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.convert import from_sklearn, from_torch, to_torch
from tests.helpers import needs_sklearn_mlp_1_7

DTYPES = ["float32", "float64"]
# Both libraries compute the same products in different orders.
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-11, atol=1e-13)}


def _data(dtype, n=64, n_features=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_features)).astype(dtype)


# ---------------------------------------------------------------------- scikit-learn


@pytest.fixture(scope="module")
def sklearn_nn():
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return MLPClassifier, MLPRegressor


def _fit(estimator, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # a few iterations suffice: only the weights matter
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_sklearn_multiclass(sklearn_nn, dtype, activation):
    MLPClassifier, _ = sklearn_nn
    X = _data(dtype)
    y = np.array(["cat", "dog", "emu"])[np.arange(len(X)) % 3]
    mlp = _fit(MLPClassifier(hidden_layer_sizes=(9, 7), activation=activation, max_iter=30, random_state=0), X, y)
    net = from_sklearn(mlp)
    assert net.dtype == np.dtype(dtype) and net.output == "softmax"
    assert net.layer_sizes == [6, 9, 7, 3]
    assert net.activation == {"logistic": "sigmoid"}.get(activation, activation)
    np.testing.assert_allclose(net.predict_proba(X), mlp.predict_proba(X), **TOL[dtype])
    # The network predicts indices into mlp.classes_.
    np.testing.assert_array_equal(mlp.classes_[net.predict(X)], mlp.predict(X))
    for W, c, b, i in zip(net.weights, mlp.coefs_, net.biases, mlp.intercepts_):
        np.testing.assert_array_equal(W, c.T)
        np.testing.assert_array_equal(b, i)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sklearn_binary_is_one_sigmoid_unit(sklearn_nn, dtype):
    MLPClassifier, _ = sklearn_nn
    X = _data(dtype)
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    mlp = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=40, random_state=0), X, y)
    net = from_sklearn(mlp)
    assert net.output == "sigmoid" and net.layer_sizes == [6, 8, 1]
    proba = net.predict_proba(X)
    assert proba.shape == (len(X), 1)
    np.testing.assert_allclose(proba[:, 0], mlp.predict_proba(X)[:, 1], **TOL[dtype])
    np.testing.assert_array_equal(mlp.classes_[net.predict(X)], mlp.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sklearn_multilabel(sklearn_nn, dtype):
    MLPClassifier, _ = sklearn_nn
    X = _data(dtype)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.5, X[:, 2] + X[:, 3] > 0], axis=1).astype(int)
    mlp = _fit(MLPClassifier(hidden_layer_sizes=(10,), activation="tanh", max_iter=60, random_state=0), X, Y)
    net = from_sklearn(mlp)
    assert net.output == "sigmoid" and net.n_outputs == 3
    np.testing.assert_allclose(net.predict_proba(X), mlp.predict_proba(X), **TOL[dtype])
    np.testing.assert_array_equal(net.predict(X), mlp.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_targets", [1, 2])
def test_sklearn_regressor(sklearn_nn, dtype, n_targets):
    _, MLPRegressor = sklearn_nn
    X = _data(dtype)
    y = X[:, :n_targets] * 2.0 - X[:, -n_targets:]
    if n_targets == 1:
        y = y[:, 0]
    mlp = _fit(MLPRegressor(hidden_layer_sizes=(12, 5), activation="relu", max_iter=30, random_state=0), X, y)
    net = from_sklearn(mlp)
    assert net.output == "identity" and net.n_outputs == n_targets
    pred = net.predict(X)
    assert pred.shape == mlp.predict(X).shape
    np.testing.assert_allclose(pred, mlp.predict(X), **TOL[dtype])


@needs_sklearn_mlp_1_7
@pytest.mark.parametrize("dtype", DTYPES)
def test_sklearn_poisson_regressor_becomes_a_poisson_output(sklearn_nn, dtype):
    _, MLPRegressor = sklearn_nn
    X = _data(dtype)
    y = np.abs(X[:, 0])
    mlp = _fit(MLPRegressor(loss="poisson", hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, y)
    assert mlp.out_activation_ == "exp"
    net = from_sklearn(mlp)
    assert net.output == "poisson"
    np.testing.assert_allclose(net.predict(X), mlp.predict(X), **TOL[dtype])
    with pytest.raises(ValueError, match="poisson \\(regression\\) output, so use predict"):
        net.predict_proba(X)


def test_sklearn_dtype_override(sklearn_nn):
    MLPClassifier, _ = sklearn_nn
    X = _data("float64")
    mlp = _fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=10, random_state=0), X, np.arange(len(X)) % 3)
    net = from_sklearn(mlp, dtype="float32")
    assert net.dtype == np.float32
    np.testing.assert_array_equal(net.weights[0], mlp.coefs_[0].T.astype(np.float32))
    np.testing.assert_allclose(net.predict_proba(X), mlp.predict_proba(X), rtol=1e-4, atol=1e-5)


def test_sklearn_errors(sklearn_nn):
    MLPClassifier, _ = sklearn_nn
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(NotFittedError, match="not fitted"):
        from_sklearn(MLPClassifier(hidden_layer_sizes=(4,)))
    with pytest.raises(TypeError, match=r"MLPClassifier or MLPRegressor, got .*LogisticRegression"):
        from_sklearn(LogisticRegression())
    X = _data("float64")
    mlp = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, np.arange(len(X)) % 3)
    mlp.activation = "softsign"
    with pytest.raises(ValueError, match=r"mlp\.activation must be one of .* got 'softsign'"):
        from_sklearn(mlp)
    mlp.activation = "relu"
    with pytest.raises(ValueError, match="dtype must be one of"):
        from_sklearn(mlp, dtype="int32")


def test_sklearn_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.neural_network", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[sklearn\]"'):
        from_sklearn(object())


# ---------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_dtype(torch, dtype):
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def _torch_forward(torch, sequential, X):
    with torch.no_grad():
        return sequential.eval()(torch.from_numpy(X)).numpy()


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


TORCH_ACTIVATIONS = {
    "relu": lambda nn: nn.ReLU(),
    "leaky_relu": lambda nn: nn.LeakyReLU(),
    "elu": lambda nn: nn.ELU(),
    "gelu": lambda nn: nn.GELU(),
    "silu": lambda nn: nn.SiLU(),
    "tanh": lambda nn: nn.Tanh(),
    "sigmoid": lambda nn: nn.Sigmoid(),
    "softplus": lambda nn: nn.Softplus(),
    "identity": lambda nn: nn.Identity(),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(TORCH_ACTIVATIONS))
def test_from_torch_each_activation(torch, dtype, name):
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(6, 11), TORCH_ACTIVATIONS[name](nn), nn.Linear(11, 4)).to(_torch_dtype(torch, dtype))
    net = from_torch(seq)
    assert net.activation == name and net.output == "softmax" and net.dtype == np.dtype(dtype)
    assert net.layer_sizes == [6, 11, 4]
    X = _data(dtype) * 3  # wide enough to reach both sides of every kink
    np.testing.assert_allclose(net.predict_proba(X), _softmax(_torch_forward(torch, seq, X).astype(np.float64)),
                               **TOL[dtype])
    np.testing.assert_array_equal(net.weights[1], seq[2].weight.detach().numpy())
    np.testing.assert_array_equal(net.biases[0], seq[0].bias.detach().numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_torch_output_modules(torch, dtype):
    nn = torch.nn
    torch.manual_seed(1)
    body = [nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)]
    X = _data(dtype)
    for tail, output, expect in [
        (nn.Softmax(dim=1), "softmax", lambda out: out),
        (nn.Softmax(dim=-1), "softmax", lambda out: out),
        (nn.LogSoftmax(dim=1), "softmax", np.exp),
        (nn.Sigmoid(), "sigmoid", lambda out: out),
    ]:
        seq = nn.Sequential(*body, tail).to(_torch_dtype(torch, dtype))
        net = from_torch(seq)
        assert net.output == output and net.activation == "tanh"
        np.testing.assert_allclose(net.predict_proba(X), expect(_torch_forward(torch, seq, X)), **TOL[dtype])
    seq = nn.Sequential(*body, nn.Identity()).to(_torch_dtype(torch, dtype))
    net = from_torch(seq)
    assert net.output == "identity"
    np.testing.assert_allclose(net.predict(X), _torch_forward(torch, seq, X), **TOL[dtype])
    # Without an output module the argument decides (softmax by default); with one, it must agree.
    assert from_torch(nn.Sequential(*body)).output == "softmax"
    assert from_torch(nn.Sequential(*body), output="identity").output == "identity"
    assert from_torch(nn.Sequential(*body, nn.Sigmoid()), output="sigmoid").output == "sigmoid"
    with pytest.raises(ValueError, match=r"output='softmax' contradicts module 3 \(Sigmoid\(\)\)"):
        from_torch(nn.Sequential(*body, nn.Sigmoid()), output="softmax")
    with pytest.raises(ValueError, match="output must be one of"):
        from_torch(nn.Sequential(*body), output="tanh")


def test_from_torch_structure(torch):
    nn = torch.nn
    torch.manual_seed(2)
    seq = nn.Sequential(
        nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(7, 6),                       # straight into the next Linear: identity
        nn.Linear(6, 4), nn.Dropout(0.1),      # dropout without an activation: identity
        nn.Linear(4, 9), nn.GELU(), nn.Dropout(0.0),
        nn.Linear(9, 2),
    ).double()
    net = from_torch(seq)
    assert net.layer_sizes == [5, 7, 6, 4, 9, 2]
    assert net.activations == ["relu", "identity", "identity", "gelu"]
    assert net.dropout == [0.3, 0.0, 0.1, 0.0]
    np.testing.assert_array_equal(net.biases[0], np.zeros(7))
    X = _data("float64", n_features=5)
    np.testing.assert_allclose(net.predict_proba(X), _softmax(_torch_forward(torch, seq, X)), **TOL["float64"])


def test_from_torch_dtypes(torch):
    nn = torch.nn
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert from_torch(seq).dtype == np.float32
    assert from_torch(seq, dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(from_torch(seq, dtype="float64").weights[0],
                                  seq[0].weight.detach().numpy().astype(np.float64))
    mixed = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2).double())
    with pytest.raises(ValueError, match=r"float32.*float64.*pass dtype="):
        from_torch(mixed)
    assert from_torch(mixed, dtype="float64").dtype == np.float64
    half = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(torch.bfloat16)
    with pytest.raises(ValueError, match="bfloat16"):
        from_torch(half)
    net = from_torch(half, dtype="float32")
    np.testing.assert_array_equal(net.weights[0], half[0].weight.detach().float().numpy())


@pytest.mark.parametrize("modules, index, what", [
    (lambda nn: [nn.Linear(3, 4), nn.ReLU6(), nn.Linear(4, 2)], 1, "ReLU6"),
    (lambda nn: [nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2)], 1, "negative_slope=0.01"),
    (lambda nn: [nn.Linear(3, 4), nn.ELU(alpha=0.5), nn.Linear(4, 2)], 1, "alpha=1.0"),
    (lambda nn: [nn.Linear(3, 4), nn.GELU(approximate="tanh"), nn.Linear(4, 2)], 1, "approximate"),
    (lambda nn: [nn.Linear(3, 4), nn.Softplus(beta=2), nn.Linear(4, 2)], 1, "beta=1"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 2)], 2, "one activation per layer"),
    (lambda nn: [nn.Linear(3, 4), nn.Dropout(0.2), nn.ReLU(), nn.Linear(4, 2)], 2, "before its Dropout"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.2), nn.Dropout(0.1), nn.Linear(4, 2)], 3, "second Dropout"),
    (lambda nn: [nn.Linear(3, 4), nn.AlphaDropout(0.2), nn.Linear(4, 2)], 1, "AlphaDropout"),
    (lambda nn: [nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)], 0, "must start with nn.Linear"),
    (lambda nn: [nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)], 1, "BatchNorm1d"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU()], 3, "after the last Linear"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Dropout(0.1)], 3, "after the last Linear"),
    (lambda nn: [nn.Linear(3, 4), nn.Linear(4, 2), nn.Softmax(dim=1), nn.Identity()], 3, "at most one output"),
    (lambda nn: [nn.Linear(3, 4), nn.Linear(4, 2), nn.Softmax(dim=0)], 2, "dim=1 or dim=-1"),
    (lambda nn: [nn.Linear(3, 4), nn.Linear(4, 2), nn.Tanh(), nn.Softmax(dim=1)], 2, "after the last Linear"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)], 2, "takes 5 features but the Linear before it gives 4"),
])
def test_from_torch_unsupported_modules_are_named(torch, modules, index, what):
    seq = torch.nn.Sequential(*modules(torch.nn))
    with pytest.raises(ValueError, match=rf"module {index} \(") as info:
        from_torch(seq)
    assert what in str(info.value)


def test_from_torch_bad_arguments(torch):
    nn = torch.nn
    with pytest.raises(TypeError, match=r"torch\.nn\.Sequential.*got torch\.nn\.modules\.linear\.Linear"):
        from_torch(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"at least one nn\.Linear"):
        from_torch(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="p in \\[0, 1\\)"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(1.0), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="softmax output needs at least 2 classes"):
        from_torch(nn.Sequential(nn.Linear(3, 1)))
    with pytest.raises(TypeError, match=r"fastmlp\.Network"):
        to_torch(nn.Sequential(nn.Linear(3, 1)))


def _random_network(dtype, output, seed=3):
    net = fastmlp.Network([7, 12, 9, 5, 3 if output != "sigmoid" else 2],
                          activation=["gelu", "softplus", "leaky_relu"], dtype=dtype, seed=seed,
                          output=output, dropout=[0.2, 0.0, 0.5])
    rng = np.random.default_rng(seed)
    for b in net.biases:  # nonzero biases, so that a lost bias cannot pass
        b[...] = rng.standard_normal(b.shape)
    return net


def _assert_same_network(a, b):
    assert (a.layer_sizes, a.activations, a.activation, a.output, a.dropout, a.dtype) == \
           (b.layer_sizes, b.activations, b.activation, b.output, b.dropout, b.dtype)
    for x, y in zip(a.weights + a.biases, b.weights + b.biases):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))  # bit for bit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_round_trip_is_bitwise(torch, dtype, output):
    net = _random_network(dtype, output)
    seq = to_torch(net)
    assert isinstance(seq[-1], torch.nn.Linear)  # the output belongs to the loss
    assert all(p.dtype == _torch_dtype(torch, dtype) for p in seq.parameters())
    _assert_same_network(from_torch(seq, output=net.output), net)
    _assert_same_network(from_torch(to_torch(net, include_output=True)), net)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_to_torch_forward_matches(torch, dtype, output):
    net = _random_network(dtype, output)
    X = _data(dtype, n_features=7)
    logits = _torch_forward(torch, to_torch(net), X).astype(np.float64)
    if output == "softmax":
        np.testing.assert_allclose(net.predict_proba(X), _softmax(logits), **TOL[dtype])
    elif output == "sigmoid":
        np.testing.assert_allclose(net.predict_proba(X), 1 / (1 + np.exp(-logits)), **TOL[dtype])
    else:
        np.testing.assert_allclose(net.predict(X), logits, **TOL[dtype])
    with_output = _torch_forward(torch, to_torch(net, include_output=True), X)
    expected = net.predict(X) if output == "identity" else net.predict_proba(X)
    np.testing.assert_allclose(with_output, expected, **TOL[dtype])


def test_to_torch_modules_and_independence(torch):
    nn = torch.nn
    net = _random_network("float32", "softmax")
    seq = to_torch(net)
    kinds = [type(m) for m in seq]
    assert kinds == [nn.Linear, nn.GELU, nn.Dropout, nn.Linear, nn.Softplus, nn.Linear, nn.LeakyReLU,
                     nn.Dropout, nn.Linear]
    assert [m.p for m in seq if isinstance(m, nn.Dropout)] == [0.2, 0.5]
    assert seq.training  # torch's default; the docstring tells to call eval()
    # Copies, not views: neither side sees the other's later updates.
    before = net.weights[0].copy()
    with torch.no_grad():
        seq[0].weight.add_(1.0)
    np.testing.assert_array_equal(net.weights[0], before)
    net.weights[1][...] = 0
    assert seq[3].weight.abs().sum() > 0
    # The Sequential trains: gradients flow to every Linear.
    X = torch.from_numpy(_data("float32", n_features=7))
    nn.CrossEntropyLoss()(seq(X), torch.zeros(len(X), dtype=torch.long)).backward()
    assert all(p.grad is not None for p in seq.parameters())


def test_no_hidden_layer(torch):
    net = fastmlp.Network([4, 3], dtype="float64", seed=0)
    seq = to_torch(net)
    assert len(seq) == 1
    _assert_same_network(from_torch(seq), net)


def test_torch_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[torch\]"'):
        from_torch(object())
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[torch\]"'):
        to_torch(fastmlp.Network([2, 2]))


def test_to_torch_refuses_the_poisson_output_module_before_importing_torch():
    net = fastmlp.Network([3, 4, 1], output="poisson", seed=0)
    with pytest.raises(ValueError, match="no exp module for a poisson output"):
        net.to_torch(include_output=True)
