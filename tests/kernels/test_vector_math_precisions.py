"""Every activation's g and g' in float32 AND float64 on every kernel path, against a NumPy oracle
one precision up (the package's reference evaluated in long double, or float64 where long double is
no wider), with the error bounds the vector code of vecmath_avx2.hpp is held to:
- g of tanh, sigmoid, elu, silu, softplus, leaky_relu (the AVX2 path's own exp/expm1/log1p in both
  precisions, libm's on the generic path): 4 ulp of the dtype, relative, where |value| >= FLOOR
  (1e-30 in float32, 1e-290 in float64: below it exp's clamp gives ~1e-38 / ~3e-308 instead);
- g' from h of elu, softplus, leaky_relu (softplus' -expm1(-h) in both precisions): 4 ulp relative
  where |value| >= 1e-6, else 4 ulp of 1e-6 absolute;
- g' of tanh and sigmoid (1 - h², h (1 - h): the formula's own rounding, FMA or not) and of silu
  (s (1 + a (1 - s)) cancels where it crosses zero at a = -1.28): 32 ulp of 1, absolute (|g'| <= 1.1).
gelu in float64 keeps libm's erfc (no vector code; its float32 bounds are in test_vector_math.py).
"""

import numpy as np
import pytest

from fastmlp import _core
from fastmlp import reference as ref

WIDE = np.longdouble if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps else np.float64
DTYPES = [np.float32, np.float64]
FLOOR = {np.float32: 1e-30, np.float64: 1e-290}
FORWARD = ["tanh", "sigmoid", "elu", "silu", "softplus", "leaky_relu"]


def inputs(dtype):
    rng = np.random.default_rng(7)
    parts = [rng.normal(size=10000) * s for s in (1e-6, 0.01, 0.3, 1, 3, 10, 40)]
    parts += [np.linspace(-120, 120, 24001), -np.logspace(-12, 2.5, 3000), np.logspace(-12, 2.5, 3000),
              [0.0, -0.0, 0.41421356, -0.88137359, -0.5, 0.5, 1e-30, -1e-30]]
    if dtype == np.float64:
        parts += [np.linspace(-700, 700, 2001)]
    return np.concatenate(parts).astype(dtype)


def check(got, want, dtype, ulps, floor):
    got = got.astype(WIDE)
    err = np.abs(got - want)
    bound = ulps * float(np.finfo(dtype).eps) * np.maximum(np.abs(want), floor)
    worst = np.argmax(err / bound)
    assert np.all(err <= bound), f"error {float(err[worst]):.3g} at want {float(want[worst]):.6g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", FORWARD)
def test_forward_within_four_ulp(g, dtype, isa):
    a = inputs(dtype)
    got = _core.activation_forward(a.reshape(1, -1), g)[0]
    want = ref.activation_forward(a.astype(WIDE), g)
    keep = np.abs(want) >= FLOOR[dtype]
    check(got[keep], want[keep], dtype, 4.0, FLOOR[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", ["elu", "softplus", "leaky_relu"])
def test_derivative_from_the_output_within_four_ulp(g, dtype, isa):
    h = ref.activation_forward(inputs(dtype).astype(np.float64), g).astype(dtype)
    got = _core.activation_backward(np.ones((1, h.size), dtype), h.reshape(1, -1), g)[0]
    check(got, ref.activation_backward(np.ones(h.size, WIDE), h.astype(WIDE), g), dtype, 4.0, 1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", ["tanh", "sigmoid", "silu"])
def test_derivative_within_its_absolute_bound(g, dtype, isa):
    a = inputs(dtype)
    saved = a if g == "silu" else ref.activation_forward(a.astype(np.float64), g).astype(dtype)
    got = _core.activation_backward(np.ones((1, a.size), dtype), saved.reshape(1, -1), g)[0]
    wide = saved.astype(WIDE)
    want = ref.activation_backward(np.ones(a.size, WIDE), wide, g, **({"a": wide} if g == "silu" else {}))
    check(got, want, dtype, 32.0, 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", FORWARD)
def test_the_gradient_passes_a_dh_through_exactly_as_the_product(g, dtype, isa):
    """da = dh ⊙ g': the vector code multiplies by dh like the scalar loops (ones gave g' alone)."""
    rng = np.random.default_rng(3)
    a = (rng.normal(size=(3, 21)) * 2).astype(dtype)
    saved = a if g == "silu" else _core.activation_forward(a, g)
    dh = rng.normal(size=a.shape).astype(dtype)
    ones = _core.activation_backward(np.ones_like(a), saved, g)
    np.testing.assert_array_equal(_core.activation_backward(dh, saved, g), (dh * ones).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", FORWARD + ["gelu"])
def test_a_values_result_does_not_depend_on_its_place_in_the_row(g, dtype, isa):
    a = (np.random.default_rng(1).normal(size=37) * 3).astype(dtype)
    whole = _core.activation_forward(a.reshape(1, -1), g)[0]
    back = _core.activation_backward(np.ones((1, 37), dtype), whole.reshape(1, -1), g)[0]
    for start in (1, 3, 4, 8, 30):
        part = _core.activation_forward(np.ascontiguousarray(a[start:]).reshape(1, -1), g)[0]
        assert part.tobytes() == whole[start:].tobytes()
        tail = np.ascontiguousarray(whole[start:]).reshape(1, -1)
        back_part = _core.activation_backward(np.ones_like(tail), tail, g)[0]
        assert back_part.tobytes() == back[start:].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_signed_zeros_and_non_finite_values_keep_libms_results(dtype, isa):
    a = np.array([[-0.0, 0.0, np.inf, np.nan, -0.0, 0.0, 1, 2]], dtype)
    for g in FORWARD:
        got = _core.activation_forward(a, g)
        _core.set_isa("generic")
        want = _core.activation_forward(a, g)
        _core.set_isa(isa)
        np.testing.assert_array_equal(np.signbit(got[:, :2]), np.signbit(want[:, :2]), err_msg=g)
        np.testing.assert_array_equal(got[:, :4], want[:, :4], err_msg=g)
