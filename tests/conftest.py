"""Shared fixtures: seeded data and a guard that restores the native thread count."""

import numpy as np
import pytest

import fastmlp


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Set the native thread count inside a test; the previous count comes back afterwards."""
    before = fastmlp.get_num_threads()
    yield fastmlp._core.set_num_threads
    fastmlp._core.set_num_threads(before)
