"""The Network API: attributes, initialisation, agreement with the NumPy oracle, bitwise
invariance to the memory layout and batching of X and to the form of the labels, save/load
(including hostile files) and copy."""

import os

import numpy as np
import pytest

import fastmlp
from fastmlp import reference as ref

DTYPES = ["float32", "float64"]
ACTIVATIONS = ["relu", "tanh", "sigmoid", "identity"]
# Native float32 (fp32 accumulation) vs a float64 oracle on the same float32 parameters.
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def params_equal(n1, n2):
    return (len(n1.weights) == len(n2.weights)
            and all(same_bits(a, b) for a, b in zip(n1.weights + n1.biases, n2.weights + n2.biases)))


def as64(net):
    return [W.astype(np.float64) for W in net.weights], [b.astype(np.float64) for b in net.biases]


def data(n=50, d=7, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


# ---------------------------------------------------------------- description

def test_attributes():
    net = fastmlp.Network([8, 16, 3], activation="tanh", dtype="float64", seed=1)
    assert net.layer_sizes == [8, 16, 3]
    net.layer_sizes.append(99)  # a copy: the network keeps its own
    assert net.layer_sizes == [8, 16, 3]
    assert net.activation == "tanh"
    assert net.dtype == np.float64 and isinstance(net.dtype, np.dtype)
    assert net.n_params == 8 * 16 + 16 + 16 * 3 + 3
    assert (net.n_features, net.n_classes) == (8, 3)


def test_defaults():
    net = fastmlp.Network([3, 2])
    assert (net.activation, net.dtype, net.n_params) == ("relu", np.float32, 8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parameter_shapes_and_dtypes(dtype):
    net = fastmlp.Network([8, 16, 5, 3], dtype=dtype, seed=0)
    assert [W.shape for W in net.weights] == [(16, 8), (5, 16), (3, 5)]
    assert [b.shape for b in net.biases] == [(16,), (5,), (3,)]
    for a in net.weights + net.biases:
        assert a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable
    assert sum(a.size for a in net.weights + net.biases) == net.n_params


# ---------------------------------------------------------------- initialisation

@pytest.mark.parametrize("dtype", DTYPES)
def test_he_normal_init_for_relu(dtype):
    # Layer 2 has fan_out 128 != fan_in 512: using fan_out or the mean of both would show.
    net = fastmlp.Network([512, 512, 128], activation="relu", dtype=dtype, seed=0)
    for W in net.weights:
        W = W.astype(np.float64)
        std = np.sqrt(2.0 / 512)
        assert abs(W.std() / std - 1) < 0.02
        assert abs(W.mean()) < 5 * std / np.sqrt(W.size)
        # A normal has 68.3% of its mass within one std; a uniform of the same std has 57.7%.
        assert abs(np.mean(np.abs(W) < std) - 0.6827) < 0.01
        assert np.abs(W).max() > 3.5 * std  # unbounded tails, unlike a uniform (max 1.73 std)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "identity"])
def test_glorot_uniform_init(activation):
    net = fastmlp.Network([512, 256, 64], activation=activation, seed=0)
    for W, (fan_in, fan_out) in zip(net.weights, [(512, 256), (256, 64)]):
        W = W.astype(np.float64)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(W).max() <= limit * (1 + 1e-6)
        assert np.abs(W).max() > 0.99 * limit
        assert abs(W.std() / (limit / np.sqrt(3)) - 1) < 0.02
        assert abs(W.mean()) < 5 * limit / np.sqrt(3 * W.size)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_biases_start_at_zero(activation):
    net = fastmlp.Network([6, 9, 3], activation=activation, seed=4)
    assert all(np.all(b == 0) for b in net.biases)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_seed_reproducibility(dtype, activation):
    make = lambda seed: fastmlp.Network([10, 20, 4], activation=activation, dtype=dtype, seed=seed)  # noqa: E731
    assert params_equal(make(7), make(7))
    assert params_equal(make(np.int64(7)), make(7))
    a, b = make(7), make(8)
    assert not any(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))
    a, b = make(None), make(None)
    assert not np.array_equal(a.weights[0], b.weights[0])


# ---------------------------------------------------------------- prediction and the oracle

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_predict_proba_is_a_distribution_and_predict_its_argmax(dtype, activation):
    net = fastmlp.Network([7, 12, 5], activation=activation, dtype=dtype, seed=2)
    X, _ = data(200, 7, seed=1)
    P = net.predict_proba(3 * X)
    assert P.dtype == np.dtype(dtype) and P.shape == (200, 5)
    assert np.all(P >= 0) and np.all(P <= 1)
    assert np.abs(P.sum(axis=1) - 1).max() <= 8 * np.finfo(dtype).eps
    labels = net.predict(3 * X)
    assert labels.dtype == np.int64 and labels.shape == (200,)
    assert np.array_equal(labels, np.argmax(P, axis=1))
    assert len(np.unique(labels)) > 1  # the test would be weak if every row predicted the same class


def trained(dtype, activation, sizes=(7, 12, 9, 4)):
    """A network with nonzero biases and weights moved away from their initial values."""
    net = fastmlp.Network(list(sizes), activation=activation, dtype=dtype, seed=3)
    X, y = data(64, sizes[0], sizes[-1], seed=5)
    fastmlp.Trainer(net, lr=0.05, batch_size=16, seed=0).fit(X, y, epochs=2)
    return net


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_agrees_with_the_numpy_oracle(dtype, activation):
    net = trained(dtype, activation)
    assert all(np.any(b != 0) for b in net.biases)
    X, y = data(300, 7, 4, seed=9)
    Xd = X.astype(dtype).astype(np.float64)  # the oracle sees exactly the values the network sees
    W64, b64 = as64(net)

    P = net.predict_proba(X)
    P_ref = ref.predict_proba(W64, b64, activation, Xd)
    np.testing.assert_allclose(P, P_ref, **TOL[dtype])
    margin = np.sort(P_ref, axis=1)
    clear = margin[:, -1] - margin[:, -2] > 1e-4  # rows whose argmax is not a near tie
    assert clear.mean() > 0.9
    assert np.array_equal(net.predict(X)[clear], np.argmax(P_ref, axis=1)[clear])

    np.testing.assert_allclose(net.loss(X, y), ref.loss(W64, b64, activation, Xd, y), **TOL[dtype])
    assert net.accuracy(X, y) == np.mean(net.predict(X) == y)

    loss, grads = net.gradients(X, y)
    loss_ref, grads_ref = ref.gradients(W64, b64, activation, Xd, y)
    np.testing.assert_allclose(loss, loss_ref, **TOL[dtype])
    assert len(grads) == len(net.weights)
    for (dW, db), (dW_ref, db_ref), W, b in zip(grads, grads_ref, net.weights, net.biases):
        assert dW.shape == W.shape and db.shape == b.shape
        assert dW.dtype == db.dtype == np.dtype(dtype)
        scale = np.abs(dW_ref).max()
        np.testing.assert_allclose(dW, dW_ref, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * scale)
        np.testing.assert_allclose(db, db_ref, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * scale)


def test_gradients_do_not_change_the_network():
    net = trained("float32", "tanh")
    before = net.copy()
    X, y = data(30, 7, 4)
    net.gradients(X, y)
    net.loss(X, y)
    net.predict(X)
    assert params_equal(net, before)


# ---------------------------------------------------------------- bitwise invariance

def wider(X):
    X2 = np.full((X.shape[0], 2 * X.shape[1]), 7.0, dtype=X.dtype)
    X2[:, ::2] = X
    return X2[:, ::2]


def read_only(X):
    X = X.copy()
    X.setflags(write=False)
    return X


# (name, make the unusual input from a base array, the plain array it must agree with)
LAYOUTS = [
    ("fortran", np.asfortranarray, lambda X: X),
    ("strided-view", wider, lambda X: X),
    ("negative-strides", lambda X: X[::-1], lambda X: X[::-1].copy()),
    ("read-only", read_only, lambda X: X),
    ("int", lambda X: np.round(4 * X).astype(np.int32), lambda X: np.round(4 * X).astype(np.int32).astype(float)),
    ("float32", lambda X: X.astype(np.float32), lambda X: X.astype(np.float32)),
    ("float64", lambda X: X.astype(np.float64), lambda X: X.astype(np.float64)),
    ("list", lambda X: X.tolist(), lambda X: X),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,unusual,plain", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_layout_invariance_is_bitwise(dtype, name, unusual, plain):
    net = trained(dtype, "relu")
    X = data(40, 7, seed=2)[0].astype(dtype)
    given = unusual(X)
    kept = np.array(given, copy=True)
    want = net.predict_proba(np.ascontiguousarray(plain(X), dtype=dtype))
    assert same_bits(net.predict_proba(given), want)
    assert same_bits(np.asarray(given), kept)  # the input is never written to
    assert not np.array_equal(want, net.predict_proba(np.roll(X, 1, axis=0)))  # rows do matter


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_invariance_is_bitwise(dtype):
    net = trained(dtype, "tanh", sizes=(7, 33, 5))
    X = data(2600, 7, seed=4)[0].astype(dtype)  # > 2 evaluation chunks of 1024 rows
    want = net.predict_proba(X)
    for chunk in [1, 7, 100, 1023, 1024, 1025, 2599]:
        got = np.concatenate([net.predict_proba(X[i:i + chunk]) for i in range(0, len(X), chunk)])
        assert same_bits(got, want), chunk
    assert same_bits(net.predict_proba(X[1500:1501]), want[1500:1501])


# ---------------------------------------------------------------- label forms

@pytest.mark.parametrize("dtype", DTYPES)
def test_label_forms_give_the_same_loss_and_gradients(dtype):
    net = trained(dtype, "sigmoid")
    X, y = data(37, 7, 4, seed=6)
    loss, grads = net.gradients(X, y)
    acc = net.accuracy(X, y)
    for same in [y.astype(np.float64), y.astype(np.float32), y.astype(np.uint8), y.astype(np.int32), y.tolist()]:
        loss2, grads2 = net.gradients(X, same)
        assert loss2 == loss and net.loss(X, same) == net.loss(X, y) and net.accuracy(X, same) == acc
        assert all(same_bits(a, b) for g, g2 in zip(grads, grads2) for a, b in zip(g, g2))
    onehot = np.eye(4)[y]
    loss3, grads3 = net.gradients(X, onehot)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(loss3, loss, rtol=8 * eps)
    np.testing.assert_allclose(net.loss(X, onehot), net.loss(X, y), rtol=8 * eps)
    assert net.accuracy(X, onehot) == acc
    for g, g3 in zip(grads, grads3):
        for a, b in zip(g, g3):
            np.testing.assert_allclose(b, a, rtol=8 * eps, atol=8 * eps * np.abs(a).max())


def test_soft_targets_match_the_oracle():
    net = trained("float64", "tanh")
    X, _ = data(20, 7, seed=8)
    T = np.random.default_rng(1).dirichlet(np.ones(4), size=20)
    loss, grads = net.gradients(X, T)
    loss_ref, grads_ref = ref.gradients(*as64(net), "tanh", X, T)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        for a, b in zip(g, g_ref):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


# ---------------------------------------------------------------- save and load

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_save_load_round_trip_is_bitwise(tmp_path, dtype, activation):
    net = trained(dtype, activation)
    net.save(tmp_path / "model")  # numpy.savez appends the suffix
    assert os.listdir(tmp_path) == ["model.npz"]
    for path in [tmp_path / "model", tmp_path / "model.npz", str(tmp_path / "model.npz")]:
        loaded = fastmlp.Network.load(path)
        assert (loaded.layer_sizes, loaded.activation, loaded.dtype) == (net.layer_sizes, activation, net.dtype)
        assert params_equal(loaded, net)
        X = data(10, 7)[0]
        assert same_bits(loaded.predict_proba(X), net.predict_proba(X))


@pytest.fixture
def saved(tmp_path):
    """(path, arrays) of a valid model file, for crafting broken variants of it."""
    path = tmp_path / "good.npz"
    trained("float32", "relu").save(path)
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.Network.load(tmp_path / "absent.npz")


def test_model_file_error_is_a_value_error():
    assert issubclass(fastmlp.ModelFileError, ValueError)


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999])
def test_load_truncated_file(saved, tmp_path, fraction):
    path, _ = saved
    raw = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[:max(1, int(len(raw) * fraction))] if fraction else b"")
    with pytest.raises(fastmlp.ModelFileError, match=r"cut\.npz"):
        fastmlp.Network.load(cut)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_load_random_bytes(tmp_path, seed):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(seed).bytes(1000))
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.Network.load(path)


