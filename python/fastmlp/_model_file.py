"""A reader for the ``.npz`` model files that treats every byte as hostile: every size the file
claims is checked against the file's real size before anything is allocated or decompressed,
and no pickle is ever run. It only decodes plain arrays; whether they form a valid network is
for ``Network._from_arrays`` to decide."""

from __future__ import annotations

import io
import os
import struct
import sys
import zipfile
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

#: The members' declared uncompressed sizes may add up to at most this many times the file's size.
#: Network.save stores members uncompressed (expansion 1); 64 still admits files written with
#: numpy.savez_compressed, yet caps what a zip bomb can make us inflate to 64 x its own size.
MAX_EXPANSION = 64

#: The longest .npy header accepted (NumPy's own default limit); ours are about 120 bytes.
MAX_HEADER_BYTES = 10_000

#: Dtype kinds a model file may hold: bool, integers, floats, and unicode strings (the fields
#: "format", "activation", "dtype"). Objects, bytes, complex, dates and structs are refused.
_ALLOWED_KINDS = "biufU"

# A .npy member starts with the magic string and a (major, minor) version, then the header's
# length: 2 bytes little-endian in version 1.0, 4 bytes in version 2.0 (see numpy.lib.format).
_MAGIC_LEN = len(npy_format.MAGIC_PREFIX) + 2
_LENGTH_FORMAT = {(1, 0): "<H", (2, 0): "<I"}

_CHUNK = 1 << 20  # members are inflated into their final array this many bytes at a time


def read_npz_arrays(path: str | os.PathLike[str], max_members: int = 64) -> dict[str, NDArray[Any]]:
    """The arrays of the ``.npz`` file at `path`, by name (the member name without ``.npy``),
    as ``numpy.load(path, allow_pickle=False)`` would give them, but decoded defensively.

    Every array is a new, writeable array in native byte order (a file written on a machine
    of the other endianness reads as the same values).

    Raises
    ------
    OSError
        The file cannot be opened (missing, a directory, no permission).
    fastmlp.ModelFileError (a ValueError)
        Anything else: not a zip archive, truncated or corrupted (CRC), more than
        `max_members` members, a member that is not a ``.npy`` array or is named twice, members
        whose declared uncompressed sizes add up to more than ``MAX_EXPANSION`` (64) times the
        file's size (checked before anything is decompressed), an encrypted or
        unusually compressed member, a malformed header, a dtype that can hold objects or is
        not bool/int/float/unicode, a negative shape, or a shape whose byte count differs from
        the bytes the member holds. No array is allocated before its size has been checked.
    """
    # Imported here: network.py imports this module, so a top-level import would be a cycle.
    from .network import ModelFileError

    with open(path, "rb") as fh:  # an OSError here is the caller's: the file cannot be opened
        file_size = os.fstat(fh.fileno()).st_size
        try:
            return _read_all(fh, file_size, str(path), max_members, ModelFileError)
        except ModelFileError:
            raise
        except MemoryError:
            # Every allocation is bounded by the file's size before it happens, so running out
            # of memory here is a real shortage, not a hostile header: do not disguise it.
            raise
        except Exception as exc:  # BadZipFile (CRC, truncation), zlib.error, EOFError, OSError...
            # Only the type is passed on: library texts can suggest remedies (allow_pickle=True)
            # that are wrong for a damaged or hostile file.
            raise ModelFileError(
                f"{path} is not a valid fastmlp model file (not a readable .npz archive of "
                f"plain arrays: {type(exc).__name__})") from None


