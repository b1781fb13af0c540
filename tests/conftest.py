"""Shared fixtures: seeded data, and guards that restore the native thread count and kernel path."""

import signal

import numpy as np
import pytest

import fastmlp

# The Ctrl-C tests (tests/robustness/) send SIGINT to this process and to child processes and
# expect Python's KeyboardInterrupt. A shell that starts a command in the background without job
# control (`pytest ... &` in a script, nohup) starts it with SIGINT ignored, which Python then
# keeps: those tests would wait forever (a 100,000-epoch fit never interrupted). The suite puts
# Python's default handler back; children started afterwards then begin with SIGINT at default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Set the native thread count inside a test; the previous count comes back afterwards. The
    governor that keeps work on one thread while sharing does not pay (a loaded machine) is off
    meanwhile, so that the count set is the count that runs."""
    before = fastmlp.get_num_threads()
    governor_was_on = fastmlp._core._set_share_governor(False)
    yield fastmlp._core.set_num_threads
    fastmlp._core.set_num_threads(before)
    fastmlp._core._set_share_governor(governor_was_on)


# Every kernel path this CPU can run: the tests that take the `isa` fixture run once per path.
# The paths are ordered (isa.hpp): a CPU that runs one runs every path before it.
AVAILABLE_ISAS = list(fastmlp._core.ISAS[: fastmlp._core.ISAS.index(fastmlp.build_info()["isa_available"]) + 1])


@pytest.fixture(params=AVAILABLE_ISAS)
def isa(request):
    before = fastmlp._core.get_isa()
    fastmlp._core.set_isa(request.param)
    yield request.param
    fastmlp._core.set_isa(before)
