"""The AVX2 float32 activations of vecmath_avx2.hpp (elu with its own expm1, silu, gelu and their g',
softplus' g' = -expm1(-h)) against the float64 NumPy oracle on every kernel path, over values from
1e-8 to 200 in magnitude, with the error bounds they are held to:
- g of elu and silu, g' of elu and softplus: 3 ulp relative where |value| >= 1e-6, else 3 ulp of
  1e-6 absolute (the clamped exp of vecmath gives ~1e-36 where silu underflows);
- gelu a Φ(a) on the AVX2 path (Φ fitted for this file, a² split exactly): 4 ulp relative down to
  |value| 1e-30; the generic path's libm erfc of a rounded a/√2 is held to 16 ulp above 1e-6 only;
- g' of gelu, Φ(a) + a φ(a): 2 ulp of 1 absolute (it crosses zero at a = -0.75);
- g' of silu, s (1 + a (1 - s)): 16 ulp of 1 absolute (the sum cancels where g' crosses zero, at
  a = -1.28, in libm's scalar code as much as in the vector code; |g'| <= 1.1 everywhere).
The vector code handles a row's tail on a padded copy, so a value's result must not depend on its
position in the row; checked too."""

import numpy as np
import pytest

from fastmlp import _core
from fastmlp import reference as ref

EPS = float(np.finfo(np.float32).eps)


def inputs():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=20000) * s for s in (0.01, 0.3, 1, 3, 10, 40)]
    parts += [np.linspace(-200, 200, 40001), -np.logspace(-8, 1.5, 4000), np.logspace(-8, 1.5, 4000),
              [0.0, -0.0, -0.5, -0.49999997, -0.50000006, 87.0, -87.0, -88.0, -104.0]]
    return np.concatenate(parts).astype(np.float32)


def check(got, want, rel_ulps=3.0, floor=1e-6):
    got = got.astype(np.float64)
    err = np.abs(got - want)
    bound = rel_ulps * EPS * np.maximum(np.abs(want), floor)
    worst = np.argmax(err / bound)
    assert np.all(err <= bound), f"error {err[worst]:.3g} at want {want[worst]:.6g} (bound {bound[worst]:.3g})"


@pytest.mark.parametrize("g", ["elu", "silu"])
def test_forward_within_its_bound(g, isa):
    a = inputs()
    check(_core.activation_forward(a.reshape(1, -1), g)[0], ref.activation_forward(a.astype(np.float64), g))


def test_gelu_within_its_bound(isa):
    a = np.concatenate([inputs(), np.linspace(-13, 13, 100001, dtype=np.float32)])
    got = _core.activation_forward(a.reshape(1, -1), "gelu")[0]
    want = ref.activation_forward(a.astype(np.float64), "gelu")
    if isa != "generic":  # the avx512 path runs the AVX2 gelu
        check(got[np.abs(a) <= 13], want[np.abs(a) <= 13], rel_ulps=4.0, floor=1e-30)
    else:
        check(got, want, rel_ulps=16.0, floor=1e-6)
    d = _core.activation_backward(np.ones((1, a.size), np.float32), a.reshape(1, -1), "gelu")[0]
    a64 = a.astype(np.float64)
    check(d, ref.activation_backward(np.ones_like(a64), a64, "gelu", a=a64), rel_ulps=2.0, floor=1.0)


@pytest.mark.parametrize("g", ["elu", "softplus"])
def test_derivative_from_the_output_within_its_bound(g, isa):
    a = inputs()
    h = ref.activation_forward(a.astype(np.float64), g).astype(np.float32)
    dh = np.ones_like(a)
    got = _core.activation_backward(dh.reshape(1, -1), h.reshape(1, -1), g)[0]
    check(got, ref.activation_backward(np.ones_like(h, np.float64), h.astype(np.float64), g))


def test_silu_derivative_within_its_absolute_bound(isa):
    a = inputs()
    got = _core.activation_backward(np.ones((1, a.size), np.float32), a.reshape(1, -1), "silu")[0]
    want = ref.activation_backward(np.ones(a.size), a.astype(np.float64), "silu", a=a.astype(np.float64))
    check(got, want, rel_ulps=16.0, floor=1.0)


@pytest.mark.parametrize("g", ["elu", "silu", "gelu", "softplus", "tanh", "sigmoid"])
def test_a_values_result_does_not_depend_on_its_place_in_the_row(g, isa):
    a = np.random.default_rng(1).normal(size=37).astype(np.float32) * 3
    whole = _core.activation_forward(a.reshape(1, -1), g)[0]
    for start in (1, 3, 8, 30):
        part = _core.activation_forward(np.ascontiguousarray(a[start:]).reshape(1, -1), g)[0]
        assert part.tobytes() == whole[start:].tobytes()
    back = _core.activation_backward(np.ones((1, 37), np.float32), np.abs(whole).reshape(1, -1) + 0.1,
                                     "softplus")[0]
    back_part = _core.activation_backward(np.ones((1, 29), np.float32), np.abs(whole[8:]).reshape(1, -1) + 0.1,
                                          "softplus")[0]
    assert back_part.tobytes() == back[8:].tobytes()


def test_signed_zeros_and_non_finite_values_keep_libms_results(isa):
    a = np.array([[-0.0, 0.0, np.inf, -np.inf, np.nan, -1e-30, 1e30, -1e30, 0, 0]], np.float32)
    for g in ("elu", "silu", "gelu"):
        got = _core.activation_forward(a, g)
        _core.set_isa("generic")
        want = _core.activation_forward(a, g)
        _core.set_isa(isa)
        np.testing.assert_array_equal(np.signbit(got[:, :2]), np.signbit(want[:, :2]))
        np.testing.assert_array_equal(got[:, [0, 1, 2, 4]], want[:, [0, 1, 2, 4]])
