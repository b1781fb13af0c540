"""The prediction workspace a Network keeps between calls (Network._predict_workspace): never a
stale copy of the weights (after fit, step, partial_fit, writes into net.weights/net.biases,
assignments, load, a change of dtype), no workspace built again at a size already seen, safe
under threads, the same bits as a fresh workspace, and the messages of the fast input path."""

import pickle
import threading

import numpy as np
import pytest

from fastmlp import Network, Trainer, _core
from fastmlp import _forward as forward
from fastmlp import reference as ref
from fastmlp._validation import check_dtype


def _data(n=40, features=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, classes, n)


def _fresh(net, X):
    """The predictions of a workspace built for this call alone, from the live parameters."""
    ws = net._eval_workspace(len(X))
    _, _, preds = _core.evaluate(ws, net.weights, net.biases, np.ascontiguousarray(X, dtype=net.dtype), None, True)
    return preds


def _numpy_forward(net, X, activation="relu"):
    h = X.astype(np.float64)
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        h = ref.dense_forward(h, W.astype(np.float64), b.astype(np.float64), activation)
    z = h @ net.weights[-1].T.astype(np.float64) + net.biases[-1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _predicted(net, X):
    """predict_proba, checked against a fresh workspace (bitwise) and NumPy (closely)."""
    out = net.predict_proba(X)
    assert np.array_equal(out, _fresh(net, X))
    np.testing.assert_allclose(out, _numpy_forward(net, X), rtol=2e-4, atol=2e-6)
    return out


def test_a_second_call_builds_no_workspace():
    net = Network([12, 16, 3], seed=0)
    X, y = _data()
    for rows in (1, 32, 40):
        net.predict_proba(X[:rows])
        built = _core._workspaces_built()
        for _ in range(5):
            net.predict_proba(X[:rows])
            net.predict(X[:rows])
            net.loss(X[:rows], y[:rows])
            net.accuracy(X[:rows], y[:rows])
        assert _core._workspaces_built() == built
    built = _core._workspaces_built()
    net.predict_proba(X[:1])  # smaller than the workspace kept: it serves
    assert _core._workspaces_built() == built


def test_more_rows_than_one_chunk_build_no_workspace_the_second_time():
    # 3000 rows run in chunks of the workspace's 1024 (EVAL_CHUNK): the kept workspace holds a
    # chunk and serves every later call of any size (it was built again on each such call).
    net = Network([12, 16, 3], seed=0)
    X = np.random.default_rng(2).standard_normal((3000, 12)).astype(np.float32)
    y = np.arange(3000) % 3
    net.predict_proba(X)
    built = _core._workspaces_built()
    got = {}
    for rows in (3000, 2048, 1025, 5):
        got[rows] = net.predict_proba(X[:rows])
        net.loss(X[:rows], y[:rows])
    assert _core._workspaces_built() == built
    assert net._predict_cache[-1].max_batch == forward.EVAL_CHUNK
    for rows, out in got.items():  # the chunked calls give one fresh call's bits
        assert np.array_equal(out, _predicted(net, X[:rows]))


def test_the_kept_workspace_keeps_the_rows_per_call_of_ctrl_c(monkeypatch):
    # Ctrl-C is seen between native calls (tests/robustness/test_interrupt_inference.py): the
    # kept workspace never holds more rows than one call may take.
    monkeypatch.setattr(forward, "EVAL_MACS_PER_CALL", 100 * (12 * 16 + 16 * 3))  # 100 rows a call
    net = Network([12, 16, 3], seed=0)
    X = np.zeros((300, 12), dtype=np.float32)
    net.predict_proba(X[:10])
    net.predict_proba(X)
    assert net._predict_cache[-1].max_batch == net._eval_workspace(300).max_batch == 100


def test_predictions_follow_writes_into_the_parameters():
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    before = _predicted(net, X)
    net.weights[0][...] *= 2.0
    after_weights = _predicted(net, X)
    assert not np.array_equal(after_weights, before)
    net.biases[1][...] = [1.0, -1.0, 0.5]
    after_biases = _predicted(net, X)
    assert not np.array_equal(after_biases, after_weights)


def test_predictions_follow_assignments_of_arrays_and_lists():
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    before = _predicted(net, X)
    rng = np.random.default_rng(5)
    net.weights[1] = rng.standard_normal((3, 16)).astype(np.float32)
    one = _predicted(net, X)
    assert not np.array_equal(one, before)
    net.weights = [W + 0.25 for W in net.weights]
    net.biases = [b - 0.5 for b in net.biases]
    two = _predicted(net, X)
    assert not np.array_equal(two, one)


def test_predictions_follow_fit_and_step():
    net = Network([12, 16, 3], seed=0)
    X, y = _data()
    before = _predicted(net, X)
    trainer = Trainer(net, lr=0.5, seed=0)
    trainer.fit(X, y, epochs=2)
    fitted = _predicted(net, X)
    assert not np.array_equal(fitted, before)
    trainer.step(X[:8], y[:8])
    stepped = _predicted(net, X)
    assert not np.array_equal(stepped, fitted)
    assert net.loss(X, y) == pytest.approx(_core.evaluate(
        net._eval_workspace(len(X)), net.weights, net.biases, X, y, False)[0] / len(X), rel=0, abs=0)


def test_predictions_follow_partial_fit():
    pytest.importorskip("sklearn", reason="fastmlp.sklearn needs scikit-learn (the sklearn extra)")
    from fastmlp.sklearn import MLPClassifier

    X, y = _data()
    est = MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    est.partial_fit(X, y, classes=[0, 1, 2])
    first = _predicted(est.network_, X)
    est.partial_fit(X, y)
    second = _predicted(est.network_, X)
    assert not np.array_equal(first, second)
    assert np.array_equal(est.predict_proba(X), second)


def test_predictions_after_load_are_those_of_the_file(tmp_path):
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    net.predict_proba(X)
    net.weights[0][...] += 1.0
    net.save(tmp_path / "net.npz")
    other = Network([12, 16, 3], seed=1)
    other.predict_proba(X)
    loaded = Network.load(tmp_path / "net.npz")
    assert np.array_equal(_predicted(loaded, X), _predicted(net, X))


def test_a_change_of_dtype_builds_a_workspace_of_the_new_dtype():
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    as_float32 = _predicted(net, X)
    # The way gradcheck makes its float64 twin: the dtype and the arrays replaced.
    net._dtype = check_dtype("float64")
    net.weights = [W.astype(np.float64) for W in net.weights]
    net.biases = [b.astype(np.float64) for b in net.biases]
    as_float64 = _predicted(net, X)
    assert as_float64.dtype == np.float64
    np.testing.assert_allclose(as_float64, as_float32, rtol=1e-5, atol=1e-6)


def test_copies_and_pickles_do_not_share_the_workspace():
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    net.predict_proba(X)
    twin = net.copy()
    assert "_predict_cache" not in twin.__dict__
    twin.weights[0][...] = 0.0
    assert not np.array_equal(_predicted(twin, X), _predicted(net, X))
    restored = pickle.loads(pickle.dumps(net))
    assert "_predict_cache" not in restored.__dict__
    assert np.array_equal(_predicted(restored, X), net.predict_proba(X))


def test_threads_predicting_at_once_get_their_own_results():
    net = Network([12, 32, 4], seed=0)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((rows, 12)).astype(np.float32) for rows in (1, 7, 32, 100)]
    expected = [_fresh(net, X) for X in inputs]
    failures = []
    start = threading.Barrier(4)

    def work(i):
        start.wait()
        for n in range(60):
            k = (i + n) % len(inputs)
            if not np.array_equal(net.predict_proba(inputs[k]), expected[k]):
                failures.append((i, n))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("rows", [1, 5, 64, 1100])