def test_load_random_bytes_inside_a_zip(saved, tmp_path):
    # Damage the middle of the file, keeping the zip directory at the end intact.
    path, _ = saved
    raw = bytearray(path.read_bytes())
    raw[200:600] = np.random.default_rng(0).bytes(400)
    bad = tmp_path / "damaged.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.Network.load(bad)


def write(tmp_path, arrays, name="crafted.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change,pattern", [
    pytest.param(lambda a: {"weights": np.zeros(3)}, r"not a fastmlp model", id="foreign-npz"),
    pytest.param(lambda a: {**a, "format": np.array("something.else")}, r"not a fastmlp model", id="other-format"),
    pytest.param(lambda a: {**a, "format_version": np.array(99)}, r"format version 99", id="future-version"),
    pytest.param(lambda a: {**a, "W0": a["W0"].T.copy()}, r"W0 has float32 shape \(7, 12\), expected float32 "
                 r"shape \(12, 7\)", id="W0-wrong-shape"),
    pytest.param(lambda a: {**a, "W0": a["W0"].astype(np.float64)}, r"W0 has float64", id="W0-wrong-dtype"),
    pytest.param(lambda a: {k: v for k, v in a.items() if k != "b1"}, r"'b1' is missing", id="missing-b1"),
    pytest.param(lambda a: {**a, "W1": np.where(np.arange(a["W1"].size).reshape(a["W1"].shape) == 5, np.nan,
                                                a["W1"]).astype(np.float32)},
                 r"W1 contains NaN", id="nan-weight"),
    pytest.param(lambda a: {**a, "b0": np.full_like(a["b0"], np.inf)}, r"b0 contains NaN or infinity", id="inf-bias"),
    pytest.param(lambda a: {**a, "layer_sizes": np.array([7, 0, 9, 4])}, r"invalid network description",
                 id="zero-layer-size"),
    pytest.param(lambda a: {**a, "activation": np.array("swish")}, r"invalid network description", id="bad-activation"),
    pytest.param(lambda a: {**a, "layer_sizes": np.array([7.0, 12.0, 9.0, 4.0])}, r"layer_sizes", id="float-sizes"),
    pytest.param(lambda a: {**a, "W0": np.array([object()] * 3, dtype=object)}, r"not a valid fastmlp model file",
                 id="pickled-W0"),
])
def test_load_inconsistent_files(saved, tmp_path, change, pattern):
    _, arrays = saved
    with pytest.raises(fastmlp.ModelFileError, match=pattern):
        fastmlp.Network.load(write(tmp_path, change(arrays)))


