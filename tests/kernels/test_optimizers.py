"""The native optimizers against the NumPy oracle of torch's updates and against torch.optim itself:
one native update per array (every optimizer, several hyperparameter sets, both dtypes, every kernel
path), whole fits through the Trainer, and the promises around them: biases are never decayed, the
state persists across fits and is rolled back with the weights, the thread count changes no bit,
and bad hyperparameters are refused."""

import pickle
import re
from typing import ClassVar

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp import reference as ref
from fastmlp.optim import SGD, Adam, AdamW, RMSprop
from tests.helpers import diverged_batch, snapshot

# --- helpers -----------------------------------------------------------------------------------------

class Case:
    """An optimizer's class and constructor arguments: calling it builds a fresh optimizer, and the oracle
    and torch take their hyperparameters from these arguments, not from the object under test."""

    ORACLE: ClassVar = {SGD: ref.sgd_step, Adam: ref.adam_step, AdamW: ref.adamw_step, RMSprop: ref.rmsprop_step}
    # torch's defaults, which the classes promise (the oracle's own defaults cover the other arguments).
    DEFAULT_LR: ClassVar = {Adam: 1e-3, AdamW: 1e-3, RMSprop: 1e-2}
    DEFAULT_DECAY: ClassVar = {SGD: 0.0, Adam: 0.0, AdamW: 1e-2, RMSprop: 0.0}

    def __init__(self, cls, **kwargs):
        self.cls, self.kwargs = cls, kwargs
        self.kind = cls.kind
        self.weight_decay = kwargs.get("weight_decay", self.DEFAULT_DECAY[cls])  # of the weights

    def __call__(self):
        return self.cls(**self.kwargs)

    def hyper(self):
        """The constructor arguments besides lr and weight_decay."""
        return {k: v for k, v in self.kwargs.items() if k not in ("lr", "weight_decay")}

    def lr(self):
        return self.kwargs.get("lr", self.DEFAULT_LR.get(self.cls))


def oracle_step(case, param, grad, state, weight_decay):
    """One step of the reference oracle with the case's hyperparameters and this weight_decay."""
    Case.ORACLE[case.cls](param, grad, state, lr=case.lr(), weight_decay=weight_decay, **case.hyper())


# Optimizers covering every rule and branch: momentum, Nesterov, L2 decay, Adam's betas on both sides of
# 0.5 (the lerp's two forms), AdamW's decoupled decay, RMSprop with and without momentum.
OPTIMIZERS = [
    pytest.param(Case(SGD, lr=0.1), id="sgd"),
    pytest.param(Case(SGD, lr=0.05, momentum=0.9), id="sgd-momentum"),
    pytest.param(Case(SGD, lr=0.05, momentum=0.9, nesterov=True), id="sgd-nesterov"),
    pytest.param(Case(SGD, lr=0.1, weight_decay=0.01), id="sgd-decay"),
    pytest.param(Case(SGD, lr=0.03, momentum=0.5, nesterov=True, weight_decay=0.1), id="sgd-nesterov-decay"),
    pytest.param(Case(Adam), id="adam"),
    pytest.param(Case(Adam, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), id="adam-betas-decay"),
    pytest.param(Case(Adam, lr=0.02, betas=(0.3, 0.5)), id="adam-small-betas"),
    pytest.param(Case(AdamW), id="adamw"),
    pytest.param(Case(AdamW, lr=0.01, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.1), id="adamw-betas-decay"),
    pytest.param(Case(RMSprop), id="rmsprop"),
    pytest.param(Case(RMSprop, lr=1e-3, alpha=0.9, momentum=0.9, weight_decay=0.01), id="rmsprop-momentum-decay"),
    pytest.param(Case(RMSprop, lr=0.01, alpha=0.5, eps=1e-4, momentum=0.3), id="rmsprop-momentum"),
]

# One of each kind, with decay wherever the kind has it, for the slower end-to-end tests.
EACH_KIND = [
    pytest.param(Case(SGD, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02), id="sgd"),
    pytest.param(Case(Adam, lr=0.01, betas=(0.85, 0.99), weight_decay=0.03), id="adam"),
    pytest.param(Case(AdamW, lr=0.01, weight_decay=0.1), id="adamw"),
    pytest.param(Case(RMSprop, lr=0.005, alpha=0.9, momentum=0.5, weight_decay=0.02), id="rmsprop"),
]

