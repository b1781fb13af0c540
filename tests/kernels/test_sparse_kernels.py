"""The first layer over sparse rows (cpp/fastmlp/sparse.hpp) through the native whole-network calls:
forward, the weight gradient the dense optimizers step on, and the plain-SGD step that writes only
the touched columns, each against the dense calls on the densified rows (float32 and float64,
every kernel path), and bitwise across thread counts."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp._sparse import CsrRows
from fastmlp.reference import gradients as oracle_gradients

DTYPES = ["float32", "float64"]
TOL = {"float32": {"rtol": 2e-5, "atol": 2e-6}, "float64": {"rtol": 1e-12, "atol": 1e-14}}


def random_csr(rng, n_rows, n_cols, per_row, dtype, duplicates=True, empty_rows=True):
    """CsrRows with unsorted indices, repeated columns in some rows, stored zeros and empty rows."""
    indptr, indices, data = [0], [], []
    for i in range(n_rows):
        k = 0 if (empty_rows and i % 7 == 3) else int(rng.integers(1, 2 * per_row))
        cols = rng.integers(0, n_cols, size=k)
        if duplicates and k > 1 and i % 3 == 0:
            cols[-1] = cols[0]  # a repeated column: its values add up
        vals = rng.standard_normal(k)
        if k > 2 and i % 5 == 0:
            vals[1] = 0.0  # a stored zero
        indices.extend(cols.tolist())
        data.extend(vals.tolist())
        indptr.append(len(indices))
    return CsrRows(np.asarray(data, dtype=dtype), np.asarray(indices, dtype=np.int64),
                   np.asarray(indptr, dtype=np.int64), (n_rows, n_cols))


def make_net(sizes, dtype, activation="relu", output="softmax", seed=0):
    net = fastmlp.Network(sizes, activation=activation, output=output, dtype=dtype, seed=seed)
    # biases away from zero, so the bias term of the sparse forward is exercised too
    for b in net.biases:
        b[...] = np.linspace(-0.1, 0.1, len(b)).astype(dtype)
    return net


def labels(rng, n, k):
    return rng.integers(0, k, size=n).astype(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, output, sizes", [
    ("relu", "softmax", [40, 16, 5]),
    ("gelu", "softmax", [40, 12, 7, 3]),  # gelu keeps its pre-activation a_1
    ("tanh", "sigmoid", [40, 9, 4]),
    ("relu", "identity", [40, 3]),  # one layer: the sparse layer is the output layer
])
def test_sparse_forward_equals_dense_forward(isa, rng, dtype, activation, output, sizes):
    net = make_net(sizes, dtype, activation, output)
    X = random_csr(rng, 23, sizes[0], 4, dtype)
    ws = net._workspace(23)
    W, b = net._params()
    _, _, sparse = _core.evaluate(ws, W, b, X, want_preds=True)
    _, _, dense = _core.evaluate(ws, W, b, X.toarray(), want_preds=True)
    np.testing.assert_allclose(sparse, dense, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_forward_reads_row_slices_and_row_lists(rng, dtype):
    net = make_net([30, 8, 4], dtype)
    X = random_csr(rng, 17, 30, 3, dtype)
    ws = net._workspace(17)
    W, b = net._params()
    full = _core.evaluate(ws, W, b, X, want_preds=True)[2]
    assert _core.evaluate(ws, W, b, X[5:12], want_preds=True)[2].tobytes() == full[5:12].tobytes()
    rows = np.array([16, 0, 3, 3, 9], dtype=np.int64)
    assert _core.evaluate(ws, W, b, X.take(rows), want_preds=True)[2].tobytes() == full[rows].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [False, True])
def test_sparse_gradients_equal_dense_and_oracle(isa, rng, dtype, training):
    sizes = [50, 14, 6]
    net = fastmlp.Network(sizes, dtype=dtype, seed=1, dropout=0.25)
    X = random_csr(rng, 19, sizes[0], 5, dtype)
    y = labels(rng, 19, sizes[-1])
    ws = net._workspace(19, training=True)
    W, b = net._params()
    ls, _, gs = _core.gradients(ws, W, b, X, y, training=training, dropout_seed=7)
    ld, _, gd = _core.gradients(ws, W, b, X.toarray(), y, training=training, dropout_seed=7)
    assert ls == pytest.approx(ld, rel=TOL[dtype]["rtol"])
    for (dWs, dbs), (dWd, dbd) in zip(gs, gd):
        np.testing.assert_allclose(dWs, dWd, **TOL[dtype])
        np.testing.assert_allclose(dbs, dbd, **TOL[dtype])
    # columns no row touches have exactly zero gradient
    untouched = np.setdiff1d(np.arange(sizes[0]), X.indices)
    assert not gs[0][0][:, untouched].any()
    if not training:
        X64 = X.toarray().astype(np.float64)
        _, want = oracle_gradients([w.astype(np.float64) for w in W], [v.astype(np.float64) for v in b], "relu",
                                   X64, y)
        np.testing.assert_allclose(gs[0][0], want[0][0], rtol=1e-4 if dtype == "float32" else 1e-11, atol=1e-6)


def _step(net, X, y, optimizer):
    trainer = fastmlp.Trainer(net, optimizer=optimizer, batch_size=len(y), seed=0)
    return trainer.step(X, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw", "rmsprop"])
def test_sparse_training_step_equals_dense(isa, rng, dtype, optimizer):
    make = {"sgd": lambda: fastmlp.optim.SGD(lr=0.3), "momentum": lambda: fastmlp.optim.SGD(lr=0.1, momentum=0.9),
            "adam": lambda: fastmlp.optim.Adam(lr=0.01), "adamw": lambda: fastmlp.optim.AdamW(lr=0.01),
            "rmsprop": lambda: fastmlp.optim.RMSprop(lr=0.01)}[optimizer]
    sizes = [60, 10, 4]
    X = random_csr(rng, 16, sizes[0], 4, dtype)
    y = labels(rng, 16, sizes[-1])
    sparse_net, dense_net = make_net(sizes, dtype), make_net(sizes, dtype)
    before = sparse_net.weights[0].copy()
    opt_s, opt_d = make(), make()
    for _ in range(3):
        ls = _step(sparse_net, X, y, opt_s)
        ld = _step(dense_net, X.toarray(), y, opt_d)
        assert ls == pytest.approx(ld, rel=TOL[dtype]["rtol"])
    for a, b in zip(sparse_net.weights + sparse_net.biases, dense_net.weights + dense_net.biases):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    if optimizer == "sgd":  # the columns no batch touches keep their bits
        untouched = np.setdiff1d(np.arange(sizes[0]), X.indices)
        assert sparse_net.weights[0][:, untouched].tobytes() == before[:, untouched].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shuffled", [False, True])
def test_sparse_epoch_equals_dense_epoch(isa, rng, dtype, shuffled):
    sizes = [45, 12, 3]
    X = random_csr(rng, 37, sizes[0], 4, dtype)
    y = labels(rng, 37, sizes[-1])
    nets = [make_net(sizes, dtype), make_net(sizes, dtype)]
    for net, data in zip(nets, [X, X.toarray()]):
        fastmlp.Trainer(net, batch_size=8, shuffle=shuffled, seed=3, optimizer=fastmlp.optim.SGD(lr=0.2)).fit(
            data, y, epochs=2)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_kernels_are_bitwise_equal_across_thread_counts(threads, rng, dtype):
    sizes = [300, 96, 5]
    X = random_csr(rng, 64, sizes[0], 40, dtype)  # enough multiply-adds to wake several threads
    y = labels(rng, 64, sizes[-1])
    results = []
    for n in (1, 2, 3):
        threads(n)
        net = make_net(sizes, dtype)
        ws = net._workspace(64)
        W, b = net._params()
        preds = _core.evaluate(ws, W, b, X, want_preds=True)[2]
        grads = _core.gradients(ws, W, b, X, y)[2]
        fastmlp.Trainer(net, batch_size=16, seed=0, optimizer=fastmlp.optim.SGD(lr=0.1)).fit(X, y, epochs=1)
        results.append([preds.tobytes()] + [g.tobytes() for pair in grads for g in pair]
                       + [a.tobytes() for a in net.weights + net.biases])
    assert results[0] == results[1] == results[2]


def test_native_structure_check_refuses_what_would_read_out_of_bounds(rng):
    net = make_net([10, 4, 2], "float64")
    ws = net._workspace(4)
    W, b = net._params()
    good = random_csr(rng, 4, 10, 2, "float64", empty_rows=False)
    bad_index = CsrRows(good.data, good.indices.copy(), good.indptr, good.shape)
    bad_index.indices[0] = 10
    with pytest.raises(ValueError, match="column index 10 is outside"):
        _core.evaluate(ws, W, b, bad_index)
    bad_ptr = CsrRows(good.data, good.indices, good.indptr.copy(), good.shape)
    bad_ptr.indptr[2] = bad_ptr.indptr[3] + 1
    with pytest.raises(ValueError, match="non-decreasing"):
        _core.evaluate(ws, W, b, bad_ptr)
    past_end = CsrRows(good.data, good.indices, good.indptr.copy(), good.shape)
    past_end.indptr[-1] += 1
    with pytest.raises(ValueError, match="indptr must lie in"):
        _core.evaluate(ws, W, b, past_end)
    with pytest.raises(ValueError, match="row 7 is outside"):
        _core.evaluate(ws, W, b, good.take(np.array([7])))
