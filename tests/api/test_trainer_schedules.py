"""Learning-rate schedules driven by the Trainer: history.lr is the schedule's sequence (closed forms and
torch.optim.lr_scheduler), each epoch trains with its rate (against the oracle), ReduceLROnPlateau is
stepped on the validation loss when there is one and on the training loss otherwise, a second fit
carries the schedule on, and a bad schedule is refused."""

import math

import numpy as np
import pytest

import fastmlp
from fastmlp import reference as ref
from fastmlp.optim import SGD, AdamW
from fastmlp.schedules import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR
from tests.helpers import snapshot

EPOCHS = 8
BASE_LR = 0.2


def problem(n=43, seed=0):
    rng = np.random.default_rng(seed)
    net = fastmlp.Network([6, 12, 3], activation="tanh", dtype="float64", seed=seed)
    for b in net.biases:
        b[...] = rng.normal(scale=0.3, size=b.shape)
    X = rng.normal(size=(n, 6))
    y = rng.integers(0, 3, size=n)
    return net, X, y


def step_lr(e):
    return BASE_LR * 0.5 ** (e // 3)


def exponential_lr(e):
    return BASE_LR * 0.7**e


def cosine_lr(e, T=3, eta_min=0.01):
    # Past T_max the recursive (torch) form climbs back along the same cosine, so the closed form holds
    # for every epoch.
    return eta_min + (BASE_LR - eta_min) * (1 + math.cos(math.pi * e / T)) / 2


SCHEDULES = [
    pytest.param(lambda: StepLR(step_size=3, gamma=0.5), step_lr, id="step"),
    pytest.param(lambda: ExponentialLR(gamma=0.7), exponential_lr, id="exponential"),
    pytest.param(lambda: CosineAnnealingLR(T_max=3, eta_min=0.01), cosine_lr, id="cosine"),
]


@pytest.mark.parametrize("make_schedule,closed_form", SCHEDULES)
def test_history_lr_is_the_schedule_and_each_epoch_trains_with_it(make_schedule, closed_form):
    net, X, y = problem()
    want_lrs = [closed_form(e) for e in range(EPOCHS)]
    assert len(set(want_lrs)) > 2  # the schedule does change the rate
    W = [w.copy() for w in net.weights]
    b = [v.copy() for v in net.biases]
    losses = [ref.train_epoch(W, b, "tanh", X, y, 8, lr) for lr in want_lrs]
    trainer = fastmlp.Trainer(net, lr=BASE_LR, batch_size=8, shuffle=False, schedule=make_schedule())
    history = trainer.fit(X, y, epochs=EPOCHS)
    np.testing.assert_allclose(history.lr, want_lrs, rtol=1e-14, atol=1e-17)
    assert trainer.optimizer.lr == history.lr[-1]
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("make_schedule,closed_form", SCHEDULES)
def test_history_lr_is_torchs_schedule(make_schedule, closed_form):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=BASE_LR)
    sched = {"step": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
             "exponential": lambda: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.7),
             "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3, eta_min=0.01)}
    schedule = make_schedule()
    torch_sched = sched[{StepLR: "step", ExponentialLR: "exponential", CosineAnnealingLR: "cosine"}[type(schedule)]]()
    want = []
    for _ in range(EPOCHS):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        torch_sched.step()
    net, X, y = problem()
    history = fastmlp.Trainer(net, lr=BASE_LR, batch_size=16, schedule=schedule).fit(X, y, epochs=EPOCHS)
    np.testing.assert_allclose(history.lr, want, rtol=1e-15, atol=0)


def test_a_schedule_drives_adamws_rate_and_decay():
    # AdamW's decoupled decay multiplies by 1 - lr * weight_decay: the scheduled rate must reach it too.
    net, X, y = problem()
    lrs = [exponential_lr(e) * 0.1 for e in range(4)]
    W = [w.copy() for w in net.weights]
    b = [v.copy() for v in net.biases]
    states = [{} for _ in range(2 * len(W))]
    for lr in lrs:
        for start in range(0, len(X), 8):
            _, grads = ref.gradients(W, b, "tanh", X[start:start + 8], y[start:start + 8])
            for k, (dW, db) in enumerate(grads):
                ref.adamw_step(W[k], dW, states[2 * k], lr=lr, weight_decay=0.3)
                ref.adamw_step(b[k], db, states[2 * k + 1], lr=lr, weight_decay=0.0)
    trainer = fastmlp.Trainer(net, optimizer=AdamW(lr=lrs[0], weight_decay=0.3), batch_size=8, shuffle=False,
                              schedule=ExponentialLR(gamma=0.7))
    history = trainer.fit(X, y, epochs=4)
    np.testing.assert_allclose(history.lr, lrs, rtol=1e-15)
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13 * np.max(np.abs(want)))


def test_the_schedule_starts_from_the_optimizers_rate():
    net, X, y = problem()
    trainer = fastmlp.Trainer(net, optimizer=SGD(0.03, momentum=0.9), schedule=ExponentialLR(gamma=0.5))
    history = trainer.fit(X, y, epochs=3)
    np.testing.assert_allclose(history.lr, [0.03, 0.015, 0.0075], rtol=1e-15)
    assert trainer.schedule.base_lr == 0.03


