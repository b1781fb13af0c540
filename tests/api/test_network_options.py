"""Network options beyond the core: initialisation schemes, per-layer activations, output and
dropout settings, and how they survive copy, pickle, save and load (including files written by
the previous format version)."""

import pickle

import numpy as np
import pytest

import fastmlp


@pytest.mark.parametrize("init,check", [
    ("he_normal", lambda W, n_in, n_out: abs(W.std() / np.sqrt(2 / n_in) - 1) < 0.05),
    ("glorot_normal", lambda W, n_in, n_out: abs(W.std() / np.sqrt(2 / (n_in + n_out)) - 1) < 0.05),
    ("he_uniform", lambda W, n_in, n_out: np.abs(W).max() <= np.sqrt(6 / n_in)
     and np.abs(W).max() > 0.98 * np.sqrt(6 / n_in) and abs(W.std() / np.sqrt(2 / n_in) - 1) < 0.05),
    ("glorot_uniform", lambda W, n_in, n_out: np.abs(W).max() <= np.sqrt(6 / (n_in + n_out))
     and np.abs(W).max() > 0.98 * np.sqrt(6 / (n_in + n_out))),
])
def test_init_schemes_have_their_documented_scale(init, check):
    net = fastmlp.Network([300, 200, 100], dtype="float64", seed=0, init=init)
    for W, b in zip(net.weights, net.biases):
        n_out, n_in = W.shape
        assert check(W, n_in, n_out), (init, W.std())
        assert abs(W.mean()) < 0.01 and (b == 0).all()


def test_auto_init_picks_he_for_the_relu_family_and_glorot_otherwise():
    for act in ("relu", "leaky_relu", "elu", "gelu", "silu"):
        auto = fastmlp.Network([50, 40, 10], activation=act, seed=3)
        he = fastmlp.Network([50, 40, 10], activation=act, seed=3, init="he_normal")
        assert all((a == b).all() for a, b in zip(auto.weights, he.weights)), act
    for act in ("tanh", "sigmoid", "softplus", "identity"):
        auto = fastmlp.Network([50, 40, 10], activation=act, seed=3)
        glorot = fastmlp.Network([50, 40, 10], activation=act, seed=3, init="glorot_uniform")
        assert all((a == b).all() for a, b in zip(auto.weights, glorot.weights)), act


def test_auto_init_per_layer_follows_each_layers_activation():
    mixed = fastmlp.Network([50, 40, 30, 10], activation=["tanh", "relu"], seed=3, dtype="float64")
    # layer 1 is followed by tanh (Glorot uniform: bounded), layers 2 and 3 by relu (He normal)
    assert np.abs(mixed.weights[0]).max() <= np.sqrt(6 / 90)
    assert np.abs(mixed.weights[1]).max() > np.sqrt(6 / 70)  # a normal draw exceeds Glorot's bound
    assert abs(mixed.weights[1].std() / np.sqrt(2 / 40) - 1) < 0.1


def test_same_seed_same_network_for_every_scheme():
    for init in ("auto", "he_normal", "he_uniform", "glorot_uniform", "glorot_normal"):
        a = fastmlp.Network([8, 6, 3], seed=5, init=init)
        b = fastmlp.Network([8, 6, 3], seed=5, init=init)
        assert all(x.tobytes() == y.tobytes() for x, y in zip(a.weights, b.weights))


def options_net():
    return fastmlp.Network([5, 7, 6, 2], activation=["gelu", "elu"], output="sigmoid", dropout=[0.25, 0.0],
                           init="he_uniform", dtype="float64", seed=1)


def assert_same_network(a, b):
    assert a.layer_sizes == b.layer_sizes and a.activations == b.activations and a.activation == b.activation
    assert a.output == b.output and a.dropout == b.dropout and a.dtype == b.dtype
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.weights + a.biases, b.weights + b.biases))


def test_options_survive_copy_pickle_save_and_load(tmp_path, rng):
    net = options_net()
    X = rng.standard_normal((4, 5))
    for other in (net.copy(), pickle.loads(pickle.dumps(net))):
        assert_same_network(net, other)
        np.testing.assert_array_equal(other.predict_proba(X), net.predict_proba(X))
    net.save(tmp_path / "m.npz")
    loaded = fastmlp.Network.load(tmp_path / "m.npz")
    assert_same_network(net, loaded)
    assert loaded.init == "he_uniform"
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    single = fastmlp.Network([3, 4, 2], activation="silu", seed=0)
    single.save(tmp_path / "s.npz")
    assert fastmlp.Network.load(tmp_path / "s.npz").activation == "silu"


def test_version_1_files_still_load(tmp_path, rng):
    # A file as fastmlp 0.1 wrote it: one activation name, no output/dropout entries.
    W0, b0 = rng.standard_normal((4, 3)).astype(np.float32), np.zeros(4, np.float32)
    W1, b1 = rng.standard_normal((2, 4)).astype(np.float32), np.zeros(2, np.float32)
    np.savez(tmp_path / "v1.npz", format=np.array("fastmlp.Network"), format_version=np.array(1),
             layer_sizes=np.array([3, 4, 2]), activation=np.array("tanh"), dtype=np.array("float32"),
             W0=W0, b0=b0, W1=W1, b1=b1)
    net = fastmlp.Network.load(tmp_path / "v1.npz")
    assert net.activations == ["tanh"] and net.output == "softmax" and net.dropout == [0.0]
    np.testing.assert_array_equal(net.weights[0], W0)


@pytest.mark.parametrize("entry,value,pattern", [
    ("output", np.array("softplus"), r"output must be one of"),
    ("dropout", np.array([1.5, 0.0]), r"dropout\[0\] must lie in \[0, 1\)"),
    ("dropout", np.array([0.1]), r"dropout lists 1 probabilities"),
    ("activations", np.array(["gelu", "swish"]), r"activation must be one of"),
    ("activations", np.array([1.0, 2.0]), r"'activations' is missing or malformed"),
    ("format_version", np.array(3), r"format version 3; this fastmlp reads versions 1 to 2"),
])
def test_bad_option_entries_are_refused_at_load(tmp_path, entry, value, pattern):
    options_net().save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        data = dict(f)
    data[entry] = value
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(fastmlp.ModelFileError, match=pattern):
        fastmlp.Network.load(tmp_path / "bad.npz")


def test_repr_shows_the_non_default_options():
    r = repr(options_net())
    assert "output='sigmoid'" in r and "dropout=[0.25, 0.0]" in r and "init='he_uniform'" in r
    assert "output" not in repr(fastmlp.Network([3, 4, 2]))
