"""The vectorized optimizer updates (cpp/fastmlp/optim.hpp, optim_avx2.hpp): the AVX2 loops do the
scalar code's operations in its order without fused multiply-adds, so they must give the generic
path's bits exactly, on lengths that exercise full vectors, a remainder and several 16 Ki chunks;
the thread count changes no bit; and both follow the NumPy oracle (tests/kernels/test_optimizers.py checks
each rule within 3 ulp of the largest value on every path; here a long array, several steps)."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _core
from fastmlp import reference as ref
from fastmlp.optim import SGD, Adam, AdamW, RMSprop

HAS_AVX2 = fastmlp.build_info()["isa_available"] in ("avx2", "avx512")  # avx512 runs the AVX2 loops

CASES = [
    pytest.param(lambda: SGD(0.05, momentum=0.9), id="momentum"),
    pytest.param(lambda: SGD(0.05, momentum=0.9, nesterov=True), id="nesterov"),
    pytest.param(lambda: SGD(0.1, weight_decay=0.01), id="decay"),
    pytest.param(lambda: SGD(0.03, momentum=0.5, nesterov=True, weight_decay=0.1), id="nesterov-decay"),
    pytest.param(lambda: Adam(), id="adam"),
    pytest.param(lambda: Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), id="adam-decay"),
    pytest.param(lambda: AdamW(lr=0.01, weight_decay=0.1), id="adamw"),
    pytest.param(lambda: RMSprop(), id="rmsprop"),
    pytest.param(lambda: RMSprop(lr=1e-3, alpha=0.9, momentum=0.9, weight_decay=0.01), id="rmsprop-momentum-decay"),
    pytest.param(lambda: RMSprop(lr=1e-3, alpha=0.9, weight_decay=0.01), id="rmsprop-decay"),
]
# 2 x 16 Ki + 13: two full chunks and a third whose length is no multiple of 8 or 4 lanes.
N = 2 * 16 * 1024 + 13
ORACLE = {"sgd": ref.sgd_step, "adam": ref.adam_step, "adamw": ref.adamw_step, "rmsprop": ref.rmsprop_step}
STATE_KEYS = {"sgd": ("momentum_buffer",), "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"),
              "rmsprop": ("square_avg", "momentum_buffer")}


def run_updates(make_opt, dtype, steps=4, wd=None, n=N):
    opt = make_opt()
    spec = opt._spec()
    wd = spec["weight_decay"] if wd is None else wd
    rng = np.random.default_rng(3)
    param = rng.normal(size=n).astype(dtype)
    buffers = [np.zeros_like(param) for _ in opt.state_names]
    for t in range(1, steps + 1):
        grad = (rng.normal(size=n) * rng.choice([1e-3, 1.0, 10.0], size=n)).astype(dtype)
        spec["step"] = t
        _core.optimizer_update(param, grad, buffers, spec, wd)
    return [param] + buffers


@pytest.mark.skipif(not HAS_AVX2, reason="this CPU has no AVX2 path to compare")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_opt", CASES)
@pytest.mark.parametrize("n", [N, 5, 8, 13])
def test_the_avx2_update_gives_the_generic_bits(make_opt, dtype, n):
    before = _core.get_isa()
    try:
        _core.set_isa("generic")
        want = run_updates(make_opt, dtype, n=n)
        _core.set_isa("avx2")
        got = run_updates(make_opt, dtype, n=n)
    finally:
        _core.set_isa(before)
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_opt", CASES)
def test_the_thread_count_changes_no_bit_of_an_update(make_opt, dtype, isa, threads):
    results = []
    for n_threads in (1, 2, 3):
        threads(n_threads)  # the native setter: 3 threads on 2 cores is the point here, no warning
        results.append([a.tobytes() for a in run_updates(make_opt, dtype)])
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_opt", CASES)
def test_a_long_update_follows_the_oracle(make_opt, dtype, isa):
    # Error bound: 3 ulp of the largest value (the oracle fuses multiply-adds where torch does).
    # Gradients of magnitude 1 and 10 only: at 1e-3 (test_optimizers.py covers it on a short array)
    # RMSprop's decayed gradient g + wd p can cancel, and d / sqrt(avg) then amplifies the rounding
    # of that cancellation on one element in tens of thousands, in any implementation.
    opt = make_opt()
    spec = opt._spec()
    wd = spec["weight_decay"]
    rng = np.random.default_rng(5)
    param = rng.normal(size=N).astype(dtype)
    want = param.copy()
    buffers = [np.zeros_like(param) for _ in opt.state_names]
    state = {}
    hyper = {k: v for k, v in spec.items() if k not in ("kind", "step", "lr", "weight_decay")}
    for t in range(1, 4):
        grad = (rng.normal(size=N) * rng.choice([1.0, 10.0], size=N)).astype(dtype)
        spec["step"] = t
        _core.optimizer_update(param, grad, buffers, spec, wd)
        oracle_args = dict(lr=spec["lr"], weight_decay=wd)
        if opt.kind == "sgd":
            oracle_args.update(momentum=hyper["momentum"], nesterov=hyper["nesterov"])
        elif opt.kind in ("adam", "adamw"):
            oracle_args.update(betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])
        else:
            oracle_args.update(alpha=hyper["alpha"], eps=hyper["eps"], momentum=hyper["momentum"])
        ORACLE[opt.kind](want, grad, state, **oracle_args)
        for got, w in [(param, want)] + [(b, state[k]) for k, b in zip(STATE_KEYS[opt.kind], buffers)]:
            scale = np.max(np.abs(w.astype(np.float64)))
            err = np.max(np.abs(got.astype(np.float64) - w.astype(np.float64)))
            assert err <= 3 * np.finfo(dtype).eps * scale