# --- ReduceLROnPlateau: which loss drives it ------------------------------------------------------------

def plateau_problem():
    # Validation labels shifted by one class: as the training loss falls, the validation loss rises.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    return X, y, (X[:30], (y[:30] + 1) % 3)


def recording(schedule):
    """Make schedule.step record its argument (and still step)."""
    seen = []
    step = schedule.step

    def record(metric=None):
        seen.append(metric)
        step(metric)

    schedule.step = record
    return seen


@pytest.mark.parametrize("with_validation", [True, False], ids=["val_loss", "loss"])
def test_reduce_on_plateau_follows_val_loss_if_given_else_the_training_loss(with_validation):
    X, y, validation = plateau_problem()
    net = fastmlp.Network([6, 12, 3], activation="tanh", dtype="float64", seed=0)
    schedule = ReduceLROnPlateau(factor=0.5, patience=0)
    seen = recording(schedule)
    trainer = fastmlp.Trainer(net, lr=0.1, batch_size=10, shuffle=False, schedule=schedule)
    history = trainer.fit(X, y, epochs=6, validation_data=validation if with_validation else None)
    # The data make the two metrics go opposite ways, so the wrong one would be seen and acted on.
    assert np.all(np.diff(history.loss) < 0)
    if with_validation:
        assert np.all(np.diff(history.val_loss) > 0)
        assert seen == history.val_loss
        # val_loss rises from the second epoch on: with patience 0 the rate halves after each.
        assert history.lr == [0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625]
    else:
        assert seen == history.loss
        assert history.lr == [0.1] * 6


# --- a second fit carries the schedule on -------------------------------------------------------------------

def test_a_second_fit_continues_the_schedule():
    # StepLR(5): the rate is still the base rate when the first fit of 3 epochs ends, so the second fit
    # goes on with epochs 3..6 (a restart would give the base rate throughout).
    net, X, y = problem()
    twin = net.copy()
    schedule = StepLR(step_size=5, gamma=0.1)
    trainer = fastmlp.Trainer(net, lr=BASE_LR, batch_size=8, shuffle=False, schedule=schedule)
    trainer.fit(X, y, epochs=3)
    history = trainer.fit(X, y, epochs=4)
    np.testing.assert_allclose(history.lr, [BASE_LR, BASE_LR, BASE_LR * 0.1, BASE_LR * 0.1], rtol=1e-15)
    assert schedule.epoch == 7
    fastmlp.Trainer(twin, lr=BASE_LR, batch_size=8, shuffle=False,
                    schedule=StepLR(step_size=5, gamma=0.1)).fit(X, y, epochs=7)
    assert snapshot(net) == snapshot(twin)


def test_a_second_fit_continues_reduce_on_plateau_counters():
    # patience 2 on a rising val_loss: the first fit (3 epochs) ends with two bad epochs counted; the
    # third bad one, in the second fit's first epoch, reduces the rate. A restarted schedule would count
    # that epoch as an improvement on best = inf.
    X, y, validation = plateau_problem()
    net = fastmlp.Network([6, 12, 3], activation="tanh", dtype="float64", seed=0)
    schedule = ReduceLROnPlateau(factor=0.5, patience=2)
    trainer = fastmlp.Trainer(net, lr=0.1, batch_size=10, shuffle=False, schedule=schedule)
    first = trainer.fit(X, y, epochs=3, validation_data=validation)
    assert first.lr == [0.1] * 3 and schedule.num_bad_epochs == 2
    second = trainer.fit(X, y, epochs=2, validation_data=validation)
    assert second.lr == [0.1, 0.05]


@pytest.mark.parametrize("make_schedule,closed_form", SCHEDULES)
def test_a_second_fit_continues_a_schedule_whose_rate_has_changed(make_schedule, closed_form):
    # The optimizer's rate is the last scheduled one when the first fit ends, not the base rate: the
    # second fit must carry on from the schedule's state rather than (re)start it from that rate.
    net, X, y = problem()
    twin = net.copy()
    trainer = fastmlp.Trainer(net, lr=BASE_LR, batch_size=8, shuffle=False, schedule=make_schedule())
    trainer.fit(X, y, epochs=4)
    history = trainer.fit(X, y, epochs=4)
    np.testing.assert_allclose(history.lr, [closed_form(e) for e in range(4, 8)], rtol=1e-14)
    fastmlp.Trainer(twin, lr=BASE_LR, batch_size=8, shuffle=False, schedule=make_schedule()).fit(X, y, epochs=8)
    assert snapshot(net) == snapshot(twin)


# --- bad schedules ------------------------------------------------------------------------------------------

class OnlyStart:
    def start(self, base_lr):
        pass


@pytest.mark.parametrize("schedule", [object(), "StepLR", 0.1, OnlyStart(), {"start": 1, "step": 2}],
                         ids=["object", "str", "float", "no-step", "dict"])
def test_a_bad_schedule_is_refused(schedule):
    net, _, _ = problem()
    with pytest.raises(TypeError, match="schedule"):
        fastmlp.Trainer(net, lr=0.1, schedule=schedule)