# The oracle's names of the state arrays, in the order of optimizer.state's lists.
STATE_KEYS = {"sgd": ("momentum_buffer",), "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"),
              "rmsprop": ("square_avg", "momentum_buffer")}


def problem(sizes=(10, 16, 12, 4), n=43, dtype="float64", seed=0, biases=True):
    """A tanh network (with non-zero biases, so that a decay of them would show) and labelled data."""
    rng = np.random.default_rng(seed)
    net = fastmlp.Network(list(sizes), activation="tanh", dtype=dtype, seed=seed)
    if biases:
        for b in net.biases:
            b[...] = rng.normal(scale=0.5, size=b.shape)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=n)
    return net, X, y


def state_bytes(opt):
    return [[a.tobytes() for a in arrays] for arrays in opt.state]


def oracle_fit(net, case, X, y, batch_size, epochs):
    """Float64 weights after `epochs` passes of consecutive batches: reference gradients, then one oracle
    step per parameter, decay on the weights only. Returns weights, biases, per-parameter states."""
    W = [w.astype(np.float64) for w in net.weights]
    b = [v.astype(np.float64) for v in net.biases]
    states = [{} for _ in range(2 * len(W))]
    X = X.astype(np.float64)
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            _, grads = ref.gradients(W, b, "tanh", X[start:start + batch_size], y[start:start + batch_size])
            for k, (dW, db) in enumerate(grads):
                oracle_step(case, W[k], dW, states[2 * k], case.weight_decay)
                oracle_step(case, b[k], db, states[2 * k + 1], 0.0)
    return W, b, states


# --- 1. one native update against the oracle ------------------------------------------------------------

# Measured: the native update is within 1.05 ulp (float32 and float64) of the oracle's parameter, relative
# to the largest parameter magnitude, and within 1.7 ulp for the state arrays, over 15 steps (the oracle
# fuses multiply-adds as torch does, the native code does not). Elementwise relative errors are large only
# where a value cancels to near zero, hence the scale of the largest magnitude.
ULPS = 3.0


def assert_within_ulps(got, want, what):
    eps = np.finfo(got.dtype).eps
    scale = np.max(np.abs(want.astype(np.float64)))
    err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
    assert err <= ULPS * eps * scale, f"{what}: off by {err / (eps * scale):.2f} ulp of max |value| {scale:g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
@pytest.mark.parametrize("decayed", [True, False], ids=["weight", "bias"])
def test_native_update_follows_the_oracle(make_opt, dtype, decayed, isa):
    opt = make_opt()
    # A bias is updated with weight_decay=0, whatever the optimizer's decay.
    wd = make_opt.weight_decay if decayed else 0.0
    rng = np.random.default_rng(7)
    param = rng.normal(size=(9, 13)).astype(dtype)
    want = param.copy()
    buffers = [np.zeros_like(param) for _ in opt.state_names]
    oracle_state = {}
    for t in range(1, 13):
        # Gradients over four orders of magnitude, so that Adam's and RMSprop's normalisation matters.
        grad = (rng.normal(size=param.shape) * rng.choice([1e-3, 1.0, 10.0], size=param.shape)).astype(dtype)
        spec = opt._spec()
        spec["step"] = t
        _core.optimizer_update(param, grad, buffers, spec, wd)
        oracle_step(make_opt, want, grad, oracle_state, wd)
        assert_within_ulps(param, want, f"param after step {t}")
        for name, buffer in zip(STATE_KEYS[opt.kind], buffers):
            assert_within_ulps(buffer, oracle_state[name], f"{name} after step {t}")


@pytest.mark.parametrize("make_opt", [p for p in OPTIMIZERS if "decay" in p.id])
def test_the_weight_decay_argument_matters(make_opt):
    # The decay of optimizer_update comes from its argument: with it and without it differ, and each
    # follows the oracle with the same decay (so the test above checks both branches).
    opt = make_opt()
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=50)
    g = rng.normal(size=50) * 1e-2
    results = []
    assert opt.weight_decay == make_opt.weight_decay > 0
    for wd in (opt.weight_decay, 0.0):
        p = p0.copy()
        _core.optimizer_update(p, g, [np.zeros_like(p) for _ in opt.state_names], opt._spec(), wd)
        want = p0.copy()
        oracle_step(make_opt, want, g, {}, wd)
        np.testing.assert_allclose(p, want, rtol=0, atol=4e-16 * np.max(np.abs(want)))
        results.append(p)
    assert np.max(np.abs(results[0] - results[1])) > 1e-6


