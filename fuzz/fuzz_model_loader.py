"""A time-boxed fuzz target for the model-file reader (fastmlp._model_file.read_npz_arrays, or
Network.load with --through-load): random bytes, mutations of a valid file and crafted archives
of lying .npy headers must each give ModelFileError or plain arrays, never another exception.
It checks no network semantics (test_network.py does) and it is not run by pytest.

    python fuzz/fuzz_model_loader.py --seconds 60 [--through-load]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import warnings
import zipfile
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

import fastmlp
from fastmlp._model_file import MAX_EXPANSION, read_npz_arrays

ALLOWED_KINDS = "biufU"


def valid_file() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "good.npz")
        fastmlp.Network([3, 4, 2], seed=0).save(path)
        with open(path, "rb") as f:
            return f.read()


VALID = valid_file()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """The valid file after 1-8 edits: byte changes, cuts, deletions, insertions, repeats."""
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        op = draw(st.sampled_from(["set", "set", "truncate", "delete", "insert", "repeat"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 64))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[i:i] = data[i:i + draw(st.integers(1, 64))]
    return bytes(data)


# Descriptors a hostile header might carry: good ones, other byte orders, and kinds a model
# file must never hold (objects, bytes, complex, void, structs, zero-size unicode).
# The allowed ones come twice, so that about half the crafted members can be accepted.
DESCRS: list[Any] = ["<f4", "<f8", ">f4", "|b1", "<i8", "|u1", "<U4", "<f2"] * 2 + [
    "|O", "<U0", "<c8", "|S3", "|V4", "<M8[s]", [("a", "<f4")]]
HUGE = [2**31, 2**32 + 1, 10**12, 2**62, 2**63 - 1]


@st.composite
def crafted(draw: st.DrawFn) -> bytes:
    """A well-formed zip of .npy members whose headers claim anything, with or without the data."""
    buffer = io.BytesIO()
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as zf:
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names
        for _ in range(draw(st.integers(0, 4))):
            name = draw(st.sampled_from([f"m{i}.npy" for i in range(8)] + ["W0.npy", "x", ".npy"]))
            descr = draw(st.sampled_from(DESCRS))
            shape = tuple(draw(st.lists(st.one_of(st.integers(0, 12), st.integers(0, 12), st.integers(-3, -1), st.sampled_from(HUGE)), max_size=3)))
            header = io.BytesIO()
            writer = draw(st.sampled_from([npy_format.write_array_header_1_0, npy_format.write_array_header_2_0]))
            writer(header, {"descr": descr, "fortran_order": draw(st.booleans()), "shape": shape})
            size = int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize
            if draw(st.integers(0, 3)) and 0 <= size <= 4096:
                payload = bytes(draw(st.binary(min_size=size, max_size=size)))  # honest sizes
            else:
                payload = draw(st.binary(max_size=256))
            with zf.open(name, "w") as w:
                w.write(header.getvalue() + payload)
    return buffer.getvalue()


FILES = st.one_of(st.binary(max_size=4096), mutated(), crafted())


def check(raw: bytes, path: str, through_load: bool) -> bool:
    """Whether the file was accepted; an AssertionError (or any other exception) is a finding."""
    with open(path, "wb") as f:
        f.write(raw)
    try:
        result = fastmlp.Network.load(path) if through_load else read_npz_arrays(path)
    except fastmlp.ModelFileError:
        return False
    if through_load:
        assert isinstance(result, fastmlp.Network)
        return True
    assert isinstance(result, dict)
    total = 0
    for name, array in result.items():
        assert isinstance(array, np.ndarray) and not array.dtype.hasobject, name
        assert array.dtype.kind in ALLOWED_KINDS and array.dtype.isnative, (name, array.dtype)
        total += array.nbytes
    assert total <= MAX_EXPANSION * max(len(raw), 1), (total, len(raw))
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    parser.add_argument("--through-load", action="store_true",
                        help="fuzz fastmlp.Network.load instead of the reader alone")
    args = parser.parse_args()

    examples = accepted = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzzed.npz")

        # Hypothesis runs a bounded number of examples per call; calling it again and again
        # (fresh random seeds each time, no example database) is what makes the run time-boxed.
        @settings(max_examples=500, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(FILES)
        def fuzz(raw: bytes) -> None:
            nonlocal examples, accepted
            examples += 1
            accepted += check(raw, path, args.through_load)

        start = time.monotonic()
        target = "Network.load" if args.through_load else "read_npz_arrays"
        try:
            while time.monotonic() - start < args.seconds:
                fuzz()
        except Exception:
            elapsed = time.monotonic() - start
            print(f"FAILED: {target} after {elapsed:.0f} s and {examples} examples", file=sys.stderr)
            raise
    print(f"ok: {target}, {time.monotonic() - start:.0f} s, {examples} examples "
          f"({accepted} accepted, {examples - accepted} refused with ModelFileError), 0 failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
