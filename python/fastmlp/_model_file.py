"""The model-file format: what ``Network.save`` writes and ``Network.load`` reads.

Three parts: a reader for ``.npz`` archives that treats every byte as hostile (every size the
file claims is checked against the file's real size before anything is allocated or
decompressed, and no pickle is ever run); the writer (through ``_atomic.atomic_write``, so a
failed save leaves the old file as it was); and the mapping between a network's description
and parameters and the file's entries, with every entry checked on the way in. It builds no
Network: ``network.py`` turns the checked fields into one (so this module never imports it).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import sys
import zipfile
from collections.abc import Mapping
from typing import IO, Any, NamedTuple

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from ._atomic import atomic_write
from ._validation import (
    check_activation,
    check_activations,
    check_dropout,
    check_dtype,
    check_init,
    check_layer_sizes,
    check_output,
)


class ModelFileError(ValueError):
    """A model file that is not a valid fastmlp network (truncated, foreign or inconsistent)."""


FORMAT_NAME = "fastmlp.Network"
FORMAT_VERSION = 2  # 2 added activations per layer, output and dropout; version 1 files still load

#: The format name a Trainer checkpoint carries (recognised only to point to the right loader).
_CHECKPOINT_FORMAT_NAME = "fastmlp.Checkpoint"

#: The most entries a model or checkpoint file may have whatever its layer count (a bound for
#: hostile files); a file declaring its layer sizes may have more, see read_npz_arrays.
MAX_FILE_ENTRIES = 8192

#: Entries per layer in a model file (W and b).
NETWORK_MEMBERS_PER_LAYER = 2

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

#: Members a file may have besides its per-layer ones (a model file has 9, a checkpoint about 40).
PER_FILE_MEMBERS = 64

_CHUNK = 1 << 20  # members are inflated into their final array this many bytes at a time


def read_npz_arrays(
    path: str | os.PathLike[str], max_members: int = 64, *, layer_sizes_member: str | None = None,
    members_per_layer: int = 0,
) -> dict[str, NDArray[Any]]:
    """The arrays of the ``.npz`` file at `path`, by name (the member name without ``.npy``),
    as ``numpy.load(path, allow_pickle=False)`` would give them, but decoded defensively.

    Every array is a new, writeable array in native byte order (a file written on a machine
    of the other endianness reads as the same values).

    The file may have `max_members` members, or, when `layer_sizes_member` names the 1-D
    integer entry that declares the layer sizes, ``PER_FILE_MEMBERS + members_per_layer *
    layers`` if that is more: whatever a writer with one entry per array per layer saves, loads.

    Raises
    ------
    OSError
        The file cannot be opened (missing, a directory, no permission).
    fastmlp.ModelFileError (a ValueError)
        Anything else: not a regular file (a device such as /dev/zero, a named pipe: refused
        before a byte is read), not a zip archive, truncated or corrupted (CRC), more members
        than allowed, a member that is not a ``.npy`` array or is named twice, members whose
        declared uncompressed sizes add up to more than ``MAX_EXPANSION`` (64) times the
        file's size (checked before anything is decompressed), an encrypted or
        unusually compressed member, a malformed header, a dtype that can hold objects or is
        not bool/int/float/unicode, a negative shape, or a shape whose byte count differs from
        the bytes the member holds. No array is allocated before its size has been checked.
    """
    with _open_regular_file(path) as fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            return _read_all(fh, file_size, str(path), max_members, layer_sizes_member, members_per_layer)
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


def _open_regular_file(path: str | os.PathLike[str]) -> io.BufferedReader:
    """`path` opened for reading if it is a regular file. Opened without blocking and checked on
    the open descriptor (no window between the check and the open): /dev/zero would be read
    until memory runs out, and opening a named pipe blocks until a writer comes."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):  # as open() reports it: an OSError, the file cannot be opened
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                    else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a regular file")
            raise ModelFileError(f"{os.fspath(path)!s} is {kind}, not a regular file; a model file is a regular "
                                 "file (reading this could block or never end)")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _member_limit(
    zf: zipfile.ZipFile, path: str, max_members: int, layer_sizes_member: str | None, members_per_layer: int
) -> tuple[int, str]:
    """How many members this file may have, and why (for the message)."""
    if layer_sizes_member is None or members_per_layer <= 0:
        return max_members, ""
    try:
        info = zf.getinfo(layer_sizes_member + ".npy")
    except KeyError:
        return max_members, ""
    sizes = _read_member(zf, info, path)  # its size was checked against the file with the others
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or len(sizes) < 2:
        raise ModelFileError(f"{path} is not a valid fastmlp model file: {layer_sizes_member} is malformed")
    layers = len(sizes) - 1
    by_layers = PER_FILE_MEMBERS + members_per_layer * layers
    if by_layers <= max_members:
        return max_members, ""
    return by_layers, f" for its {layers} layers"


