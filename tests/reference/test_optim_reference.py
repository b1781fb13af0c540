"""Tests of the NumPy optimizer oracle (fastmlp.reference._optim) against hand-worked steps and torch.optim.

The hand-worked steps, the fused multiply-add against exact rational arithmetic and the argument checks
need only NumPy; the comparisons with torch.optim (single-tensor CPU path, foreach=False) are skipped
where torch is not installed.
"""

from fractions import Fraction

import numpy as np
import pytest

from fastmlp import reference as ref
from fastmlp.reference import _optim

DTYPES = [np.float32, np.float64]


# --- hand-worked first steps (no torch) ----------------------------------------------------------------


def test_sgd_first_steps_by_hand():
    param = np.array([1.0, -2.0])
    sgd = dict(lr=0.1)
    ref.sgd_step(param, np.array([0.5, 0.25]), {}, **sgd)
    # param - lr * grad
    np.testing.assert_allclose(param, [0.95, -2.025], rtol=1e-15)

    param = np.array([1.0, -2.0])
    ref.sgd_step(param, np.array([0.5, 0.25]), {}, lr=0.1, weight_decay=0.1)
    # g = grad + 0.1 * param = [0.6, 0.05]
    np.testing.assert_allclose(param, [0.94, -2.005], rtol=1e-15)


def test_sgd_momentum_buffer_starts_at_the_gradient():
    param, state = np.array([1.0]), {}
    ref.sgd_step(param, np.array([0.5]), state, lr=0.1, momentum=0.9)
    # First step: buf = g (not 0.9 * 0 + g, which is the same here, and not (1 - 0.9) * g).
    assert state["momentum_buffer"].tolist() == [0.5]
    np.testing.assert_allclose(param, [0.95], rtol=1e-15)
    ref.sgd_step(param, np.array([1.0]), state, lr=0.1, momentum=0.9)
    # buf = 0.9 * 0.5 + 1.0 = 1.45; param = 0.95 - 0.145
    np.testing.assert_allclose(state["momentum_buffer"], [1.45], rtol=1e-15)
    np.testing.assert_allclose(param, [0.805], rtol=1e-15)


def test_sgd_nesterov_first_step_by_hand():
    param, state = np.array([1.0]), {}
    ref.sgd_step(param, np.array([0.5]), state, lr=0.1, momentum=0.9, nesterov=True)
    # buf = g = 0.5; step along g + 0.9 * buf = 0.95
    np.testing.assert_allclose(param, [1.0 - 0.095], rtol=1e-15)


def test_sgd_leaves_the_gradient_alone():
    grad = np.array([0.5, -1.0])
    state = {}
    ref.sgd_step(np.array([1.0, 2.0]), grad, state, lr=0.1, momentum=0.9, weight_decay=0.1)
    assert grad.tolist() == [0.5, -1.0]
    assert not np.shares_memory(state["momentum_buffer"], grad)


@pytest.mark.parametrize("step", [ref.adam_step, ref.adamw_step])
def test_adam_first_step_moves_each_param_by_lr_times_sign_of_grad(step):
    # t = 1: m = 0.1 g and v = 0.001 g^2; divided by the bias corrections 0.1 and 0.001 they are g and g^2,
    # so the step is lr * g / (|g| + eps): lr * sign(g) up to eps, and 0 where g = 0.
    grad = np.array([2.0, -0.5, 1e-3, 0.0])
    param, state = np.array([1.0, 1.0, -1.0, 3.0]), {}
    step(param, grad, state, lr=0.01, weight_decay=0.0)
    expected = np.array([1.0, 1.0, -1.0, 3.0]) - 0.01 * grad / (np.abs(grad) + 1e-8)
    np.testing.assert_allclose(param, expected, rtol=1e-14)
    np.testing.assert_allclose(param, [0.99, 1.01, -1.01, 3.0], rtol=1e-7)
    assert state["step"] == 1
    np.testing.assert_allclose(state["exp_avg"], 0.1 * grad, rtol=1e-15)
    np.testing.assert_allclose(state["exp_avg_sq"], 0.001 * grad**2, rtol=1e-13)


def test_adam_weight_decay_enters_the_gradient():
    # L2: g = 1 + 0.5 * 2 = 2, still lr * sign(g) on the first step, but the averages hold the decayed g.
    param, state = np.array([2.0]), {}
    ref.adam_step(param, np.array([1.0]), state, lr=0.01, weight_decay=0.5)
    np.testing.assert_allclose(param, [1.99], rtol=1e-9)
    np.testing.assert_allclose(state["exp_avg"], [0.2], rtol=1e-15)


