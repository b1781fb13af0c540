"""gradcheck: correct gradients pass at 1e-6, a wrong block is caught in its own row, the
network's weights come back bitwise, float32 networks are checked through a float64 copy,
sampling is seeded, and bad input raises the network's own errors."""

import inspect

import numpy as np
import pytest

import fastmlp
from fastmlp.gradcheck import GradcheckReport, GradcheckRow, gradcheck


def problem(activation, dtype="float64", sizes=(5, 7, 6, 3), batch=8, seed=0):
    """A network with nonzero biases and a batch; for relu the hidden pre-activations stay
    well away from the kink at 0, where central differences are wrong by construction."""
    for attempt in range(100):
        rng = np.random.default_rng(seed + 1000 * attempt)
        net = fastmlp.Network(list(sizes), activation=activation, dtype=dtype, seed=seed + attempt)
        for b in net.biases:
            b[...] = rng.uniform(-0.5, 0.5, size=b.shape)
        X = rng.normal(size=(batch, sizes[0]))
        h, smooth = X, True
        for W, b in zip(net.weights[:-1], net.biases[:-1]):
            a = h @ W.T.astype(np.float64) + b
            smooth &= bool(np.abs(a).min() > 1e-3)
            h = np.maximum(a, 0) if activation == "relu" else np.tanh(a)
        if smooth or activation != "relu":
            return net, X, rng.integers(0, sizes[-1], size=batch)
    raise AssertionError("no smooth problem found")


def snapshot(net):
    # Not tests.helpers.snapshot: copies, not bytes, so that assert_bitwise_equal also sees the dtype (gradcheck
    # works on a float64 copy of a float32 network, which must come back float32).
    return [a.copy() for a in net.weights + net.biases]


def assert_bitwise_equal(before, net):
    for saved, now in zip(before, net.weights + net.biases):
        assert saved.dtype == now.dtype
        assert saved.tobytes() == now.tobytes()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_correct_gradients_pass(activation):
    net, X, y = problem(activation)
    report = gradcheck(net, X, y)
    assert isinstance(report, GradcheckReport)
    assert report.max_rel_error < 1e-6
    assert report.passed() and report.passed(tol=1e-6)
    assert [row.name for row in report.rows] == ["W_1", "b_1", "W_2", "b_2", "W_3", "b_3"]
    assert all(row.checked == row.size and row.sampled_indices is None for row in report.rows)
    assert report.rows[0].shape == (7, 5) and report.rows[1].shape == (7,)
    assert report.loss == pytest.approx(net.loss(X, y), rel=1e-12)


def test_target_distributions_pass():
    net, X, _ = problem("tanh")
    y = np.random.default_rng(1).dirichlet(np.ones(3), size=len(X))
    assert gradcheck(net, X, y).passed()


def test_rows_name_the_backprop_equation_of_their_block():
    net, X, y = problem("tanh")
    eq = {row.name: row.equation for row in gradcheck(net, X, y).rows}
    assert eq["W_3"] == "dW_3 = da_3^T h_2,  da_3 = (yhat - y)/B"
    assert eq["b_3"] == "db_3 = sum_b da_3,  da_3 = (yhat - y)/B"
    assert eq["W_2"] == "dW_2 = da_2^T h_1,  da_2 = (da_3 W_3) ⊙ tanh'(a_2)"
    assert eq["W_1"] == "dW_1 = da_1^T X,  da_1 = (da_2 W_2) ⊙ tanh'(a_1)"
    assert eq["b_1"] == "db_1 = sum_b da_1,  da_1 = (da_2 W_2) ⊙ tanh'(a_1)"


# Output layers other than softmax and one activation per hidden layer, once Network has them.
needs_output_layers = pytest.mark.skipif("output" not in inspect.signature(fastmlp.Network).parameters,
                                         reason="this Network has only the softmax output")


@needs_output_layers
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output, delta", [("sigmoid", "da_3 = (sigmoid(a_3) - y)/(B K)"),
                                           ("identity", "da_3 = 2 (a_3 - y)/(B K)")])
def test_other_output_layers_and_per_layer_activations(output, delta, dtype):
    rng = np.random.default_rng(5)
    net = fastmlp.Network([4, 6, 5, 3], activation=["tanh", "sigmoid"], output=output, dtype=dtype, seed=0)
    X = rng.normal(size=(7, 4))
    y = rng.integers(0, 2, size=(7, 3)) if output == "sigmoid" else rng.normal(size=(7, 3))
    before = snapshot(net)
    report = gradcheck(net, X, y)
    assert report.passed(), str(report)
    eq = {row.name: row.equation for row in report.rows}
    assert eq["W_3"].endswith(delta)
    assert eq["W_2"].endswith("sigmoid'(a_2)")
    assert eq["W_1"].endswith("tanh'(a_1)")
    assert_bitwise_equal(before, net)