def _read_all(
    fh: io.BufferedReader, file_size: int, path: str, max_members: int, layer_sizes_member: str | None,
    members_per_layer: int,
) -> dict[str, NDArray[Any]]:
    bad = f"{path} is not a valid fastmlp model file"  # how every message starts
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        budget = file_size * MAX_EXPANSION
        declared = 0
        seen: set[str] = set()
        for info in infos:  # every check that needs no decompression, for all members first
            name = info.filename
            if not name.endswith(".npy") or len(name) == len(".npy"):
                raise ModelFileError(f"{bad}: member {name!r} is not a .npy array")
            if name in seen:
                raise ModelFileError(f"{bad}: member {name!r} appears twice")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise ModelFileError(f"{bad}: member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ModelFileError(f"{bad}: member {name!r} uses compression method {info.compress_type}; "
                            "only stored and deflated members are read")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise ModelFileError(f"{bad}: member {name!r} is stored uncompressed but declares "
                            f"{info.file_size} bytes in {info.compress_size}")
            if info.compress_size > file_size:
                raise ModelFileError(f"{bad}: member {name!r} declares {info.compress_size} compressed "
                            f"bytes in a file of {file_size}")
            declared += info.file_size
            if declared > budget:
                raise ModelFileError(f"{bad}: member {name!r} declares {info.file_size} bytes; all members "
                            f"together may hold at most {MAX_EXPANSION} x the file's {file_size} bytes")
        if len(infos) > max_members:
            # Directory checks first: the member declaring the layer sizes is read only once
            # every member's declared size is known to fit the file.
            limit, why = _member_limit(zf, path, max_members, layer_sizes_member, members_per_layer)
            if len(infos) > limit:
                raise ModelFileError(f"{bad}: the archive has {len(infos)} members; a model file has at most "
                                     f"{limit}{why}")
        return {info.filename[:-len(".npy")]: _read_member(zf, info, path) for info in infos}


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> NDArray[Any]:
    where = f"{path} is not a valid fastmlp model file: member {info.filename!r}"
    with zf.open(info) as member:
        # The header, read by hand first so that its length field is checked before the
        # header is read (NumPy's reader would read whatever length the field claims).
        magic = _read_exactly(member, _MAGIC_LEN, where, "the .npy magic string")
        try:
            version = npy_format.read_magic(io.BytesIO(magic))
        except ValueError:
            raise ModelFileError(f"{where} is not a .npy array (bad magic string)") from None
        if version not in _LENGTH_FORMAT:
            raise ModelFileError(f"{where} has .npy format version {version[0]}.{version[1]}; "
                        "only 1.0 and 2.0 are read")
        length_format = _LENGTH_FORMAT[version]
        length_bytes = _read_exactly(member, struct.calcsize(length_format), where, "the header length")
        header_len: int = struct.unpack(length_format, length_bytes)[0]
        if header_len > MAX_HEADER_BYTES:
            raise ModelFileError(f"{where} claims a {header_len}-byte header; at most {MAX_HEADER_BYTES} are read")
        header = _read_exactly(member, header_len, where, "the header")
        try:
            # NumPy parses the dict literal (ast.literal_eval: no code runs) and checks its keys.
            reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran_order, dtype = reader(io.BytesIO(length_bytes + header))
        except Exception:  # ValueError, but also RecursionError/MemoryError from a nested literal
            raise ModelFileError(f"{where} has a malformed .npy header") from None

        _check_dtype(dtype, where)
        if any(d < 0 for d in shape):
            raise ModelFileError(f"{where} claims the negative shape {shape}")
        # Python integers: the product cannot overflow, however absurd the claim.
        count = 1
        for d in shape:
            count *= d
        nonzero = 1
        for d in shape:
            nonzero *= max(d, 1)
        if nonzero * dtype.itemsize > sys.maxsize:
            raise ModelFileError(f"{where} claims the shape {shape}, too large for any array")
        data_bytes = info.file_size - _MAGIC_LEN - len(length_bytes) - header_len
        if count * dtype.itemsize != data_bytes:
            raise ModelFileError(f"{where} claims {dtype.str} shape {shape} ({count * dtype.itemsize} bytes) "
                        f"but holds {data_bytes} bytes of data")

        # Sizes agree with the archive's directory, which was bounded by the file's size: only
        # now is memory allocated, once, and filled in chunks (no second copy of the data).
        flat = np.empty(count, dtype=dtype)
        buffer = flat.view(np.uint8)
        filled = 0
        while filled < data_bytes:
            chunk = member.read(min(_CHUNK, data_bytes - filled))
            if not chunk:
                raise ModelFileError(f"{where} is truncated: {filled} of {data_bytes} data bytes present")
            buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            filled += len(chunk)
        if member.read(1):  # also makes zipfile reach the end and compare the CRC
            raise ModelFileError(f"{where} holds more data than its header describes")

    # The same layout numpy.lib.format.read_array produces for either order.
    array = flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    if dtype.hasobject:
        # Object arrays are stored as pickles; reading one would run whatever the pickle says.
        raise ModelFileError(f"{where} holds Python objects (dtype {dtype.str}), which a model file never does")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{where} has the structured dtype {dtype.str}; a model file holds plain arrays")
    if dtype.kind not in _ALLOWED_KINDS:
        raise ModelFileError(f"{where} has dtype {dtype.str}; a model file holds only bool, integer, float "
                    "and unicode arrays")
    if dtype.itemsize == 0:
        raise ModelFileError(f"{where} has the empty dtype {dtype.str}")


