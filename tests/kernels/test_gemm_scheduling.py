"""Dynamic division of work (parallel.hpp's TaskQueue, gemm.hpp's driver): threads claim tasks as
they finish the last, so which thread runs a tile, and in what order tiles are run, varies from
run to run. These tests force the claim order through a private hook (forward, reversed,
interleaved) and check that no bit of any product, parallel loop or training run changes with
it, on 1, 2, 3 and more threads than tasks (the `threads` fixture turns off the governor that
would keep work on one thread on a loaded machine), and how that governor decides. The oracle
comparisons live in test_kernels.py."""

import time

import numpy as np
import pytest

import fastmlp
import fastmlp.optim
from fastmlp import _core
from tests.helpers import gemm_products

ORDERS = ["forward", "reversed", "interleaved"]
THREADS = [1, 2, 3, 8]

pytestmark = pytest.mark.usefixtures("isa")


@pytest.fixture
def claim_order():
    """Set the claim order inside a test; the default (forward) comes back afterwards."""
    before = _core._set_claim_order("forward")
    yield _core._set_claim_order
    _core._set_claim_order(before)


def data(rng, shape, dtype):
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8])
def test_the_hook_sets_the_order_tasks_are_claimed_in(claim_order, n):
    want = {"forward": list(range(n)), "reversed": list(range(n))[::-1],
            "interleaved": list(range(0, n, 2)) + list(range(1, n, 2))}
    for order in ORDERS:
        claim_order(order)
        assert _core._claim_sequence([n]) == [want[order]]


# Odd-numbered threads claim from a phase's back, even ones from its front (a thread then keeps
# the same part of every product from step to step): the two ends meet and every task goes once.
@pytest.mark.parametrize("n", [0, 1, 2, 5, 8])
def test_claims_from_both_ends_meet_and_take_each_task_once(claim_order, n):
    assert _core._claim_sequence([n], "b") == [list(range(n))[::-1]]
    got = _core._claim_sequence([n], "fb")[0]
    front, back = got[0::2], got[1::2]
    assert front == list(range(len(front))) and back == list(range(n - 1, n - 1 - len(back), -1))
    assert sorted(got) == list(range(n))
    for order in ORDERS:
        claim_order(order)
        assert sorted(_core._claim_sequence([n], "fbb")[0]) == list(range(n))


# Phases follow one another in one queue without a reset: a phase finished from the back, or
# from both ends, leaves the next one whole (the driver's pack and column phases per block of k).
def test_each_phase_starts_whole_after_one_claimed_from_either_end():
    phases = [3, 4, 0, 2, 5]
    for ends in ["f", "b", "fb", "bbf"]:
        got = _core._claim_sequence(phases, ends)
        assert [sorted(p) for p in got] == [list(range(n)) for n in phases], ends
    assert _core._claim_sequence([3, 2], "b") == [[2, 1, 0], [1, 0]]


def test_the_claim_hook_rejects_unknown_ends():
    with pytest.raises(ValueError, match="ends must be"):
        _core._claim_sequence([3], "x")


def test_the_hook_rejects_an_unknown_order(claim_order):
    with pytest.raises(ValueError, match="order must be"):
        claim_order("random")
    assert claim_order("forward") == "forward"  # unchanged by the refusal


