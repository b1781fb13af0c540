"""Tests of fastmlp.schedules: closed forms, argument checks and checkpoints, and torch.optim.lr_scheduler.

Only the comparisons with torch need torch (skipped without it); they drive an SGD optimizer on a dummy
parameter for 60 epochs and compare the learning rate of every epoch.
"""

import math

import pytest

from fastmlp.schedules import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, Schedule, StepLR

EPOCHS = 60


def rates(schedule, base_lr, epochs=EPOCHS, metrics=None):
    """The learning rate of each epoch, stepping after each (with the epoch's metric if given)."""
    schedule.start(base_lr)
    lrs = []
    for epoch in range(epochs):
        lrs.append(schedule.lr)
        schedule.step(None if metrics is None else metrics[epoch])
    return lrs


# Plateaus, improvements, improvements smaller than the 1e-4 relative threshold, NaNs and a late rise.
PLATEAU_METRICS = (
    [1.0, 0.9, 0.8, 0.8, 0.79999, 0.8, float("nan"), 0.8, 0.5, 0.5]
    + [0.5] * 6
    + [float("nan")] * 3
    + [0.4, 0.39, 0.38, 0.38, 0.38, 0.38, 0.38, 0.37999, 0.38, 0.2]
    + [0.2 - 1e-9 * k for k in range(12)]
    + [0.3, 0.25, float("nan"), 0.19, 0.19, 0.19, 0.19, 0.19, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
)
assert len(PLATEAU_METRICS) == EPOCHS

SCHEDULES = [
    pytest.param(lambda: StepLR(step_size=7, gamma=0.5), "StepLR", dict(step_size=7, gamma=0.5), None, id="step"),
    pytest.param(lambda: StepLR(step_size=1), "StepLR", dict(step_size=1), None, id="step-every-epoch"),
    pytest.param(lambda: ExponentialLR(gamma=0.93), "ExponentialLR", dict(gamma=0.93), None, id="exponential"),
    pytest.param(lambda: CosineAnnealingLR(T_max=25), "CosineAnnealingLR", dict(T_max=25), None, id="cosine"),
    pytest.param(
        lambda: CosineAnnealingLR(T_max=7, eta_min=0.01), "CosineAnnealingLR", dict(T_max=7, eta_min=0.01), None,
        id="cosine-eta-min-past-T-max",
    ),
    pytest.param(lambda: CosineAnnealingLR(T_max=1), "CosineAnnealingLR", dict(T_max=1), None, id="cosine-T-max-1"),
    pytest.param(
        lambda: ReduceLROnPlateau(factor=0.5, patience=2), "ReduceLROnPlateau", dict(factor=0.5, patience=2),
        PLATEAU_METRICS, id="plateau",
    ),
    pytest.param(
        lambda: ReduceLROnPlateau(factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2,
                                  min_lr=0.004),
        "ReduceLROnPlateau",
        dict(factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2, min_lr=0.004),
        PLATEAU_METRICS, id="plateau-abs-cooldown-min-lr",
    ),
    pytest.param(
        lambda: ReduceLROnPlateau(factor=0.9, patience=0, eps=0.005), "ReduceLROnPlateau",
        dict(factor=0.9, patience=0, eps=0.005), PLATEAU_METRICS, id="plateau-eps-skips-small-reductions",
    ),
]


# --- against torch.optim.lr_scheduler ----------------------------------------------------------------


@pytest.mark.parametrize("make, torch_name, torch_kwargs, metrics", SCHEDULES)
def test_same_rates_as_torch(make, torch_name, torch_kwargs, metrics):
    torch = pytest.importorskip("torch")
    base_lr = 0.1
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = getattr(torch.optim.lr_scheduler, torch_name)(optimizer, **torch_kwargs)
    expected = []
    for epoch in range(EPOCHS):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradient: nothing moves, but torch expects it before scheduler.step()
        scheduler.step() if metrics is None else scheduler.step(metrics[epoch])
    got = rates(make(), base_lr, metrics=metrics)
    # Bitwise equal with torch 2.13 (the same float64 operations in the same order); 1e-15 leaves room
    # for a torch that regroups a product.
    assert got == pytest.approx(expected, rel=1e-15, abs=0)
    assert len(set(got)) > 1  # the schedule does something over these 60 epochs


# --- closed forms ------------------------------------------------------------------------------------


def test_step_lr_closed_form():
    got = rates(StepLR(step_size=4, gamma=0.3), 0.2)
    # Multiplied step by step as torch does: equal to the power to rounding only.
    assert got == pytest.approx([0.2 * 0.3 ** (epoch // 4) for epoch in range(EPOCHS)], rel=1e-14)
    assert got[:4] == [0.2] * 4


def test_exponential_lr_closed_form():
    got = rates(ExponentialLR(gamma=0.9), 1.5)
    assert got == pytest.approx([1.5 * 0.9**epoch for epoch in range(EPOCHS)], rel=1e-13)


@pytest.mark.parametrize("T_max, eta_min", [(10, 0.0), (13, 0.002), (1, 0.05)])
def test_cosine_closed_form_including_past_T_max(T_max, eta_min):
    base_lr = 0.1
    got = rates(CosineAnnealingLR(T_max, eta_min), base_lr)
    closed = [eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * e / T_max)) / 2 for e in range(EPOCHS)]
    assert got == pytest.approx(closed, rel=1e-12, abs=1e-15)
    assert got[T_max] == pytest.approx(eta_min, abs=1e-15)  # the trough ...
    assert got[2 * T_max] == pytest.approx(base_lr, rel=1e-12)  # ... and back up to base_lr


def test_plateau_by_hand():
    schedule = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=1)
    schedule.start(1.0)
    # epoch:    1 best  2 bad  3 bad -> halve, cooldown  4 bad (cooldown)  5 bad  6 bad -> halve
    for metric, lr in [(1.0, 1.0), (1.0, 1.0), (1.0, 0.5), (1.0, 0.5), (1.0, 0.5), (1.0, 0.25)]:
        schedule.step(metric)
        assert schedule.lr == lr
    assert schedule.epoch == 6


def test_plateau_nan_is_never_an_improvement():
    schedule = ReduceLROnPlateau(factor=0.5, patience=2)
    schedule.start(1.0)
    for _ in range(3):
        schedule.step(float("nan"))
    assert schedule.lr == 0.5
    assert schedule.best == math.inf
    schedule.step(3.0)  # any number beats inf
    assert schedule.best == 3.0 and schedule.num_bad_epochs == 0


def test_plateau_eps_skips_small_reductions():
    # 0.1 * 0.9**k is reduced while the step 0.1 * 0.9**k * 0.1 exceeds eps = 0.005, i.e. for k <= 6.
    got = rates(ReduceLROnPlateau(factor=0.9, patience=0, eps=0.005), 0.1, epochs=12, metrics=[1.0] * 12)
    assert got == pytest.approx([0.1, 0.1] + [0.1 * 0.9**k for k in range(1, 8)] + [0.1 * 0.9**7] * 3, rel=1e-14)


def test_plateau_min_lr_is_a_floor():
    schedule = ReduceLROnPlateau(factor=0.1, patience=0, min_lr=0.003)
    assert rates(schedule, 0.1, epochs=4, metrics=[1.0] * 4) == pytest.approx([0.1, 0.1, 0.01, 0.003], rel=1e-15)
    assert schedule.lr == 0.003


# --- the start / lr / step interface -------------------------------------------------------------------


def test_lr_and_step_need_a_start():
    schedule = StepLR(3)
    assert not schedule.started and schedule.epoch == 0
    with pytest.raises(RuntimeError, match=r"StepLR.lr: the schedule has not started; call start\(base_lr\) first"):
        _ = schedule.lr
    with pytest.raises(RuntimeError, match=r"StepLR\.step: the schedule has not started"):
        schedule.step()


def test_second_start_is_a_no_op_and_restart_begins_again():
    schedule = ExponentialLR(0.5)
    schedule.start(1.0)
    schedule.step()
    schedule.step()
    schedule.start(1.0)  # e.g. a second fit: carry on
    assert (schedule.epoch, schedule.lr, schedule.base_lr) == (2, 0.25, 1.0)
    with pytest.raises(ValueError, match=r"already started from base_lr=1.0 and is at epoch 2, got base_lr=0.3; "
                                         r"pass restart=True"):
        schedule.start(0.3)
    assert schedule.lr == 0.25
    schedule.start(0.3, restart=True)
    assert (schedule.epoch, schedule.lr, schedule.base_lr) == (0, 0.3, 0.3)


def test_restart_resets_plateau_progress():
    schedule = ReduceLROnPlateau(patience=5)
    schedule.start(1.0)
    schedule.step(2.0)
    schedule.step(3.0)
    schedule.start(1.0, restart=True)
    assert (schedule.best, schedule.num_bad_epochs, schedule.cooldown_counter, schedule.epoch) == (math.inf, 0, 0, 0)


@pytest.mark.parametrize("metric, error, match", [
    (None, TypeError, r"needs the epoch's metric, e.g. step\(val_loss\), got None"),
    ("0.5", TypeError, "metric must be a real number, got str '0.5'"),
    (True, TypeError, "metric must be a real number, got bool"),
])
def test_plateau_step_needs_a_real_metric_and_a_bad_call_leaves_no_trace(metric, error, match):
    schedule = ReduceLROnPlateau()
    schedule.start(0.1)
    schedule.step(1.0)
    before = schedule.state_dict()
    with pytest.raises(error, match=match):
        schedule.step(metric)
    assert schedule.state_dict() == before


def test_other_schedules_ignore_the_metric():
    assert rates(StepLR(2), 1.0, epochs=5, metrics=[float("nan"), 1, 2, None, 3]) == rates(StepLR(2), 1.0, epochs=5)


def test_start_checks_base_lr():
    with pytest.raises(TypeError, match=r"StepLR\.start: base_lr must be a real number, got str '0\.1'"):
        StepLR(2).start("0.1")
    with pytest.raises(ValueError, match=r"StepLR\.start: base_lr must be a finite number >= 0, got -0\.1"):
        StepLR(2).start(-0.1)
    with pytest.raises(ValueError, match="base_lr must be a finite number >= 0, got inf"):
        StepLR(2).start(math.inf)


def test_repr_shows_the_parameters():
    assert repr(StepLR(5)) == "StepLR(step_size=5, gamma=0.1)"
    assert repr(ExponentialLR(0.9)) == "ExponentialLR(gamma=0.9)"
    assert repr(CosineAnnealingLR(10, eta_min=1e-4)) == "CosineAnnealingLR(T_max=10, eta_min=0.0001)"
    assert repr(ReduceLROnPlateau()) == (
        "ReduceLROnPlateau(factor=0.1, patience=10, threshold=0.0001, threshold_mode='rel', cooldown=0, "
        "min_lr=0.0, eps=1e-08)"
    )


def test_all_schedules_derive_from_schedule():
    for schedule in (StepLR(1), ExponentialLR(0.5), CosineAnnealingLR(3), ReduceLROnPlateau()):
        assert isinstance(schedule, Schedule)


# --- constructor arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("make, error, match", [
    (lambda: StepLR(0), ValueError, "StepLR: step_size must be an int >= 1, got 0"),
    (lambda: StepLR(2.0), TypeError, "StepLR: step_size must be an int >= 1, got float 2.0"),
    (lambda: StepLR(True), TypeError, "step_size must be an int >= 1, got bool True"),
    (lambda: StepLR(2, gamma=0), ValueError, "StepLR: gamma must be a finite number > 0, got 0"),
    (lambda: StepLR(2, gamma=math.inf), ValueError, "gamma must be a finite number > 0, got inf"),
    (lambda: StepLR(2, gamma="0.1"), TypeError, "StepLR: gamma must be a real number, got str '0.1'"),
    (lambda: ExponentialLR(-0.5), ValueError, "ExponentialLR: gamma must be a finite number > 0, got -0.5"),
    (lambda: ExponentialLR(math.nan), ValueError, "gamma must be a finite number > 0, got nan"),
    (lambda: ExponentialLR(None), TypeError, "ExponentialLR: gamma must be a real number, got NoneType"),
    (lambda: CosineAnnealingLR(0), ValueError, "CosineAnnealingLR: T_max must be an int >= 1, got 0"),
    (lambda: CosineAnnealingLR(10.5), TypeError, "T_max must be an int >= 1, got float 10.5"),
    (lambda: CosineAnnealingLR(10, eta_min=-1e-3), ValueError, "eta_min must be a finite number >= 0, got -0.001"),
    (lambda: ReduceLROnPlateau(factor=1.0), ValueError,
     r"ReduceLROnPlateau: factor must be a number in \(0, 1\), got 1.0"),
    (lambda: ReduceLROnPlateau(factor=0), ValueError, r"factor must be a number in \(0, 1\), got 0"),
    (lambda: ReduceLROnPlateau(patience=-1), ValueError, "patience must be an int >= 0, got -1"),
    (lambda: ReduceLROnPlateau(patience=2.5), TypeError, "patience must be an int >= 0, got float 2.5"),
    (lambda: ReduceLROnPlateau(threshold=-1e-4), ValueError, "threshold must be a finite number >= 0, got -0.0001"),
    (lambda: ReduceLROnPlateau(threshold_mode="relative"), ValueError,
     "threshold_mode must be 'rel' or 'abs', got 'relative'"),
    (lambda: ReduceLROnPlateau(threshold_mode=1), TypeError, "threshold_mode must be 'rel' or 'abs', got int"),
    (lambda: ReduceLROnPlateau(cooldown=-2), ValueError, "cooldown must be an int >= 0, got -2"),
    (lambda: ReduceLROnPlateau(min_lr=-1.0), ValueError, "min_lr must be a finite number >= 0, got -1.0"),
    (lambda: ReduceLROnPlateau(eps=math.nan), ValueError, "eps must be a finite number >= 0, got nan"),
])
def test_constructor_arguments_are_checked(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_numpy_numbers_are_accepted():
    np = pytest.importorskip("numpy")
    schedule = StepLR(np.int64(3), gamma=np.float32(0.5))
    assert schedule.step_size == 3 and type(schedule.step_size) is int and type(schedule.gamma) is float


# --- checkpoints -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, torch_name, torch_kwargs, metrics", SCHEDULES)
def test_state_dict_round_trip_mid_schedule_continues_the_same(make, torch_name, torch_kwargs, metrics):
    metrics = metrics or [None] * EPOCHS
    uninterrupted = rates(make(), 0.1, metrics=metrics)

    first = make()
    first.start(0.1)
    for epoch in range(23):
        first.step(metrics[epoch])
    state = first.state_dict()
    assert all(type(value) in (int, float, str) for value in state.values()), state
    assert state["schedule"] == torch_name and state["epoch"] == 23

    resumed = make()
    resumed.load_state_dict(dict(state))
    resumed.start(0.1)  # what the trainer does at the start of fit: a no-op on a started schedule
    continued = []
    for epoch in range(23, EPOCHS):
        continued.append(resumed.lr)
        resumed.step(metrics[epoch])
    assert continued == uninterrupted[23:]
    straight_through = make()
    rates(straight_through, 0.1, metrics=metrics)
    assert resumed.state_dict() == straight_through.state_dict()


def test_load_state_dict_restores_the_parameters_too():
    saved = StepLR(3, gamma=0.5)
    saved.start(1.0)
    saved.step()
    other = StepLR(10)
    other.load_state_dict(saved.state_dict())
    assert repr(other) == "StepLR(step_size=3, gamma=0.5)"
    assert other.state_dict() == saved.state_dict()


def test_state_dict_of_an_unstarted_schedule():
    state = CosineAnnealingLR(5).state_dict()
    assert state == {"schedule": "CosineAnnealingLR", "T_max": 5, "eta_min": 0.0, "epoch": 0}
    started = CosineAnnealingLR(5)
    started.start(0.1)
    started.load_state_dict(state)
    assert not started.started


def _plateau_state():
    schedule = ReduceLROnPlateau(patience=3)
    schedule.start(0.1)
    schedule.step(1.0)
    schedule.step(2.0)
    return schedule.state_dict()


@pytest.mark.parametrize("change, match", [
    (lambda s: s.pop("best"), r"missing keys \['best'\] and has unknown keys \[\]"),
    (lambda s: s.update(extra=1), r"missing keys \[\] and has unknown keys \['extra'\]"),
    (lambda s: s.update(schedule="StepLR"),
     "expected the state of a ReduceLROnPlateau, got one with 'schedule' = 'StepLR'"),
    (lambda s: s.update(epoch="2"), r"state\['epoch'\] must be an int >= 0, got str '2'"),
    (lambda s: s.update(epoch=-1), r"state\['epoch'\] must be an int >= 0, got -1"),
    (lambda s: s.update(num_bad_epochs=True), r"state\['num_bad_epochs'\] must be an int >= 0, got bool"),
    (lambda s: s.update(best=float("nan")), r"state\['best'\] must be a number or inf, got nan"),
    (lambda s: s.update(lr=-0.5), r"state\['lr'\] must be a finite number >= 0, got -0.5"),
    (lambda s: s.update(base_lr=None), r"state\['base_lr'\] must be a real number, got NoneType"),
    (lambda s: s.update(factor=2.0), r"invalid state: ReduceLROnPlateau: factor must be a number in \(0, 1\), got 2.0"),
    (lambda s: s.pop("lr"), r"missing keys \['lr'\]"),
])
def test_load_state_dict_names_the_problem_and_changes_nothing(change, match):
    state = _plateau_state()
    change(state)
    schedule = ReduceLROnPlateau(patience=7)
    schedule.start(0.5)
    before = schedule.state_dict()
    with pytest.raises(ValueError, match=match):
        schedule.load_state_dict(state)
    assert schedule.state_dict() == before


def test_load_state_dict_refuses_a_non_dict():
    with pytest.raises(ValueError, match="expected the dict returned by state_dict\\(\\), got list"):
        StepLR(2).load_state_dict([("epoch", 0)])