def test_cached_results_are_bitwise_those_of_a_fresh_workspace(rows):
    net = Network([20, 24, 6], activation="gelu", seed=2)
    X = np.random.default_rng(rows).standard_normal((rows, 20)).astype(np.float32)
    net.predict_proba(X[: max(1, rows // 2)])  # a workspace kept from another size
    assert np.array_equal(net.predict_proba(X), _fresh(net, X))


@pytest.mark.parametrize("bad, message", [
    (np.full((2, 12), np.nan, dtype=np.float32), "X contains NaN"),
    (np.full((2, 12), np.inf, dtype=np.float32), "X contains infinity"),
    (np.zeros((2, 11), dtype=np.float32), "expects 12 input features"),
    (np.zeros((0, 12), dtype=np.float32), "0 samples"),
])
def test_the_fast_path_keeps_the_messages_for_bad_input(bad, message):
    net = Network([12, 16, 3], seed=0)
    net.predict_proba(np.zeros((2, 12), dtype=np.float32))
    for call in (net.predict_proba, net.predict, lambda X: net.loss(X, np.zeros(len(X), dtype=np.int64))):
        with pytest.raises(ValueError, match=message):
            call(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_the_fast_path_finds_one_non_finite_value_anywhere(dtype, value):
    # The native scan sums x - x in 16 lanes with a scalar tail: 3 x 13 = 39 values cover a lane
    # of every number, the tail, the largest finite value (not refused) and both zeros.
    net = Network([13, 8, 3], dtype=dtype, seed=0)
    X = np.random.default_rng(0).standard_normal((3, 13)).astype(dtype)
    X[0, 0], X[0, 1], X[1, 2] = np.finfo(dtype).max, -np.finfo(dtype).max, -0.0
    net.predict_proba(X)  # finite: accepted, and the workspace is kept for the calls below
    for position in range(X.size):
        bad = X.copy()
        bad.flat[position] = value
        with pytest.raises(ValueError, match="X contains"):
            net.predict_proba(bad)


@pytest.mark.parametrize("row", [0, 1023, 1024, 2500, 4095])
def test_the_fast_path_finds_a_non_finite_value_in_any_chunk(row):
    # 4096 rows run as one native call in chunks of 1024 rows, each scanned just before its
    # forward pass (mlp.hpp, evaluate): a NaN in the last chunk still refuses all of X, with the
    # message of the Python checks, and the workspace is not left unusable.
    net = Network([64, 32, 5], seed=0)
    X = np.random.default_rng(3).standard_normal((4096, 64)).astype(np.float32)
    want = net.predict_proba(X)
    bad = X.copy()
    bad[row, 17] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        net.predict_proba(bad)
    with pytest.raises(ValueError, match="X contains NaN"):
        net.loss(bad, np.zeros(4096, dtype=np.int64))
    assert np.array_equal(net.predict_proba(X), want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_product_that_overflows_is_not_taken_for_a_nonfinite_x(dtype):
    # The first layer's product flags NaN/inf (mlp.hpp, evaluate), and only then is X scanned:
    # a finite X whose product overflows, or a NaN written into W_1, gives non-finite predictions
    # as NumPy would, not a refusal of X.
    net = Network([6, 4, 3], dtype=dtype, seed=0)
    X = np.full((5, 6), np.finfo(dtype).max / 2, dtype=dtype)
    net.weights[0][...] = 3.0  # every product 6 x 3 x max/2: +inf
    out = net.predict_proba(X)
    assert out.shape == (5, 3) and not np.all(np.isfinite(out))
    net.weights[0][0, 0] = np.nan  # the product's column 0 is NaN; X is finite: no refusal
    assert net.predict_proba(np.ones((2, 6), dtype=dtype)).shape == (2, 3)


@pytest.mark.parametrize("activation", ["relu", "gelu"])  # gelu keeps its pre-activation: another branch
@pytest.mark.parametrize("rows", [1, 7, 300])  # one row, a few, and more than a sliver's worth of tasks
def test_a_nonfinite_x_is_refused_on_every_forward_branch(activation, rows):
    net = Network([40, 24, 3], activation=activation, seed=0)
    X = np.random.default_rng(4).standard_normal((rows, 40)).astype(np.float32)
    want = net.predict_proba(X)
    for value in (np.nan, np.inf, -np.inf):
        bad = X.copy()
        bad[rows - 1, 39] = value
        with pytest.raises(ValueError, match="X contains"):
            net.predict_proba(bad)
    assert np.array_equal(net.predict_proba(X), want)


def test_the_fast_path_keeps_the_messages_for_broken_parameters():
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    net.predict_proba(X)
    net.weights[0] = net.weights[0].astype(np.float64)
    with pytest.raises(ValueError, match=r"net.weights\[0\] must be a float32 array"):
        net.predict_proba(X)
    net.weights[0] = np.asfortranarray(net.weights[0].astype(np.float32))
    with pytest.raises(ValueError, match=r"net.weights\[0\] must be C-contiguous"):
        net.predict_proba(X)
    net.weights[0] = np.ascontiguousarray(net.weights[0])
    net.biases = tuple(net.biases)
    with pytest.raises(ValueError, match=r"net\.biases must be a list"):
        net.predict_proba(X)
    net.biases = list(net.biases)
    assert np.array_equal(_predicted(net, X), net.predict_proba(X))


def test_read_only_input_and_parameters_still_predict():
    net = Network([12, 16, 3], seed=0)
    X, _ = _data()
    X.flags.writeable = False
    for a in net.weights + net.biases:
        a.flags.writeable = False
    assert np.array_equal(net.predict_proba(X), _fresh(net, X))



@pytest.mark.parametrize("activation", ["relu", "gelu"])  # gelu keeps its pre-activation
@pytest.mark.parametrize("rows", [32, 64])
def test_a_transposed_batch_predicts_the_bits_of_its_rows(isa, activation, rows):
    # 32 and 64 rows through layers of at least twice as many units are computed as C^T = W X^T
    # (dense.hpp); each row's result is still that of the row predicted alone.
    net = Network([50, 130, 128, 10], activation=activation, seed=3)
    X = np.random.default_rng(4).standard_normal((rows, 50)).astype(np.float32)
    batch = net.predict_proba(X)
    for r in (0, 1, rows - 1):
        np.testing.assert_array_equal(net.predict_proba(X[r:r + 1]), batch[r:r + 1])
    np.testing.assert_allclose(batch, _numpy_forward(net, X, activation), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_row_predicts_the_bits_it_has_in_a_batch(isa, dtype):
    # One row takes the one-row micro-kernel; a row's result must not depend on its batch.
    net = Network([784, 128, 10], dtype=dtype, seed=3)
    X = np.random.default_rng(4).standard_normal((7, 784)).astype(dtype)
    batch = net.predict_proba(X)
    for r in range(len(X)):
        np.testing.assert_array_equal(net.predict_proba(X[r:r + 1]), batch[r:r + 1])
    np.testing.assert_allclose(batch, _numpy_forward(net, X), rtol=0, atol=1e-5)
