"""Hostile model files: _model_file.read_npz_arrays against truncation at every byte, random byte
flips, lying headers, pickles, zip bombs and archives of too many members, and Network.load
against the same files. Valid-but-inconsistent networks (wrong layer sizes, NaN weights) are
tested in tests/api/test_network.py, since deciding those is Network._from_arrays's job, not the reader's."""

import io
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

import fastmlp
from fastmlp._model_file import MAX_EXPANSION, read_npz_arrays

# Network.load still calls np.load until the other half of this change wires the reader in.


# ---------------------------------------------------------------- crafting files

def npy(descr, shape, data=b"", fortran_order=False, version=(1, 0)):
    """The bytes of a .npy member with this header and these data bytes, whatever they claim."""
    fp = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran_order, "shape": shape}
    writer = npy_format.write_array_header_1_0 if version == (1, 0) else npy_format.write_array_header_2_0
    writer(fp, header)
    return fp.getvalue() + data


def npy_of(array):
    fp = io.BytesIO()
    np.save(fp, array, allow_pickle=True)  # True only so that tests can build hostile files
    return fp.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip of (name, bytes) members, in order, duplicates allowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


@pytest.fixture
def good(tmp_path):
    """(path, raw bytes, members as (name, bytes)) of a small valid model file."""
    path = tmp_path / "good.npz"
    fastmlp.Network([3, 4, 2], seed=0).save(path)
    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    return path, path.read_bytes(), members


def same_arrays(a, b):
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a)


def np_load(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def peak_bytes(fn, *args):
    """The peak of traced Python and NumPy allocations while fn(*args) runs (it must raise)."""
    tracemalloc.start()
    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 - measures any refusal; the callers check its type
            fn(*args)
        return tracemalloc.get_traced_memory()[1], info.value
    finally:
        tracemalloc.stop()


# Traced overhead that does not depend on the claim: file and zip objects, an 8 KiB read buffer.
OVERHEAD = 64 * 1024


# ---------------------------------------------------------------- valid files

def test_reads_exactly_what_np_load_reads(good):
    path, _, _ = good
    arrays = read_npz_arrays(path)
    assert same_arrays(arrays, np_load(path))
    assert all(a.flags.writeable for a in arrays.values())


def test_reads_fortran_order_compressed_and_other_endian_members(tmp_path):
    f = np.arange(12, dtype=np.float64).reshape(3, 4)
    arrays = {"f": np.asfortranarray(f), "big": np.arange(5, dtype=">i4"), "s": np.array("relu"),
              "flag": np.array([True, False]), "empty": np.zeros((0, 3), np.float32)}
    np.savez_compressed(tmp_path / "x.npz", **arrays)
    got = read_npz_arrays(tmp_path / "x.npz")
    assert got.keys() == arrays.keys()
    for k, a in arrays.items():
        assert got[k].shape == a.shape and np.array_equal(got[k], a) and got[k].dtype.isnative
    assert got["f"].flags.f_contiguous  # the layout np.load gives too


def test_max_members_counts_the_archive(good):
    path, _, members = good
    assert len(read_npz_arrays(path, max_members=len(members))) == len(members)
    with pytest.raises(fastmlp.ModelFileError, match=f"{len(members)} members"):
        read_npz_arrays(path, max_members=len(members) - 1)


# ---------------------------------------------------------------- damaged files

def test_truncation_at_every_byte_offset(good, tmp_path):
    _, raw, _ = good
    cut = tmp_path / "cut.npz"
    for n in range(len(raw)):
        cut.write_bytes(raw[:n])
        with pytest.raises(fastmlp.ModelFileError, match=r"cut\.npz"):
            read_npz_arrays(cut)


def test_truncation_at_every_byte_offset_through_load(good, tmp_path):
    _, raw, _ = good
    cut = tmp_path / "cut.npz"
    for n in range(len(raw)):
        cut.write_bytes(raw[:n])
        with pytest.raises(fastmlp.ModelFileError, match=r"cut\.npz"):
            fastmlp.Network.load(cut)


def flipped_files(raw, tmp_path, count=1000):
    """`count` seeded variants of raw with 1-3 random bytes replaced by different ones."""
    rng = np.random.default_rng(2024)
    path = tmp_path / "flipped.npz"
    for _ in range(count):
        data = bytearray(raw)
        for pos in rng.integers(0, len(raw), rng.integers(1, 4)):
            data[pos] ^= int(rng.integers(1, 256))  # xor with a nonzero byte: always a change
        path.write_bytes(bytes(data))
        yield path


def test_random_byte_flips(good, tmp_path):
    path, raw, _ = good
    expected = read_npz_arrays(path)
    outcomes = {"refused": 0, "loaded": 0}
    for bad in flipped_files(raw, tmp_path):
        try:
            arrays = read_npz_arrays(bad)
        except fastmlp.ModelFileError:
            outcomes["refused"] += 1
        else:
            # Only bytes that do not matter were hit (timestamps, attributes, ...), or a length
            # in the central directory now ends it early, leaving a valid archive of the first
            # members. Either way the CRCs guarantee the data: what loads is original, bitwise.
            assert same_arrays(arrays, {k: expected[k] for k in arrays if k in expected})
            assert arrays.keys() <= expected.keys()
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 500  # most bytes of the file do matter


def test_random_byte_flips_through_load(good, tmp_path):
    path, raw, _ = good
    original = fastmlp.Network.load(path)
    for bad in flipped_files(raw, tmp_path):
        try:
            net = fastmlp.Network.load(bad)
        except fastmlp.ModelFileError:
            continue
        assert net.layer_sizes == original.layer_sizes
        assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, original.weights + original.biases))