def test_optimizer_update_refuses_a_wrong_number_of_state_arrays():
    p, g = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="state array"):
        _core.optimizer_update(p, g, [], Adam()._spec(), 0.0)
    with pytest.raises(ValueError, match="state array"):
        _core.optimizer_update(p, g, [np.zeros(4)], SGD(0.1)._spec(), 0.0)


# --- 2. Trainer.fit against an oracle loop ----------------------------------------------------------------

# Measured: float64 agrees to 3e-15 relative (worst case over the optimizers), float32 (against a float64
# oracle from the same float32 start) to 7e-7, of the largest magnitude of each array.
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-13), ("float32", 5e-6)])
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_fit_follows_the_oracle_loop(make_opt, dtype, tol):
    net, X, y = problem(dtype=dtype, n=43)  # batches of 8: five full ones and a last one of 3
    W, b, states = oracle_fit(net, make_opt, X, y, batch_size=8, epochs=2)
    opt = make_opt()
    history = fastmlp.Trainer(net, optimizer=opt, batch_size=8, shuffle=False).fit(X, y, epochs=2)
    assert opt.steps == 12
    assert len(history.loss) == 2 and np.all(np.isfinite(history.loss))
    for got, want in zip(net.weights + net.biases, W + b):
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    # The state arrays are the oracle's, W_1, b_1, W_2, ... in order.
    params = [p for pair in zip(W, b) for p in pair]
    for arrays, oracle_state, p in zip(opt.state, states, params):
        assert [a.shape for a in arrays] == [p.shape] * len(opt.state_names)
        for name, a in zip(STATE_KEYS[opt.kind], arrays):
            want = oracle_state[name]
            np.testing.assert_allclose(a, want, rtol=tol, atol=tol * np.max(np.abs(want)))


# --- 3. against torch.optim ------------------------------------------------------------------------------

def torch_fit(net, make_opt, X, y, batch_size, epochs):
    torch = pytest.importorskip("torch")
    layers = []
    for W, b in zip(net.weights, net.biases):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.astype(np.float64)))
            lin.bias.copy_(torch.from_numpy(b.astype(np.float64)))
        layers.append(lin)
    modules = []
    for k, lin in enumerate(layers):
        modules.append(lin)
        if k < len(layers) - 1:
            modules.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*modules)
    groups = [{"params": [lin.weight for lin in layers], "weight_decay": make_opt.weight_decay},
              {"params": [lin.bias for lin in layers], "weight_decay": 0.0}]
    cls = {SGD: torch.optim.SGD, Adam: torch.optim.Adam, AdamW: torch.optim.AdamW, RMSprop: torch.optim.RMSprop}
    topt = cls[make_opt.cls](groups, lr=make_opt.lr(), foreach=False, **make_opt.hyper())
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X.astype(np.float64)), torch.from_numpy(y.astype(np.int64))
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            topt.zero_grad()
            loss_fn(model(Xt[start:start + batch_size]), yt[start:start + batch_size]).backward()
            topt.step()
    return [lin.weight.detach().numpy() for lin in layers], [lin.bias.detach().numpy() for lin in layers]


# Measured: within 3e-15 (of the largest magnitude of each array) of torch's weights after 2 epochs.
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_fit_follows_torch_optim(make_opt):
    net, X, y = problem(n=43)
    W, b = torch_fit(net, make_opt, X, y, batch_size=8, epochs=2)
    fastmlp.Trainer(net, optimizer=make_opt(), batch_size=8, shuffle=False).fit(X, y, epochs=2)
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.max(np.abs(want)))