def _read_exactly(stream: IO[bytes], n: int, where: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ModelFileError(f"{where} is truncated in {what}")
    return data


# ---------------------------------------------------------------------- writing


def npz_target(path: str | os.PathLike[str]) -> str:
    """The file a save to `path` writes: numpy.savez's rule, ``.npz`` appended when missing."""
    target = os.fspath(path)
    return target if target.endswith(".npz") else target + ".npz"


def write_npz(path: str | os.PathLike[str], arrays: dict[str, NDArray[Any]]) -> str:
    """Write `arrays` as an uncompressed ``.npz`` to :func:`npz_target` of `path`, atomically (a
    temporary file in the same folder, fsync, rename; on any failure the old file is left as
    it was). Returns the path written."""
    target = npz_target(path)
    with atomic_write(target) as stream:
        # mypy cannot tell that no key here is savez's own keyword allow_pickle (a keyword only
        # newer NumPy stubs declare, hence unused-ignore for the older ones).
        np.savez(stream, **arrays)  # type: ignore[arg-type, unused-ignore]
    return target


# ---------------------------------------------------------------------- a network's entries


class NetworkFields(NamedTuple):
    """A network's description and parameters, as stored in and checked from a model file."""

    layer_sizes: list[int]
    activation: str | list[str]  # one name, or the per-layer list when one was not given
    activations: list[str]
    output: str
    dropout: list[float]
    init: str
    dtype: np.dtype[np.floating[Any]]
    weights: list[NDArray[np.floating[Any]]]
    biases: list[NDArray[np.floating[Any]]]


def network_entries(fields: NetworkFields) -> dict[str, NDArray[Any]]:
    """The entries of a model file for `fields` (whose arrays are stored as given: pass copies
    taken under the network's lock); ValueError if a parameter is not finite (load would
    refuse it)."""
    activation = fields.activation
    arrays = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION),
        "layer_sizes": np.array(fields.layer_sizes, dtype=np.int64),
        "activation": np.array(activation if isinstance(activation, str) else ""),
        "activations": np.array(fields.activations, dtype="U16").reshape(-1),
        "output": np.array(fields.output),
        "dropout": np.array(fields.dropout, dtype=np.float64).reshape(-1),
        "init": np.array(fields.init),
        "dtype": np.array(fields.dtype.name),
    }
    for k, (Wk, bk) in enumerate(zip(fields.weights, fields.biases)):
        for kind, a in (("weights", Wk), ("biases", bk)):
            if not np.isfinite(a).all():  # load() refuses such files: fail now, not at load time
                raise ValueError(f"cannot save: net.{kind}[{k}] contains NaN or infinity "
                                 "(training diverged; a smaller lr usually helps)")
        arrays[f"W{k}"] = Wk
        arrays[f"b{k}"] = bk
    return arrays