# ---------------------------------------------------------------- lying headers

CLAIMS = [
    pytest.param(("<f8", (10**7,)), id="80MB-from-nothing"),  # small enough that np.load would allocate it
    pytest.param(("<f8", (10**12,)), id="8TB"),
    pytest.param(("<f4", (2**62, 2**62)), id="overflowing"),
    pytest.param(("<f4", (-1,)), id="negative"),
    pytest.param(("<f4", (3, -5)), id="negative-2d"),
    pytest.param(("<f4", (0, 2**62, 2**62)), id="empty-but-absurd"),
]


@pytest.mark.parametrize("claim", CLAIMS)
def test_header_claiming_a_shape_the_data_does_not_have(good, tmp_path, claim):
    _, _, members = good
    descr, shape = claim
    path = write_zip(tmp_path / "claim.npz", members + [("huge.npy", npy(descr, shape, b"\0" * 64))])
    peak, exc = peak_bytes(read_npz_arrays, path)
    assert isinstance(exc, fastmlp.ModelFileError) and "'huge.npy'" in str(exc)
    assert peak < OVERHEAD + 4 * path.stat().st_size


def test_np_load_does_allocate_what_a_header_claims(good, tmp_path):
    # The control for the tests above: the peak measure does see a claim that gets allocated.
    _, _, members = good
    path = write_zip(tmp_path / "claim.npz", members + [("huge.npy", npy("<f8", (10**7,), b"\0" * 64))])
    peak, _ = peak_bytes(np_load, path)
    assert peak > 8 * 10**7


def test_header_claiming_a_huge_shape_through_load(good, tmp_path):
    _, _, members = good
    path = write_zip(tmp_path / "claim.npz", members + [("huge.npy", npy("<f8", (10**7,), b"\0" * 64))])
    peak, exc = peak_bytes(fastmlp.Network.load, path)
    assert isinstance(exc, fastmlp.ModelFileError)
    assert peak < OVERHEAD + 4 * path.stat().st_size