class _CreatesFile:
    """Unpickling this runs open(marker, "w"): a stand-in for arbitrary code in a hostile file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_pickle_payload_in_a_model_file_never_runs(saved, tmp_path):
    _, arrays = saved
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _CreatesFile(marker)
    path = write(tmp_path, {**arrays, "W0": payload, "format": payload})
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.Network.load(path)
    assert not marker.exists()
    # The payload is live: loading the file unsafely does create the marker.
    with np.load(path, allow_pickle=True) as f:
        f["W0"][0].close()
    assert marker.exists()


def test_load_file_claiming_huge_layers(saved, tmp_path):
    _, arrays = saved
    # 2**50 inputs: 16 PiB of float64, so the allocation fails at once rather than filling memory.
    path = write(tmp_path, {**arrays, "layer_sizes": np.array([2**50, 4])})
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.Network.load(path)


def test_load_error_for_garbage_does_not_advise_unpickling(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(fastmlp.ModelFileError) as info:
        fastmlp.Network.load(path)
    assert "allow_pickle" not in str(info.value) and "pickle.load" not in str(info.value)


def test_save_of_non_finite_weights_fails_early_or_round_trips(tmp_path):
    net = fastmlp.Network([3, 4, 2], seed=0)
    net.weights[0][0, 0] = np.nan
    try:
        net.save(tmp_path / "nan.npz")
    except ValueError:
        return
    loaded = fastmlp.Network.load(tmp_path / "nan.npz")
    assert same_bits(loaded.weights[0], net.weights[0])


# ---------------------------------------------------------------- copy and repr

def test_copy_is_independent():
    net = trained("float32", "tanh")
    dup = net.copy()
    assert type(dup) is fastmlp.Network
    assert (dup.layer_sizes, dup.activation, dup.dtype, dup.seed) == (net.layer_sizes, "tanh", net.dtype, 3)
    assert params_equal(dup, net)
    assert not any(np.shares_memory(a, b) for a, b in zip(dup.weights + dup.biases, net.weights + net.biases))
    before = net.copy()
    dup.weights[0][...] += 1
    dup.biases[1][...] = 5
    X, y = data(32, 7, 4)
    fastmlp.Trainer(dup, seed=0).fit(X, y, epochs=1)
    assert not np.array_equal(dup.predict_proba(X), net.predict_proba(X))
    dup.weights.append(None)
    assert params_equal(net, before) and len(net.weights) == 3


def test_repr():
    net = fastmlp.Network([4, 8, 3], activation="tanh", dtype="float64", seed=7)
    text = repr(net)
    assert text == "Network([4, 8, 3], activation='tanh', dtype='float64', seed=7)"
    # With the seed in it, the repr rebuilds the same initial network.
    assert params_equal(eval(text, {"Network": fastmlp.Network}), net)
    assert repr(fastmlp.Network([2, 2])) == "Network([2, 2], activation='relu', dtype='float32', seed=None)"