def read_network_file(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    """The entries of the model file at `path`, read by :func:`read_npz_arrays` with the member
    limit a network of the file's declared layer count needs."""
    return read_npz_arrays(path, max_members=MAX_FILE_ENTRIES, layer_sizes_member="layer_sizes",
                           members_per_layer=NETWORK_MEMBERS_PER_LAYER)


def network_fields(data: Mapping[str, NDArray[Any]], path: str | os.PathLike[str]) -> NetworkFields:
    """Check the entries of a model file and return what they describe; ModelFileError naming
    the entry for anything missing, malformed or inconsistent. Every stored array is checked
    against layer_sizes before anything is allocated from the sizes, so a header claiming huge
    layers cannot make a load allocate for them."""
    def field(name: str, kind: str) -> object:
        if name not in data:
            raise ModelFileError(f"{path} is not a fastmlp model: the entry {name!r} is missing")
        value = data[name]
        if value.ndim != 0 or value.dtype.kind not in kind:
            raise ModelFileError(f"{path}: entry {name!r} has an unexpected type")
        return value.item()

    stored_format = data.get("format")
    if stored_format is not None and stored_format.ndim == 0 and stored_format.dtype.kind == "U" \
            and stored_format.item() == _CHECKPOINT_FORMAT_NAME:
        raise ModelFileError(f"{path} is a fastmlp training checkpoint, not a model file: load it with "
                             "fastmlp.Trainer.load_checkpoint(path) (its .network is the model)")
    if field("format", "U") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a fastmlp model file")
    version = field("format_version", "iu")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} is invalid or corrupt: format version {version} (versions start at 1)")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}; this fastmlp reads versions 1 to "
                             f"{FORMAT_VERSION} (a newer fastmlp wrote it: upgrade to load it)")
    stored_sizes = data.get("layer_sizes")
    if stored_sizes is None or stored_sizes.ndim != 1 or stored_sizes.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: layer_sizes is missing or malformed")

    def vector(name: str, kind: str) -> list[Any]:
        value = data.get(name)
        if value is None or value.ndim != 1 or value.dtype.kind not in kind:
            raise ModelFileError(f"{path}: the entry {name!r} is missing or malformed")
        items: list[Any] = value.tolist()
        return items

    try:
        sizes = check_layer_sizes(stored_sizes.tolist())
        n_hidden = len(sizes) - 2
        if version == 1:  # one activation for every hidden layer, softmax output, no dropout
            activation: str | list[str] = check_activation(field("activation", "U"))
            activations = check_activations(activation, n_hidden)
            output, dropout, init = "softmax", [0.0] * n_hidden, "auto"
        else:
            activations = check_activations(vector("activations", "U"), n_hidden)
            single = field("activation", "U")  # "" when a list was given
            activation = check_activation(single) if single else activations
            output = check_output(field("output", "U"), sizes[-1])
            dropout = check_dropout(vector("dropout", "f"), n_hidden)
            init = check_init(field("init", "U"))
        dtype = check_dtype(field("dtype", "U"))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: invalid network description: {exc}") from None
    weights: list[NDArray[np.floating[Any]]] = []
    biases: list[NDArray[np.floating[Any]]] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, shape, out in ((f"W{k}", (n_out, n_in), weights), (f"b{k}", (n_out,), biases)):
            if name not in data:
                raise ModelFileError(f"{path}: the entry {name!r} is missing")
            a = data[name]
            if a.shape != shape or a.dtype != dtype:
                raise ModelFileError(
                    f"{path}: {name} has {a.dtype} shape {a.shape}, expected {dtype.name} shape {shape}")
            if not np.isfinite(a).all():
                raise ModelFileError(f"{path}: {name} contains NaN or infinity")
            out.append(np.ascontiguousarray(a))
    return NetworkFields(sizes, activation, activations, output, dropout, init, dtype, weights, biases)