def _read_all(
    fh: io.BufferedReader, file_size: int, path: str, max_members: int, error: type[ValueError]
) -> dict[str, NDArray[Any]]:
    bad = f"{path} is not a valid fastmlp model file"  # how every message starts
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise error(f"{bad}: the archive has {len(infos)} members; a model file has at most {max_members}")
        budget = file_size * MAX_EXPANSION
        declared = 0
        seen: set[str] = set()
        for info in infos:  # every check that needs no decompression, for all members first
            name = info.filename
            if not name.endswith(".npy") or len(name) == len(".npy"):
                raise error(f"{bad}: member {name!r} is not a .npy array")
            if name in seen:
                raise error(f"{bad}: member {name!r} appears twice")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise error(f"{bad}: member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise error(f"{bad}: member {name!r} uses compression method {info.compress_type}; "
                            "only stored and deflated members are read")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise error(f"{bad}: member {name!r} is stored uncompressed but declares "
                            f"{info.file_size} bytes in {info.compress_size}")
            if info.compress_size > file_size:
                raise error(f"{bad}: member {name!r} declares {info.compress_size} compressed "
                            f"bytes in a file of {file_size}")
            declared += info.file_size
            if declared > budget:
                raise error(f"{bad}: member {name!r} declares {info.file_size} bytes; all members "
                            f"together may hold at most {MAX_EXPANSION} x the file's {file_size} bytes")
        return {info.filename[:-len(".npy")]: _read_member(zf, info, path, error) for info in infos}


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, error: type[ValueError]) -> NDArray[Any]:
    where = f"{path} is not a valid fastmlp model file: member {info.filename!r}"
    with zf.open(info) as member:
        # The header, read by hand first so that its length field is checked before the
        # header is read (NumPy's reader would read whatever length the field claims).
        magic = _read_exactly(member, _MAGIC_LEN, where, "the .npy magic string", error)
        try:
            version = npy_format.read_magic(io.BytesIO(magic))
        except ValueError:
            raise error(f"{where} is not a .npy array (bad magic string)") from None
        if version not in _LENGTH_FORMAT:
            raise error(f"{where} has .npy format version {version[0]}.{version[1]}; "
                        "only 1.0 and 2.0 are read")
        length_format = _LENGTH_FORMAT[version]
        length_bytes = _read_exactly(member, struct.calcsize(length_format), where, "the header length", error)
        header_len: int = struct.unpack(length_format, length_bytes)[0]
        if header_len > MAX_HEADER_BYTES:
            raise error(f"{where} claims a {header_len}-byte header; at most {MAX_HEADER_BYTES} are read")
        header = _read_exactly(member, header_len, where, "the header", error)
        try:
            # NumPy parses the dict literal (ast.literal_eval: no code runs) and checks its keys.
            reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran_order, dtype = reader(io.BytesIO(length_bytes + header))
        except Exception:  # ValueError, but also RecursionError/MemoryError from a nested literal
            raise error(f"{where} has a malformed .npy header") from None

        _check_dtype(dtype, where, error)
        if any(d < 0 for d in shape):
            raise error(f"{where} claims the negative shape {shape}")
        # Python integers: the product cannot overflow, however absurd the claim.
        count = 1
        for d in shape:
            count *= d
        nonzero = 1
        for d in shape:
            nonzero *= max(d, 1)
        if nonzero * dtype.itemsize > sys.maxsize:
            raise error(f"{where} claims the shape {shape}, too large for any array")
        data_bytes = info.file_size - _MAGIC_LEN - len(length_bytes) - header_len
        if count * dtype.itemsize != data_bytes:
            raise error(f"{where} claims {dtype.str} shape {shape} ({count * dtype.itemsize} bytes) "
                        f"but holds {data_bytes} bytes of data")

        # Sizes agree with the archive's directory, which was bounded by the file's size: only
        # now is memory allocated, once, and filled in chunks (no second copy of the data).
        flat = np.empty(count, dtype=dtype)
        buffer = flat.view(np.uint8)
        filled = 0
        while filled < data_bytes:
            chunk = member.read(min(_CHUNK, data_bytes - filled))
            if not chunk:
                raise error(f"{where} is truncated: {filled} of {data_bytes} data bytes present")
            buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            filled += len(chunk)
        if member.read(1):  # also makes zipfile reach the end and compare the CRC
            raise error(f"{where} holds more data than its header describes")

    # The same layout numpy.lib.format.read_array produces for either order.
    array = flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _check_dtype(dtype: np.dtype[Any], where: str, error: type[ValueError]) -> None:
    if dtype.hasobject:
        # Object arrays are stored as pickles; reading one would run whatever the pickle says.
        raise error(f"{where} holds Python objects (dtype {dtype.str}), which a model file never does")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise error(f"{where} has the structured dtype {dtype.str}; a model file holds plain arrays")
    if dtype.kind not in _ALLOWED_KINDS:
        raise error(f"{where} has dtype {dtype.str}; a model file holds only bool, integer, float "
                    "and unicode arrays")
    if dtype.itemsize == 0:
        raise error(f"{where} has the empty dtype {dtype.str}")


def _read_exactly(stream: IO[bytes], n: int, where: str, what: str, error: type[ValueError]) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise error(f"{where} is truncated in {what}")
    return data
