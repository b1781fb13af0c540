"""Plain helper functions shared by test modules in several folders (fixtures live in conftest.py).
Only small functions that several files would otherwise each define; no assertions of their own, so that a
failure always points into the test that made it."""

import re


def snapshot(net):
    """The network's parameters as bytes, weights then biases: two snapshots of one network are equal exactly when
    every parameter is bitwise unchanged. Bytes only, so no dtype or shape check: compare snapshots of one network
    (tests/api/test_gradcheck.py and tests/robustness/test_validation.py keep their own, wider snapshots)."""
    return [a.tobytes() for a in net.weights + net.biases]


def diverged_batch(exc_info):
    """(epoch, batch) named by a divergence error's message ("... epoch E, batch B of N ...")."""
    epoch, batch = re.search(r"epoch (\d+), batch (\d+) of", str(exc_info.value)).groups()
    return int(epoch), int(batch)