# --- 4. properties ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make_opt", [
    Case(SGD, lr=0.1, weight_decay=0.5),
    Case(SGD, lr=0.1, momentum=0.9, weight_decay=0.5),
    Case(Adam, lr=0.01, weight_decay=0.5),
    Case(AdamW, lr=0.01, weight_decay=0.5),
    Case(RMSprop, lr=0.01, weight_decay=0.5),
], ids=["sgd", "sgd-momentum", "adam", "adamw", "rmsprop"])
def test_biases_are_never_decayed(make_opt):
    # With the last layer's weights at zero, no data gradient reaches the first layer: dh_1 = da_2 W_2 = 0,
    # so dW_1 = 0 and db_1 = 0 exactly. A step then moves W_1 by the decay alone and must leave b_1 bitwise.
    net, X, y = problem(sizes=(6, 8, 3), n=16)
    net.weights[1][...] = 0.0
    W1, b1 = net.weights[0].copy(), net.biases[0].copy()
    assert np.all(b1 != 0)
    opt = make_opt()
    fastmlp.Trainer(net, optimizer=opt).step(X, y)
    assert net.biases[0].tobytes() == b1.tobytes()
    want = W1.copy()
    oracle_step(make_opt, want, np.zeros_like(W1), {}, make_opt.weight_decay)
    assert np.max(np.abs(want - W1)) > 1e-4  # the decay alone moves the weights visibly...
    np.testing.assert_allclose(net.weights[0], want, rtol=1e-14, atol=1e-16)  # ...and exactly so


@pytest.mark.parametrize("make_opt", EACH_KIND)
def test_decay_changes_the_weights_but_not_the_biases_of_a_first_step(make_opt):
    # The first step's gradient does not depend on the decay, so the biases it produces do not either:
    # bitwise the same as without decay in every layer, while every weight matrix differs.
    net, X, y = problem(n=20)
    twin = net.copy()
    opt = make_opt()
    no_decay = make_opt.cls(lr=make_opt.lr(), weight_decay=0.0, **make_opt.hyper())
    fastmlp.Trainer(net, optimizer=opt).step(X, y)
    fastmlp.Trainer(twin, optimizer=no_decay).step(X, y)
    for got, want in zip(net.biases, twin.biases):
        assert got.tobytes() == want.tobytes()
    for got, want in zip(net.weights, twin.weights):
        assert np.max(np.abs(got - want)) > 1e-6


@pytest.mark.parametrize("make_opt", EACH_KIND)
@pytest.mark.parametrize("shuffle,seed", [(False, None), (True, 5)])
def test_state_persists_across_fits(make_opt, shuffle, seed):
    net, X, y = problem(n=43)
    twin = net.copy()
    opt, opt_twin = make_opt(), make_opt()
    trainer = fastmlp.Trainer(net, optimizer=opt, batch_size=8, shuffle=shuffle, seed=seed)
    trainer.fit(X, y, epochs=2)
    trainer.fit(X, y, epochs=2)
    fastmlp.Trainer(twin, optimizer=opt_twin, batch_size=8, shuffle=shuffle, seed=seed).fit(X, y, epochs=4)
    assert snapshot(net) == snapshot(twin)
    assert state_bytes(opt) == state_bytes(opt_twin)
    assert opt.steps == opt_twin.steps == 24


def test_a_fresh_optimizer_on_the_second_fit_differs():
    # The converse of the test above: without the persisted momentum the second fit ends elsewhere.
    net, X, y = problem(n=43)
    twin = net.copy()
    trainer = fastmlp.Trainer(net, optimizer=Adam(0.01), batch_size=8, shuffle=False)
    trainer.fit(X, y, epochs=2)
    trainer.fit(X, y, epochs=2)
    other = fastmlp.Trainer(twin, optimizer=Adam(0.01), batch_size=8, shuffle=False)
    other.fit(X, y, epochs=2)
    other.optimizer.reset()
    assert other.optimizer.steps == 0 and other.optimizer.state is None
    other.fit(X, y, epochs=2)
    assert snapshot(net) != snapshot(twin)


def test_steps_count_updates():
    net, X, y = problem(n=43)
    opt = Adam(0.01)
    trainer = fastmlp.Trainer(net, optimizer=opt, batch_size=8)
    assert opt.steps == 0 and opt.state is None
    trainer.fit(X, y, epochs=3)
    assert opt.steps == 3 * 6  # five batches of 8 and one of 3 per epoch
    trainer.step(X[:5], y[:5])
    assert opt.steps == 19
    assert opt._spec()["step"] == 20
    trainer.batch_size = 100  # larger than the data: one batch per epoch
    trainer.fit(X, y, epochs=2)
    assert opt.steps == 21