# Shapes reaching every path of the driver: A read in place with one and several blocks of k
# (a task then carries its columns through every block), a packed A (da^T with a k stride of
# 520 floats: a pack phase and a column phase per block of k, with barriers), a single sliver
# (one task for any thread count), edge tiles in both directions, more threads than slivers, and
# a forward product shared by rows (an A of 600 KiB: B packed whole per block of k, then row tasks),
# and contiguous rows of A packed because a row of C is wide (1030 outputs; kPackARowOfCBytes).
# Products with fewer slivers of B than threads but many rows are shared by rows too, however
# small their A: an output layer of 10 classes over 1024 rows (one sliver), 20 outputs (two
# slivers on AVX2, one on AVX-512) over 700 rows. A forward product of 32 or 64 rows and at least
# twice as many outputs is computed transposed (dense.hpp), its X packed whole by each thread.
PRODUCT_SHAPES = [(96, 1031, 300), (300, 37, 520), (13, 40, 10), (7, 257, 33), (264, 300, 40), (500, 300, 100),
                  (20, 40, 1030), (1024, 128, 10), (700, 300, 20), (32, 784, 128), (64, 300, 130)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,IN,OUT", PRODUCT_SHAPES)
def test_products_are_bitwise_identical_in_any_claim_order(rng, threads, claim_order, dtype, B, IN, OUT):
    x, W, b = data(rng, (B, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    da = data(rng, (B, OUT), dtype)
    h_prev = _core.activation_forward(data(rng, (B, IN), dtype), "tanh")
    threads(1)
    want = [a.tobytes() for a in gemm_products(x, W, b, da, h_prev)]
    for order in ORDERS:
        claim_order(order)
        for n in THREADS:
            threads(n)
            got = [a.tobytes() for a in gemm_products(x, W, b, da, h_prev)]
            assert got == want, (order, n)


# One row (one sample predicted) is shared by columns, in tasks of four slivers, while the
# team is awake (gemm.hpp, kOneRowWorkScale; parallel.hpp, team_is_awake): calls back to back,
# so that all but the first at each count share it.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("IN,OUT", [(784, 128), (1031, 300), (300, 1030)])
def test_one_row_products_are_bitwise_identical_in_any_claim_order(rng, threads, claim_order, dtype, IN, OUT):
    x, W, b = data(rng, (1, IN), dtype), data(rng, (OUT, IN), dtype), data(rng, OUT, dtype)
    threads(1)
    want = _core.dense_forward(x, W, b, "tanh").tobytes()
    for order in ORDERS:
        claim_order(order)
        for n in THREADS:
            threads(n)
            for _ in range(3):
                assert _core.dense_forward(x, W, b, "tanh").tobytes() == want, (order, n)


def train(layers, X, y, optimizer, activation, dropout, shuffle, batch_size=40):
    net = fastmlp.Network(layers, activation=activation, dtype="float32", seed=3, dropout=dropout)
    opt = fastmlp.optim.SGD(lr=0.05) if optimizer == "sgd" else fastmlp.optim.Adam(lr=0.01)
    trainer = fastmlp.Trainer(net, batch_size=batch_size, shuffle=shuffle, seed=5, optimizer=opt)
    trainer.fit(X, y, epochs=2)
    return [w.tobytes() for w in net.weights] + [b.tobytes() for b in net.biases]


# Whole training runs: the fused SGD step in the weight gradient's micro-kernel, the optimizer
# updates and dropout masks in parallel loops, and a first layer of 1040 units (65 slivers) fed
# through the shuffle, whose gathered rows of X are packed (a product with barriers). Where the
# L2 is known, the SGD-stepped weight gradients are shared by rows of W (kRowStepL2Fraction):
# 70 inputs give full tiles, stepped inside the micro-kernel, and an edge tile, stepped after it.
@pytest.mark.parametrize("optimizer,activation,dropout,n_in,hidden", [
    ("sgd", "relu", 0.0, 30, 1040),
    ("adam", "tanh", 0.2, 30, 70),
    ("sgd", "tanh", 0.0, 70, 200),
    ("adam", "relu", 0.0, 70, 200),
])
def test_training_is_bitwise_identical_in_any_claim_order(rng, threads, claim_order, optimizer, activation, dropout,
                                                          n_in, hidden):
    X = data(rng, (120, n_in), np.float32)
    y = rng.integers(0, 3, size=120)
    layers = [n_in, hidden, 3]
    threads(1)
    want = train(layers, X, y, optimizer, activation, dropout, shuffle=True)
    for order in ORDERS:
        claim_order(order)
        for n in (2, 3):
            threads(n)
            assert train(layers, X, y, optimizer, activation, dropout, shuffle=True) == want, (order, n)


# Batches of 32 through a second hidden layer of 96 units: its forward product is transposed
# (dense.hpp), with gelu's pre-activation kept by the epilogue that follows it.
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_training_through_transposed_products_is_bitwise_identical_in_any_claim_order(rng, threads, claim_order,
                                                                                      activation):
    X = data(rng, (128, 20), np.float32)
    y = rng.integers(0, 3, size=128)
    layers = [20, 64, 96, 3]
    threads(1)
    want = train(layers, X, y, "adam", activation, 0.0, shuffle=True, batch_size=32)
    for order in ORDERS:
        claim_order(order)
        for n in (2, 3):
            threads(n)
            assert train(layers, X, y, "adam", activation, 0.0, shuffle=True, batch_size=32) == want, (order, n)


# Predictions share the output layer's rows between threads (softmax, sigmoid, identity or
# exp of each row computed alone, 64 rows a task), as well as the products: 2500 rows are three
# chunks of the prediction workspace, the last one partial.
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity", "poisson"])
def test_predictions_are_bitwise_identical_in_any_claim_order(rng, threads, claim_order, output):
    net = fastmlp.Network([30, 40, 7], activation="tanh", output=output, dtype="float32", seed=2)
    X = data(rng, (2500, 30), np.float32)
    predict = net.predict_proba if output in ("softmax", "sigmoid") else net.predict
    threads(1)
    want = predict(X)
    for order in ORDERS:
        claim_order(order)
        for n in THREADS:
            threads(n)
            got = predict(X)
            assert got.tobytes() == want.tobytes(), (order, n)


# The element-wise loops claim 16 Ki-element chunks: an update of 100,000 values (7 chunks) on
# more threads than are useful, in every order.
def test_parallel_loops_are_bitwise_identical_in_any_claim_order(rng, threads, claim_order):
    p0, g = data(rng, 100_000, np.float32), data(rng, 100_000, np.float32)
    threads(1)
    want = p0.copy()
    _core.sgd_update(want, g, 0.3)
    for order in ORDERS:
        claim_order(order)
        for n in THREADS:
            threads(n)
            p = p0.copy()
            _core.sgd_update(p, g, 0.3)
            assert p.tobytes() == want.tobytes(), (order, n)


# Every task runs exactly once whatever the order and however many threads claim them.
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n_tasks", [1, 3, 64])
def test_each_task_runs_once(threads, claim_order, order, n_tasks):
    claim_order(order)
    for n in THREADS:
        threads(n)
        assert _core._parallel_raise_test(n_tasks, -1) == n_tasks


# The governor (parallel.hpp, ShareGovernor): when the calling thread waits through more than 30 %
# (and 100 us) of a shared region, and longer than twice its own longest task, work stays on it
# for a pause. Fed synthetic times a minute ahead, so that the pause cannot run out while the
# test looks.
@pytest.fixture
def governor():
    was_on = _core._set_share_governor(True)  # on, history forgotten
    yield
    _core._set_share_governor(was_on)


def test_a_long_wait_keeps_work_on_one_thread(governor):
    t = time.monotonic_ns() + 60 * 10**9
    assert not _core._share_governor_report(t, t + 10**6, 8 * 10**5)  # waited 20 %: sharing pays
    assert _core._share_governor_report(t + 10**6, t + 2 * 10**6, 4 * 10**5)  # waited 60 %: alone for a while


def test_short_waits_keep_sharing(governor):
    t = time.monotonic_ns() + 60 * 10**9
    for i in range(10):  # waited 90 % of 50 us each time: under the 100 us floor
        assert not _core._share_governor_report(t + i * 10**5, t + i * 10**5 + 50_000, 5_000)
    for i in range(10):  # 1 ms regions, waited 25 %
        start = t + 10**7 + i * 10**6
        assert not _core._share_governor_report(start, start + 10**6, 75 * 10**4)


def test_waiting_for_one_task_keeps_sharing(governor):
    # 1 ms regions in which the calling thread waited 40 %: at the end of a product of few, long
    # tasks, one thread runs the last task while the other has none left. Not a sign of another
    # process on the core while the wait is no longer than two of the caller's own tasks.
    t = time.monotonic_ns() + 60 * 10**9
    for i in range(10):
        start = t + i * 10**6
        assert not _core._share_governor_report(start, start + 10**6, 6 * 10**5, 25 * 10**4)
    # The same wait after tasks of 150 us (more than twice as long as the longest) does not pay.
    start = t + 2 * 10**7
    assert _core._share_governor_report(start, start + 10**6, 6 * 10**5, 15 * 10**4)


def test_a_switched_off_governor_always_shares(governor):
    _core._set_share_governor(False)
    t = time.monotonic_ns() + 60 * 10**9
    for i in range(4):
        assert not _core._share_governor_report(t + i * 10**6, t + (i + 1) * 10**6, 0)