def test_adamw_weight_decay_is_decoupled():
    # param * (1 - lr * wd) first: 2 * (1 - 0.01 * 0.5) = 1.99, then - lr * sign(g); the averages see g only.
    param, state = np.array([2.0]), {}
    ref.adamw_step(param, np.array([1.0]), state, lr=0.01, weight_decay=0.5)
    np.testing.assert_allclose(param, [1.98], rtol=1e-9)
    np.testing.assert_allclose(state["exp_avg"], [0.1], rtol=1e-15)


def test_adamw_default_weight_decay_is_torchs():
    param_default, param_explicit = np.array([2.0]), np.array([2.0])
    ref.adamw_step(param_default, np.array([1.0]), {}, lr=0.1)
    ref.adamw_step(param_explicit, np.array([1.0]), {}, lr=0.1, weight_decay=1e-2)
    assert param_default.tolist() == param_explicit.tolist()
    np.testing.assert_allclose(param_default, [2.0 * (1 - 0.1 * 1e-2) - 0.1], rtol=1e-9)


def test_rmsprop_first_step_by_hand():
    # v = (1 - 0.99) g^2, so sqrt(v) = 0.1 |g| and the step is lr * g / (0.1 |g| + eps) ~ 10 lr sign(g).
    grad = np.array([4.0, -0.25])
    for momentum in (0.0, 0.9):  # with momentum, buf = 0 * 0.9 + g / avg: the same first step
        param, state = np.array([1.0, 1.0]), {}
        ref.rmsprop_step(param, grad, state, lr=0.01, momentum=momentum)
        expected = 1.0 - 0.01 * grad / (0.1 * np.abs(grad) + 1e-8)
        np.testing.assert_allclose(param, expected, rtol=1e-14)
        np.testing.assert_allclose(param, [0.9, 1.1], rtol=1e-7)
        np.testing.assert_allclose(state["square_avg"], 0.01 * grad**2, rtol=1e-14)
        assert state["step"] == 1
        assert ("momentum_buffer" in state) == (momentum > 0)


STEPS = [
    pytest.param(ref.sgd_step, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), id="sgd"),
    pytest.param(ref.adam_step, dict(lr=0.01, weight_decay=0.01), id="adam"),
    pytest.param(ref.adamw_step, dict(lr=0.01), id="adamw"),
    pytest.param(ref.rmsprop_step, dict(lr=0.01, momentum=0.9, weight_decay=0.01), id="rmsprop"),
]