def test_steps_number_adams_bias_correction():
    # A fit after a step() continues the step count: the same as stepping batch by batch.
    net, X, y = problem(n=24)
    twin = net.copy()
    t1 = fastmlp.Trainer(net, optimizer=Adam(0.01), batch_size=8, shuffle=False)
    t1.step(X[:8], y[:8])
    t1.fit(X, y, epochs=1)
    t2 = fastmlp.Trainer(twin, optimizer=Adam(0.01), batch_size=8, shuffle=False)
    for start in (0, 0, 8, 16):
        t2.step(X[start:start + 8], y[start:start + 8])
    assert snapshot(net) == snapshot(twin)
    assert state_bytes(t1.optimizer) == state_bytes(t2.optimizer)


@pytest.mark.parametrize("make_opt", [lambda: Adam(1e-3), lambda: SGD(0.05, momentum=0.9, weight_decay=1e-3)],
                         ids=["adam", "sgd-momentum"])
def test_any_thread_count_gives_the_same_bits(make_opt, threads):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(192, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=192)
    results = []
    for n in (1, 2):
        threads(n)
        net = fastmlp.Network([64, 256, 256, 10], seed=3)
        opt = make_opt()
        fastmlp.Trainer(net, optimizer=opt, batch_size=64, seed=2).fit(X, y, epochs=2)
        results.append((snapshot(net), state_bytes(opt)))
    assert results[0] == results[1]


def test_lr_and_optimizer_together_are_refused():
    net, _, _ = problem()
    with pytest.raises(ValueError, match="optimizer"):
        fastmlp.Trainer(net, lr=0.1, optimizer=Adam())
    with pytest.raises(TypeError, match="optimizer"):
        fastmlp.Trainer(net, optimizer="adam")


@pytest.mark.parametrize("other", [dict(sizes=(10, 16, 4)), dict(dtype="float32")], ids=["shape", "dtype"])
def test_an_optimizer_belongs_to_one_network(other):
    net, X, y = problem()
    opt = Adam(0.01)
    fastmlp.Trainer(net, optimizer=opt).fit(X, y)
    net2, X2, y2 = problem(**other)
    before = snapshot(net2)
    state = state_bytes(opt)
    trainer = fastmlp.Trainer(net2, optimizer=opt)
    with pytest.raises(ValueError, match=re.escape("reset()")):
        trainer.fit(X2, y2)
    with pytest.raises(ValueError, match=re.escape("reset()")):
        trainer.step(X2, y2)
    assert snapshot(net2) == before and state_bytes(opt) == state  # nothing changed
    opt.reset()
    trainer.fit(X2, y2)
    assert opt.steps == 2 and opt.state[0][0].shape == net2.weights[0].shape


@pytest.mark.parametrize("make_opt", [lambda: Adam(0.01), lambda: SGD(0.1, momentum=0.9), lambda: SGD(0.1)],
                         ids=["adam", "sgd-momentum", "sgd"])
def test_an_optimizer_refuses_a_second_network_of_the_same_shape(make_opt):
    # A cross-validation loop reusing one optimizer: the second network (same shape and dtype)
    # must not start from the first one's moments and step count.
    net, X, y = problem()
    opt = make_opt()
    fresh_net = net.copy()
    fastmlp.Trainer(net, optimizer=opt, batch_size=8, shuffle=False).fit(X, y)
    other = fresh_net.copy()
    before, state, steps = snapshot(other), state_bytes(opt), opt.steps
    trainer = fastmlp.Trainer(other, optimizer=opt, batch_size=8, shuffle=False)
    with pytest.raises(ValueError, match=r"another network \(of the same shape\).*optimizer\.reset\(\)"):
        trainer.fit(X, y)
    with pytest.raises(ValueError, match=r"another network"):
        trainer.step(X, y)
    assert snapshot(other) == before and state_bytes(opt) == state and opt.steps == steps  # nothing changed
    opt.reset()  # the documented way out: then it trains `other` as a fresh optimizer would
    trainer.fit(X, y)
    reference = fresh_net.copy()
    fastmlp.Trainer(reference, optimizer=make_opt(), batch_size=8, shuffle=False).fit(X, y)
    assert snapshot(other) == snapshot(reference)


def test_an_optimizer_whose_network_is_gone_is_refused_too():
    net, X, y = problem()
    opt = Adam(0.01)
    fastmlp.Trainer(net.copy(), optimizer=opt).fit(X, y)  # that network is discarded at once
    with pytest.raises(ValueError, match=r"reset\(\)"):
        fastmlp.Trainer(net, optimizer=opt).fit(X, y)