@pytest.mark.parametrize("member,pattern", [
    pytest.param(npy("<f4", (3,), b"\0" * 8), r"claims <f4 shape \(3,\) \(12 bytes\) but holds 8", id="short-data"),
    pytest.param(npy("<f4", (2,), b"\0" * 12), r"\(8 bytes\) but holds 12", id="long-data"),
    pytest.param(npy("<c16", (1,), b"\0" * 16), r"dtype <c16", id="complex"),
    pytest.param(npy("|S4", (1,), b"abcd"), r"dtype \|S4", id="bytes"),
    pytest.param(npy("<M8[s]", (1,), b"\0" * 8), r"dtype <M8", id="datetime"),
    pytest.param(npy([("a", "<f4")], (1,), b"\0" * 4), r"structured", id="structured"),
    pytest.param(npy("|V8", (1,), b"\0" * 8), r"dtype \|V8", id="void"),
    pytest.param(npy("<U0", (2**40,), b""), r"empty dtype", id="zero-itemsize"),
    pytest.param(b"\x93NUMPY\x03\x00" + struct.pack("<I", 10) + b"{}        ", r"version 3.0", id="npy-3.0"),
    pytest.param(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{", r"2147483648-byte header", id="huge-header"),
    pytest.param(b"\x93NUMPY\x01\x00" + struct.pack("<H", 8) + b"{'a': 1}", r"malformed .npy header", id="bad-keys"),
    pytest.param(b"\x93NUMPY\x01\x00" + struct.pack("<H", 20) + b"__import__('os')    ", r"malformed .npy header",
                 id="code-in-header"),
    pytest.param(b"\x93NUMPY\x01\x00" + struct.pack("<H", 3000) + b"-" * 2999 + b"1", r"malformed .npy header",
                 id="deeply-nested-header"),
    pytest.param(b"PK\x03\x04 not numpy at all", r"bad magic", id="not-npy"),
    pytest.param(b"\x93NUM", r"truncated in the .npy magic", id="cut-magic"),
])
def test_malformed_members(tmp_path, member, pattern):
    path = write_zip(tmp_path / "bad.npz", [("x.npy", member)])
    with pytest.raises(fastmlp.ModelFileError, match=pattern) as info:
        read_npz_arrays(path)
    assert "'x.npy'" in str(info.value) and "allow_pickle" not in str(info.value)


def test_big_header_version_2_is_read(tmp_path):
    path = write_zip(tmp_path / "v2.npz", [("x.npy", npy("<i2", (2,), b"\1\0\2\0", version=(2, 0)))])
    assert read_npz_arrays(path)["x"].tolist() == [1, 2]


# ---------------------------------------------------------------- pickles

class _CreatesFile:
    """Unpickling this runs open(marker, "w"): a stand-in for arbitrary code in a hostile file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def pickled(good, tmp_path):
    """(path, marker) of a valid model file whose W0 and format are object arrays with a live payload."""
    _, _, members = good
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _CreatesFile(marker)
    replaced = {"W0.npy": npy_of(payload), "format.npy": npy_of(payload)}
    path = write_zip(tmp_path / "pickled.npz", [(n, replaced.get(n, d)) for n, d in members])
    return path, marker


def test_pickle_payload_never_runs(pickled):
    path, marker = pickled
    with pytest.raises(fastmlp.ModelFileError, match="Python objects") as info:
        read_npz_arrays(path)
    assert "allow_pickle" not in str(info.value)
    assert not marker.exists()


def test_pickle_payload_never_runs_through_load(pickled):
    path, marker = pickled
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.Network.load(path)
    assert not marker.exists()


def test_pickle_payload_is_live(pickled):
    # The control: unpickling the file does run the payload, so the tests above mean something.
    path, marker = pickled
    with np.load(path, allow_pickle=True) as f:
        f["W0"][0].close()
    assert marker.exists()


def test_pickle_disguised_as_floats_is_only_bytes(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _CreatesFile(marker)
    data = npy_of(payload)
    path = write_zip(tmp_path / "disguised.npz", [("x.npy", npy("|u1", (len(data),), data))])
    assert read_npz_arrays(path)["x"].tobytes() == data
    assert not marker.exists()


# ---------------------------------------------------------------- archive structure

@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A ~100 KB file holding one member of 100 MB of zeros, deflated; written in chunks."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    n = 100 * 2**20
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.npy", "w", force_zip64=True) as w:
        w.write(npy("|u1", (n,)))
        zeros = bytes(2**20)
        for _ in range(100):
            w.write(zeros)
    return path


def test_zip_bomb_is_refused_before_decompression(bomb):
    assert bomb.stat().st_size * MAX_EXPANSION < 100 * 2**20
    peak, exc = peak_bytes(read_npz_arrays, bomb)
    assert isinstance(exc, fastmlp.ModelFileError) and "'bomb.npy'" in str(exc)
    assert peak < OVERHEAD + 4 * bomb.stat().st_size


def test_zip_bomb_is_refused_through_load(bomb):
    peak, exc = peak_bytes(fastmlp.Network.load, bomb)
    assert isinstance(exc, fastmlp.ModelFileError)
    assert peak < OVERHEAD + 4 * bomb.stat().st_size


def test_compression_is_read_within_the_limit_and_refused_beyond(tmp_path):
    # The rule counts the whole file: savez_compressed of ordinary weights is read, while 64 KiB
    # of zeros squeezed into a few hundred bytes is more than 64 x the file, so it is refused.
    np.savez_compressed(tmp_path / "w.npz", w=np.random.default_rng(0).standard_normal(2**13))
    assert read_npz_arrays(tmp_path / "w.npz")["w"].shape == (2**13,)
    np.savez_compressed(tmp_path / "z.npz", z=np.zeros(2**13))
    assert (tmp_path / "z.npz").stat().st_size * MAX_EXPANSION < 2**16
    with pytest.raises(fastmlp.ModelFileError, match=r"'z\.npy' declares 65664 bytes; all members together "
                       "may hold at most 64 x"):
        read_npz_arrays(tmp_path / "z.npz")


def many_members(good, tmp_path):
    _, _, members = good
    extra = [(f"extra{i}.npy", npy_of(np.zeros(1))) for i in range(65 - len(members))]
    return write_zip(tmp_path / "many.npz", members + extra)


def test_too_many_members(good, tmp_path):
    with pytest.raises(fastmlp.ModelFileError, match="65 members; a model file has at most 64"):
        read_npz_arrays(many_members(good, tmp_path))


def test_too_many_members_through_load(good, tmp_path):
    # Network.load and Trainer.load_checkpoint allow more entries than the reader's default
    # (deep networks, optimizer state), up to a bound that still stops a file of endless members.
    from fastmlp.network import _MAX_FILE_ENTRIES

    _, _, members = good
    extra = [(f"extra{i}.npy", npy_of(np.zeros(1))) for i in range(_MAX_FILE_ENTRIES + 1 - len(members))]
    path = write_zip(tmp_path / "many.npz", members + extra)
    for load in (fastmlp.Network.load, fastmlp.Trainer.load_checkpoint):
        with pytest.raises(fastmlp.ModelFileError, match=f"{_MAX_FILE_ENTRIES + 1} members; a model file has at most"):
            load(path)


def test_a_deep_network_saves_and_loads(tmp_path):
    net = fastmlp.Network([3] + [4] * 40 + [2], seed=0)  # 9 + 2 * 41 entries, more than the default 64
    net.save(tmp_path / "deep.npz")
    assert fastmlp.Network.load(tmp_path / "deep.npz").layer_sizes == net.layer_sizes


@pytest.mark.parametrize("names,pattern", [
    pytest.param(["a.npy", "a.npy"], r"'a.npy' appears twice", id="duplicate"),
    pytest.param(["a.npy", "evil.pkl"], r"'evil.pkl' is not a .npy array", id="foreign-name"),
    pytest.param([".npy"], r"'.npy' is not a .npy array", id="empty-name"),
])
def test_member_names(tmp_path, names, pattern):
    path = write_zip(tmp_path / "names.npz", [(n, npy_of(np.zeros(1))) for n in names])
    with pytest.raises(fastmlp.ModelFileError, match=pattern):
        read_npz_arrays(path)


def test_unusual_compression_is_refused(tmp_path):
    path = write_zip(tmp_path / "bz.npz", [("a.npy", npy_of(np.zeros(1)))], zipfile.ZIP_BZIP2)
    with pytest.raises(fastmlp.ModelFileError, match="compression method 12"):
        read_npz_arrays(path)


def test_data_corruption_is_caught_by_the_crc(good, tmp_path):
    path, raw, members = good
    data = bytearray(raw)
    start = raw.index(members[-1][1])  # b1, stored: its bytes appear verbatim in the file
    data[start + len(members[-1][1]) - 1] ^= 0x40  # the last byte of the float data
    path.write_bytes(bytes(data))
    with pytest.raises(fastmlp.ModelFileError, match="BadZipFile"):
        read_npz_arrays(path)


def test_garbage_and_empty_files(tmp_path):
    for name, content in [("noise.npz", np.random.default_rng(0).bytes(1000)), ("empty.npz", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(fastmlp.ModelFileError, match=name) as info:
            read_npz_arrays(tmp_path / name)
        assert "allow_pickle" not in str(info.value)


# ---------------------------------------------------------------- files that cannot be opened

def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_npz_arrays(tmp_path / "absent.npz")


def test_directory_is_an_os_error(tmp_path):
    with pytest.raises(OSError, match=tmp_path.name):
        read_npz_arrays(tmp_path)