@pytest.mark.parametrize("layer, block, index", [(2, "W", (4, 1)), (1, "b", (6,)), (3, "b", (0,))])
def test_a_wrong_gradient_is_caught_in_its_row(monkeypatch, layer, block, index):
    net, X, y = problem("tanh")
    right = net.gradients

    def wrong(X, y):
        loss, grads = right(X, y)
        grads = [(dW.copy(), db.copy()) for dW, db in grads]
        grads[layer - 1][0 if block == "W" else 1][index] += 1e-4
        return loss, grads

    monkeypatch.setattr(net, "gradients", wrong)
    report = gradcheck(net, X, y)
    assert not report.passed()
    by_name = {row.name: row for row in report.rows}
    bad = by_name[f"{block}_{layer}"]
    assert report.worst_row is bad
    assert bad.worst_index == index
    assert bad.max_abs_error == pytest.approx(1e-4, rel=1e-3)
    assert bad.max_rel_error > 1e-3
    assert all(row.max_rel_error < 1e-6 for row in report.rows if row is not bad)
    assert f"worst: {block}_{layer} at {index}" in str(report)


def test_gradients_of_the_wrong_shape_are_refused(monkeypatch):
    net, X, y = problem("tanh")
    right = net.gradients
    monkeypatch.setattr(net, "gradients", lambda X, y: (right(X, y)[0], [(g[0].T, g[1]) for g in right(X, y)[1]]))
    with pytest.raises(ValueError, match=r"dW_1 of shape \(5, 7\), expected \(7, 5\)"):
        gradcheck(net, X, y)


def test_weights_are_restored_bitwise():
    net, X, y = problem("tanh")
    # Values whose naive restoration (w + eps - eps) would change their bits.
    net.weights[0][0, 0] = -0.0
    net.weights[0][0, 1] = 0.1
    net.weights[1][2, 3] = 5e-324  # the smallest subnormal
    net.biases[2][1] = 1e10 / 3
    before = snapshot(net)
    gradcheck(net, X, y)
    assert_bitwise_equal(before, net)
    assert np.signbit(net.weights[0][0, 0])


def test_weights_are_restored_when_the_loss_raises(monkeypatch):
    net, X, y = problem("tanh")
    before = snapshot(net)
    calls = {"n": 0}
    real_loss = net.loss

    def flaky_loss(X, y):
        calls["n"] += 1
        if calls["n"] == 6:  # in the middle of the perturbations
            raise KeyboardInterrupt
        return real_loss(X, y)

    monkeypatch.setattr(net, "loss", flaky_loss)
    with pytest.raises(KeyboardInterrupt):
        gradcheck(net, X, y)
    assert_bitwise_equal(before, net)


def test_float32_network_is_checked_through_a_float64_copy():
    net, X, y = problem("tanh", dtype="float32")
    before = snapshot(net)
    report = gradcheck(net, X, y)
    assert report.passed() and report.max_rel_error < 1e-6
    assert report.dtype == "float32"
    assert "checked through a float64 copy" in str(report)
    assert_bitwise_equal(before, net)
    assert all(a.dtype == np.float32 for a in net.weights + net.biases)


def test_sampling_is_seeded_and_per_block():
    net, X, y = problem("tanh", sizes=(20, 30, 4), batch=4)
    first = gradcheck(net, X, y, n_checks=10, seed=3)
    again = gradcheck(net, X, y, n_checks=10, seed=3)
    other = gradcheck(net, X, y, n_checks=10, seed=4)
    assert first.rows == again.rows  # same entries, same errors
    assert [r.sampled_indices for r in first.rows] != [r.sampled_indices for r in other.rows]
    W1, b1, _W2, b2 = first.rows
    assert (W1.checked, W1.size, b1.checked, b2.checked) == (10, 600, 10, 4)
    assert b2.sampled_indices is None  # 4 entries <= 10: all checked
    assert list(W1.sampled_indices) == sorted(set(W1.sampled_indices)) and len(W1.sampled_indices) == 10
    assert all(0 <= i < 600 for i in W1.sampled_indices)
    assert first.passed()


def test_report_table_is_aligned():
    net, X, y = problem("relu", sizes=(4, 12, 3), batch=5)
    text = str(gradcheck(net, X, y))
    lines = text.splitlines()
    assert lines[0].startswith("gradcheck of Network([4, 12, 3], activation='relu', dtype='float64'")
    header, rows = lines[1], lines[2:6]
    assert header.startswith("block  shape")
    start = header.index("backprop equation")
    assert all(row[start:].startswith(("dW_", "db_")) for row in rows)
    end = header.index("checked") + len("checked")
    assert [row[:end].split()[-1] for row in rows] == ["48/48", "12/12", "36/36", "3/3"]
    assert lines[-1].startswith("max rel error ")
    assert repr(gradcheck(net, X, y)).startswith("<GradcheckReport: Network([4, 12, 3]")


def test_passed_is_false_for_nan_and_checks_tol():
    row = GradcheckRow(layer=1, block="W", shape=(2, 2), checked=4, size=4, max_abs_error=float("nan"),
                       max_rel_error=float("nan"), worst_index=(0, 0), equation="")
    ok = GradcheckRow(layer=1, block="b", shape=(2,), checked=2, size=2, max_abs_error=0.0,
                      max_rel_error=1e-9, worst_index=(0,), equation="")
    report = GradcheckReport(rows=[ok, row], network="net", dtype="float64", n_samples=1, eps=1e-6, loss=1.0)
    assert np.isnan(report.max_rel_error) and report.worst_row is row
    assert not report.passed(tol=1e10)
    with pytest.raises(ValueError, match="tol must be finite and > 0"):
        report.passed(tol=0)