def test_a_pickled_trainer_keeps_its_optimizer_bound_to_its_network():
    net, X, y = problem()
    trainer = fastmlp.Trainer(net, optimizer=Adam(0.01), batch_size=8, seed=1)
    trainer.fit(X, y)
    copy = pickle.loads(pickle.dumps(trainer))
    trainer.fit(X, y)
    copy.fit(X, y)  # the copy's optimizer belongs to the copy's network: accepted, and the same training
    assert snapshot(copy.network) == snapshot(net) and state_bytes(copy.optimizer) == state_bytes(trainer.optimizer)


@pytest.mark.parametrize("build,error", [
    (lambda: SGD(0.1, nesterov=True), ValueError),
    (lambda: SGD(0.1, momentum=0.0, nesterov=True), ValueError),
    (lambda: SGD(-0.1), ValueError),
    (lambda: SGD(float("nan")), ValueError),
    (lambda: SGD(float("inf")), ValueError),
    (lambda: SGD(0.1, momentum=-0.5), ValueError),
    (lambda: SGD(0.1, weight_decay=-1e-3), ValueError),
    (lambda: SGD("0.1"), TypeError),
    (lambda: SGD(None), TypeError),
    (lambda: SGD(True), TypeError),
    (lambda: SGD(0.1, momentum=0.9, nesterov=1), TypeError),
    (lambda: Adam(-1e-3), ValueError),
    (lambda: Adam(betas=(1.0, 0.999)), ValueError),
    (lambda: Adam(betas=(0.9, 1.0)), ValueError),
    (lambda: Adam(betas=(-0.1, 0.999)), ValueError),
    (lambda: Adam(betas=(0.9, 1.5)), ValueError),
    (lambda: Adam(betas=0.9), TypeError),
    (lambda: Adam(betas=(0.9, 0.99, 0.9)), TypeError),
    (lambda: Adam(betas=("0.9", 0.999)), TypeError),
    (lambda: Adam(eps=-1e-8), ValueError),
    (lambda: Adam(weight_decay=-0.1), ValueError),
    (lambda: Adam(lr="fast"), TypeError),
    (lambda: AdamW(weight_decay=float("nan")), ValueError),
    (lambda: AdamW(betas=(0.9, 1.0)), ValueError),
    (lambda: RMSprop(alpha=1.5), ValueError),
    (lambda: RMSprop(alpha=-0.1), ValueError),
    (lambda: RMSprop(momentum=-1.0), ValueError),
    (lambda: RMSprop(eps=-1.0), ValueError),
    (lambda: RMSprop(lr=[0.1]), TypeError),
])
def test_invalid_hyperparameters_are_refused(build, error):
    with pytest.raises(error):
        build()


def test_lr_assignment_is_checked():
    opt = Adam()
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0
    with pytest.raises(TypeError):
        opt.lr = "0.1"
    assert opt.lr == 1e-3


@pytest.mark.parametrize("batch_size", [8, 43])
def test_trainer_lr_is_plain_sgd(batch_size):
    net, X, y = problem(n=43)
    twin, twin2 = net.copy(), net.copy()
    W = [w.copy() for w in net.weights]
    b = [v.copy() for v in net.biases]
    losses = [ref.train_epoch(W, b, "tanh", X, y, batch_size, 0.1) for _ in range(2)]
    trainer = fastmlp.Trainer(net, lr=0.1, batch_size=batch_size, shuffle=False)
    history = trainer.fit(X, y, epochs=2)
    assert isinstance(trainer.optimizer, SGD) and trainer.optimizer.lr == 0.1
    assert trainer.optimizer.momentum == 0.0 and trainer.optimizer.weight_decay == 0.0
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    # ... and bitwise the same as an explicit SGD optimizer.
    fastmlp.Trainer(twin, optimizer=SGD(0.1), batch_size=batch_size, shuffle=False).fit(X, y, epochs=2)
    assert snapshot(net) == snapshot(twin)
    # The default learning rate is 0.1.
    fastmlp.Trainer(twin2, batch_size=batch_size, shuffle=False).fit(X, y, epochs=2)
    assert snapshot(net) == snapshot(twin2)


# --- 5. divergence rolls the optimizer state back too -------------------------------------------------------

def divergence_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=60)
    return X, y