@pytest.mark.parametrize("step, hyperparameters", STEPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_steps_update_in_place_and_keep_the_dtype(step, hyperparameters, dtype):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((6, 8)).astype(dtype)
    param = weights[:, ::2]  # a strided view: the update must land in `weights`
    state = {}
    for _ in range(3):
        grad = rng.standard_normal(param.shape)  # float64 even for a float32 param: converted
        grad_before = grad.copy()
        step(param, grad, state, **hyperparameters)
        assert grad.tolist() == grad_before.tolist()
    assert param.dtype == dtype and weights.dtype == dtype
    assert np.shares_memory(param, weights)
    for name, value in state.items():
        if name == "step":
            assert isinstance(value, int) and value == 3
        else:
            assert value.dtype == dtype and value.shape == param.shape, name


@pytest.mark.parametrize("step, hyperparameters", STEPS)
def test_float32_steps_compute_in_float32(step, hyperparameters):
    # The same inputs in float64 give a different float32 rounding than float32 arithmetic does.
    rng = np.random.default_rng(1)
    start, grads = rng.standard_normal(1000), rng.standard_normal((5, 1000))
    param32, param64, state32, state64 = start.astype(np.float32), start.astype(np.float32).astype(np.float64), {}, {}
    for grad in grads:
        step(param32, grad.astype(np.float32), state32, **hyperparameters)
        step(param64, grad.astype(np.float32).astype(np.float64), state64, **hyperparameters)
    np.testing.assert_allclose(param32, param64, rtol=1e-5, atol=1e-6)
    assert np.any(param32 != param64.astype(np.float32))


# --- the fused multiply-add (no torch) --------------------------------------------------------------


def _exactly_rounded(a, b, c, dtype):
    """a * b + c computed exactly in rationals and rounded once to dtype (ties to even)."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    nearest = dtype(float(exact))  # float() rounds once to float64; the neighbours fix a second rounding
    below, above = np.nextafter(nearest, dtype(-np.inf)), np.nextafter(nearest, dtype(np.inf))
    candidates = sorted((abs(Fraction(float(x)) - exact), int(np.asarray(x).view(f"u{x.itemsize}") & 1), x)
                        for x in (below, nearest, above))
    return candidates[0][2]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_multiply_add_rounds_once(dtype):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(3000).astype(dtype)
    b = rng.standard_normal(3000).astype(dtype)
    # c near -a*b cancels most bits, the case where rounding the product first goes most wrong.
    c = (-(a.astype(np.float64) * b) * (1 + rng.choice([0.0, 1e-7, -1e-7, 1e-3], 3000))).astype(dtype)
    c[::3] = rng.standard_normal(1000).astype(dtype)
    got = _optim._fused_multiply_add(a, b, c)
    assert got.dtype == dtype
    expected = np.array([_exactly_rounded(x, y, z, dtype) for x, y, z in zip(a, b, c)], dtype=dtype)
    np.testing.assert_array_equal(got, expected)
    # ... where two roundings would not do:
    assert np.any((a * b + c) != expected)


def test_fused_multiply_add_float32_near_a_tie():
    # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 lies exactly halfway between two float32 values; + 2^-70 breaks the
    # tie upwards. Rounded to float64 first, the 2^-70 is lost and the tie goes to even (downwards).
    a = np.float32(1 + 2**-12)
    got = _optim._fused_multiply_add(np.array([a]), a, np.array([2**-70], np.float32))
    assert got[0] == np.float32(1 + 2**-11 + 2**-23)


def test_fused_multiply_add_keeps_infinities():
    with np.errstate(over="ignore"):  # 1e300 * 1e10 overflows, as it should
        got = _optim._fused_multiply_add(np.array([np.inf, 1.0, 1e300]), np.array([1.0, 2.0, 1e10]), np.array([0.0, -np.inf, 0.0]))
    assert got.tolist() == [np.inf, -np.inf, np.inf]


# --- argument checks (no torch) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ref.sgd_step([1.0], [1.0], {}, lr=0.1), TypeError, "param must be a NumPy array.*list"),
        (lambda: ref.sgd_step(np.ones(2, np.int64), np.ones(2), {}, lr=0.1), TypeError, "float32 or float64, got int64"),
        (lambda: ref.adam_step(np.ones(3), np.ones(2), {}, lr=0.1), ValueError, r"shape of param \(3,\), got shape \(2,\)"),
        (lambda: ref.sgd_step(np.ones(2), np.ones(2), [], lr=0.1), TypeError, "state must be a dict"),
        (lambda: ref.sgd_step(np.ones(2), np.ones(2), {}, lr=-0.1), ValueError, "lr must be a finite number >= 0, got -0.1"),
        (lambda: ref.sgd_step(np.ones(2), np.ones(2), {}, lr="0.1"), TypeError, "lr must be a real number, got str"),
        (lambda: ref.sgd_step(np.ones(2), np.ones(2), {}, lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
        (lambda: ref.adam_step(np.ones(2), np.ones(2), {}, lr=0.1, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be a finite number >= 0 and < 1, got 1.0"),
        (lambda: ref.adam_step(np.ones(2), np.ones(2), {}, lr=0.1, betas=0.9), TypeError, "betas must be a pair"),
        (lambda: ref.rmsprop_step(np.ones(2), np.ones(2), {}, alpha=1.5), ValueError, "alpha must be a finite number >= 0 and <= 1, got 1.5"),
        (lambda: ref.adamw_step(np.ones(2), np.ones(2), {}, lr=np.nan), ValueError, "lr must be a finite number"),
        (lambda: ref.adam_step(np.ones(2), np.ones(2), {"exp_avg": np.ones(3)}, lr=0.1), ValueError, r"state\['exp_avg'\] must be a float64 array of shape \(2,\)"),
        (lambda: ref.adam_step(np.ones(2), np.ones(2), {"step": -1}, lr=0.1), ValueError, r"state\['step'\] must be an int >= 0"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_read_only_param_is_refused():
    param = np.ones(2)
    param.flags.writeable = False
    with pytest.raises(ValueError, match="param must be writeable"):
        ref.sgd_step(param, np.ones(2), {}, lr=0.1)


# --- against torch.optim -----------------------------------------------------------------------------

CASES = [
    pytest.param("sgd", dict(lr=0.1), id="sgd"),
    pytest.param("sgd", dict(lr=0.3, weight_decay=0.1), id="sgd-decay"),
    pytest.param("sgd", dict(lr=0.05, momentum=0.9), id="sgd-momentum"),
    pytest.param("sgd", dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=1e-3), id="sgd-nesterov-decay"),
    pytest.param("adam", dict(lr=1e-3), id="adam"),
    pytest.param("adam", dict(lr=1e-2, betas=(0.3, 0.5), eps=1e-6, weight_decay=0.05), id="adam-betas-decay"),
    pytest.param("adam", dict(lr=1e-2, betas=(0.0, 0.99)), id="adam-beta1-zero"),
    pytest.param("adamw", dict(lr=1e-3), id="adamw"),
    pytest.param("adamw", dict(lr=3e-2, betas=(0.8, 0.9), weight_decay=0.2), id="adamw-betas-decay"),
    pytest.param("rmsprop", dict(), id="rmsprop"),
    pytest.param("rmsprop", dict(lr=1e-3, alpha=0.9, momentum=0.9, weight_decay=1e-2), id="rmsprop-momentum-decay"),
]
ORACLES = {"sgd": ref.sgd_step, "adam": ref.adam_step, "adamw": ref.adamw_step, "rmsprop": ref.rmsprop_step}
N_STEPS = 30


def _run_both(torch, name, hyperparameters, dtype, seed=0):
    """Take N_STEPS steps with the oracle and with torch.optim on the same random gradients."""
    optimizers = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                  "rmsprop": torch.optim.RMSprop}
    rng = np.random.default_rng(seed)
    # 11 x 13: an odd size, so that torch's vector loops end in a scalar tail.
    start = rng.standard_normal((11, 13)).astype(dtype)
    ours, state = start.copy(), {}
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    optimizer = optimizers[name]([theirs], foreach=False, **hyperparameters)  # the single-tensor path
    for _ in range(N_STEPS):
        # Gradients of varying scale, so that Adam's and RMSprop's averages move.
        grad = (rng.standard_normal(start.shape) * 10.0 ** rng.uniform(-3, 1)).astype(dtype)
        theirs.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        ORACLES[name](ours, grad, state, **hyperparameters)
    return ours, theirs.detach().numpy()


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def _torch_fuses_multiply_adds(torch):
    # The x86-64 AVX2 and AVX-512 kernels use FMA instructions; the "default" build rounds twice.
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, hyperparameters", CASES)
def test_bitwise_torch_with_torchs_square_root(torch, monkeypatch, name, hyperparameters, dtype):
    # torch's CPU sqrt is not correctly rounded; with it in place of NumPy's, every other operation of the
    # oracle - rounding of the hyperparameters, fused multiply-adds, order of operations - is torch's.
    if not _torch_fuses_multiply_adds(torch):
        pytest.skip(f"torch runs its {torch.backends.cpu.get_cpu_capability()} kernels, which do not fuse a * b + c")
    monkeypatch.setattr(
        _optim, "_sqrt", lambda x: torch.sqrt(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    )
    for seed in range(3):
        ours, theirs = _run_both(torch, name, hyperparameters, dtype, seed)
        np.testing.assert_array_equal(ours, theirs)


# The largest difference after N_STEPS steps, in ulps of the largest parameter (|param| ~ 4), over seeds
# 0-4 on an AVX-512 CPU with torch 2.13: SGD 0 (bitwise); Adam and AdamW 0.5; RMSprop 2, all from torch's
# sqrt alone. With ATEN_CPU_CAPABILITY=default (no fused multiply-adds) every optimizer is within 2.
ULPS_OF_SCALE_FUSED = {"sgd": 0, "adam": 1, "adamw": 1, "rmsprop": 3}
ULPS_OF_SCALE_UNFUSED = 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, hyperparameters", CASES)
def test_agrees_with_torch(torch, name, hyperparameters, dtype):
    fused = _torch_fuses_multiply_adds(torch)
    tolerance = ULPS_OF_SCALE_FUSED[name] if fused else ULPS_OF_SCALE_UNFUSED
    for seed in range(3):
        ours, theirs = _run_both(torch, name, hyperparameters, dtype, seed)
        difference = np.max(np.abs(ours.astype(np.float64) - theirs))
        ulp_of_scale = np.spacing(np.max(np.abs(theirs)))
        assert difference <= tolerance * ulp_of_scale, (
            f"{name} {dtype.__name__} seed {seed}: max |difference| {difference:.3g} = "
            f"{difference / ulp_of_scale:.2f} ulps of the largest parameter, more than {tolerance}"
        )