def test_bad_input_raises_the_networks_errors():
    net, X, y = problem("tanh")
    with pytest.raises(ValueError, match="Network expects 5 input features"):
        gradcheck(net, X[:, :4], y)
    with pytest.raises(ValueError, match="labels must be integers in \\[0, 3\\)"):
        gradcheck(net, X, y + 3)
    with pytest.raises(ValueError, match="y has 7 labels but X has 8 samples"):
        gradcheck(net, X, y[:7])
    with pytest.raises(TypeError, match=r"needs a fastmlp\.Network"):
        gradcheck("net", X, y)
    with pytest.raises(ValueError, match="eps must be finite and > 0"):
        gradcheck(net, X, y, eps=0.0)
    with pytest.raises(ValueError, match="n_checks must be >= 1"):
        gradcheck(net, X, y, n_checks=0)
    with pytest.raises(TypeError, match="seed must be an int or None"):
        gradcheck(net, X, y, seed=1.5)


# ---------------------------------------------------------------------- sparse X (issue 16)


def sparse_problem(dtype="float64"):
    """problem()'s network on a CSR X with an empty column (W_1's column 2 then has no effect),
    an empty row, unsorted column indices and a column stored twice in one row (summed)."""
    sp = pytest.importorskip("scipy.sparse")
    net, X, y = problem("tanh", dtype=dtype, sizes=(6, 7, 3), batch=5)
    X[:, 2] = 0.0
    X[3] = 0.0
    X[np.abs(X) < 0.4] = 0.0
    dense = sp.csr_matrix(X)
    # Row 0 stored again with its columns reversed and its first value split in two halves.
    lo, hi = dense.indptr[0], dense.indptr[1]
    cols, vals = dense.indices[lo:hi][::-1], dense.data[lo:hi][::-1]
    row0_cols = np.concatenate([cols, cols[-1:]])
    row0_vals = np.concatenate([vals[:-1], vals[-1:] / 2, vals[-1:] / 2])
    indices = np.concatenate([row0_cols, dense.indices[hi:]])
    data = np.concatenate([row0_vals, dense.data[hi:]])
    indptr = np.concatenate([[0], dense.indptr[1:] + 1])
    X_sparse = sp.csr_matrix((data, indices, indptr), shape=X.shape)
    assert not X_sparse.has_sorted_indices and X_sparse.nnz == dense.nnz + 1
    np.testing.assert_array_equal(X_sparse.toarray(), X)
    return net, X_sparse, y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sparse_X_is_checked_as_its_dense_copy(dtype):
    net, X, y = sparse_problem(dtype)
    before = snapshot(net)
    sparse = gradcheck(net, X, y)
    dense = gradcheck(net, X.toarray(), y)
    assert sparse.passed() and sparse.max_rel_error < 1e-6, str(sparse)
    assert sparse.n_samples == dense.n_samples == 5
    assert sparse.loss == pytest.approx(dense.loss, rel=1e-12)
    assert [(r.name, r.checked, r.size) for r in sparse.rows] == [(r.name, r.checked, r.size) for r in dense.rows]
    for s, d in zip(sparse.rows, dense.rows):  # both only the rounding noise of the difference quotient
        assert s.max_abs_error < 1e-8 and d.max_abs_error < 1e-8, (s, d)
    assert_bitwise_equal(before, net)


def test_sparse_X_catches_a_wrong_gradient_in_a_column_no_row_touches(monkeypatch):
    net, X, y = sparse_problem()
    right = net.gradients

    def wrong(X, y):
        loss, grads = right(X, y)
        grads = [(dW.copy(), db.copy()) for dW, db in grads]
        grads[0][0][4, 2] += 1e-4  # column 2 of X is empty: the true derivative is exactly 0
        return loss, grads

    monkeypatch.setattr(net, "gradients", wrong)
    report = gradcheck(net, X, y)
    assert not report.passed()
    assert report.worst_row.name == "W_1" and report.worst_row.worst_index == (4, 2)
    assert report.worst_row.max_abs_error == pytest.approx(1e-4, rel=1e-9)
    assert all(row.max_rel_error < 1e-6 for row in report.rows if row.name != "W_1")


def test_sparse_X_with_a_bad_structure_is_refused_before_anything_runs():
    sp = pytest.importorskip("scipy.sparse")
    net, _, y = problem("tanh", sizes=(5, 7, 6, 3), batch=3)
    bad = sp.csr_matrix((3, 5))  # its arrays set directly, past scipy's own checks
    bad.indptr, bad.indices, bad.data = np.array([0, 1, 2, 2]), np.array([0, 5]), np.ones(2)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"X has a column index 5 outside \[0, 5\)"):
        gradcheck(net, bad, y)
    assert_bitwise_equal(before, net)