# A NaN loss in batch 2 (relu, huge inputs) or batch 5 (tanh), where the native loop stops before the update;
# and an update that overflows to inf in batch 1, found afterwards, where the state is restored from the
# copy taken at the epoch's start.
@pytest.mark.parametrize("activation,huge_lr,scale", [("relu", 1e30, 1e3), ("tanh", 3e37, 1.0), ("relu", 3e38, 1.0)],
                         ids=["nan-loss", "nan-loss-later", "inf-update"])
def test_divergence_rolls_back_weights_and_adam_state(activation, huge_lr, scale):
    # One sane epoch builds up Adam's moments, then a huge learning rate (and inputs) blows up the next fit.
    X, y = divergence_problem()
    net = fastmlp.Network([8, 16, 3], activation=activation, seed=0)
    opt = Adam(0.01)
    trainer = fastmlp.Trainer(net, optimizer=opt, batch_size=10, shuffle=False)
    trainer.fit(X, y, epochs=1)
    opt.lr = huge_lr
    with pytest.raises(fastmlp.TrainingDivergedError) as info:
        trainer.fit(X * scale, y, epochs=3, on_nonfinite="raise")
    epoch, batch = diverged_batch(info)
    assert epoch == 1
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)
    # The twin: the sane epoch, then the batches of the diverging epoch that completed, one step each.
    twin = fastmlp.Network([8, 16, 3], activation=activation, seed=0)
    twin_opt = Adam(0.01)
    stepper = fastmlp.Trainer(twin, optimizer=twin_opt, batch_size=10, shuffle=False)
    stepper.fit(X, y, epochs=1)
    twin_opt.lr = huge_lr
    Xs = X * scale
    for i in range(batch - 1):
        stepper.step(Xs[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10])
    assert snapshot(net) == snapshot(twin)
    assert opt.steps == twin_opt.steps == 6 + batch - 1
    assert state_bytes(opt) == state_bytes(twin_opt)
    assert all(np.isfinite(a).all() for arrays in opt.state for a in arrays)


@pytest.mark.parametrize("make_opt", EACH_KIND)
def test_the_replayed_rollback_restores_the_optimizer_state(make_opt, monkeypatch):
    # Pretend the weights stop being finite from the 4th step of the second epoch on: the roll-back replays
    # prefixes of the shuffled epoch (restoring the optimizer's state before each) and must land bitwise on
    # the weights and the state after 3 steps, which a twin computes with Trainer.step.
    X, y = divergence_problem()
    X = X[:50]
    y = y[:50]
    batch, seed = 6, 11
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(50), rng.permutation(50)]
    twin = fastmlp.Network([8, 16, 3], activation="tanh", seed=0)
    twin_opt = make_opt()
    stepper = fastmlp.Trainer(twin, optimizer=twin_opt, batch_size=batch, shuffle=False)
    good = set()  # the weights the fake check calls finite: the second epoch's start and its first 3 steps
    for epoch, order in enumerate(orders):
        for k in range(9):
            if epoch == 1 and k == 0:
                good.add(b"".join(snapshot(twin)))
            rows = order[k * batch:(k + 1) * batch]
            stepper.step(X[rows], y[rows])
            if epoch == 1 and k < 3:
                good.add(b"".join(snapshot(twin)))
            if epoch == 1 and k == 2:
                after_3 = (snapshot(twin), state_bytes(twin_opt), twin_opt.steps)
    net = fastmlp.Network([8, 16, 3], activation="tanh", seed=0)
    opt = make_opt()
    trainer = fastmlp.Trainer(net, optimizer=opt, batch_size=batch, seed=seed)
    trainer.fit(X, y, epochs=1)
    monkeypatch.setattr(fastmlp.trainer, "_all_finite", lambda arrays: b"".join(a.tobytes() for a in arrays) in good)
    native = fastmlp._core.train_epoch
    # hide the native loop's own finiteness check, so that the fake one above decides
    monkeypatch.setattr(fastmlp._core, "train_epoch", lambda *args, **kwargs: native(*args, **kwargs)[:4] + (None,))
    with pytest.raises(fastmlp.TrainingDivergedError, match=r"epoch 1, batch 4 of 9"):
        trainer.fit(X, y, epochs=1)
    assert (snapshot(net), state_bytes(opt), opt.steps) == after_3
    assert opt.steps == 9 + 3
