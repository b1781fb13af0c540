"""Reading a user's data file for ``python -m fastmlp train``: .npz archives and .csv/.csv.gz tables,
checked into a float64 feature matrix and int64 labels, every problem reported as a UserError naming
the file and what to change.

It deliberately knows nothing of training or of the command line's options (cli.py holds those).
"""

from __future__ import annotations

import gzip
import os
import zipfile
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["UserError", "NPZ_FEATURES_KEY", "NPZ_LABELS_KEY", "load_user_data", "encode_labels"]

NPZ_FEATURES_KEY = "X"
NPZ_LABELS_KEY = "y"


class UserError(Exception):
    """A problem with the command line or the user's data: reported in one line, without a traceback."""


def _read_npz(path: str) -> tuple[NDArray[Any], NDArray[Any]]:
    how_to_write = f"numpy.savez(path, {NPZ_FEATURES_KEY}=features, {NPZ_LABELS_KEY}=labels)"
    # Sniffed first: for a file that is not a zip, np.load guesses "pickle" and its message says so.
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic == b"\x93NUMPY":
        raise UserError(
            f"{path} holds a single .npy array, not a .npz archive; write one with {how_to_write}"
        )
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a .npz archive (a zip of arrays); write one with {how_to_write}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, EOFError, zlib.error...: any damaged archive
        raise UserError(f"cannot read {path} as a .npz archive: {exc}") from None
    with archive:
        missing = [key for key in (NPZ_FEATURES_KEY, NPZ_LABELS_KEY) if key not in archive.files]
        if missing:
            found = ", ".join(repr(name) for name in archive.files) or "none"
            raise UserError(
                f"{path} lacks the array(s) {', '.join(repr(k) for k in missing)}: expected "
                f"'{NPZ_FEATURES_KEY}' (n_samples, n_features) and '{NPZ_LABELS_KEY}' (n_samples,) "
                f"integer labels; found arrays: {found}"
            )
        try:
            X = archive[NPZ_FEATURES_KEY]
            y = archive[NPZ_LABELS_KEY]
        except Exception as exc:  # object arrays (they need pickle), or a damaged member of the zip
            raise UserError(f"cannot read the arrays in {path}: {exc}") from None
    return X, y


def _open_text(path: str) -> IO[str]:
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_numeric_row(line: str) -> bool:
    fields = line.strip().split(",")
    try:
        [float(field) for field in fields]
    except ValueError:
        return False
    return True


#: Bytes of text parsed per block: the CSV is read a block of lines at a time and each block is
#: parsed by numpy.loadtxt's C parser, so memory holds one block's lines and the numbers, never
#: one Python object per cell (a 56 MB CSV took 841 MB as lists of floats).
_CSV_BLOCK_BYTES = 1 << 22


def _check_lines(path: str, lines: Sequence[tuple[int, str]], width: int | None) -> NDArray[np.float64]:
    """Parse `lines` (number, text) one by one with float(): for a block the fast parser refused,
    to name the first bad line as before, or to accept what float() reads and loadtxt does not."""
    rows = np.empty((len(lines), width or 0), dtype=np.float64)
    for i, (number, line) in enumerate(lines):
        fields = line.strip().split(",")
        try:
            values = [float(field) for field in fields]
        except ValueError:
            raise UserError(
                f"{path}, line {number}: expected comma-separated numbers, got {line.strip()[:60]!r}"
            ) from None
        if width is None:
            width = len(values)
            rows = np.empty((len(lines), width), dtype=np.float64)
        elif len(values) != width:
            raise UserError(f"{path}, line {number}: expected {width} columns, got {len(values)}")
        rows[i] = values
    return rows


def _parse_block(path: str, lines: Sequence[tuple[int, str]], width: int | None) -> NDArray[np.float64]:
    try:
        table = np.loadtxt([line for _, line in lines], delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return _check_lines(path, lines, width)
    if width is not None and table.shape[1] != width:
        return _check_lines(path, lines, width)  # names the first line of the other width
    return table


def _read_csv(path: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    blocks: list[NDArray[np.float64]] = []
    width: int | None = None
    number = 0
    first = True
    try:
        with _open_text(path) as handle:
            while True:
                lines = handle.readlines(_CSV_BLOCK_BYTES)
                if not lines:
                    break
                # Blank lines (a trailing newline, say) carry no sample.
                numbered = [(number + i, line) for i, line in enumerate(lines, start=1) if line.strip()]
                number += len(lines)
                del lines
                if first and numbered:
                    first = False
                    if not _is_numeric_row(numbered[0][1]):
                        numbered = numbered[1:]  # a header line
                if not numbered:
                    continue
                block = _parse_block(path, numbered, width)
                width = block.shape[1]
                blocks.append(block)
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read {path} as text: {exc}") from None
    except (OSError, EOFError) as exc:  # a corrupt .gz raises BadGzipFile, an OSError
        raise UserError(f"cannot read {path}: {exc}") from None
    if not blocks:
        raise UserError(f"{path} holds no data rows")
    assert width is not None  # a block was parsed, so it has set the width
    if width < 2:
        raise UserError(f"{path} needs at least 2 columns (features, then the label), got {width}")
    table = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    del blocks
    return table[:, :-1], table[:, -1]


def _as_integer_labels(y: NDArray[Any], path: str) -> NDArray[np.int64]:
    """Return `y` as int64, accepting floats only where they hold whole numbers (as a CSV's do)."""
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            row = int(np.argmax(bad))
            raise UserError(f"labels in {path} must be integers, got {y[row]} at sample {row}")
        return y.astype(np.int64)
    raise UserError(f"labels in {path} must be integers, got an array of dtype {y.dtype}")


def load_user_data(path: str) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Read a user's data file; return ``(X, labels)`` as a float64 2-D array and an int64 1-D array.

    Raises UserError naming the file and what is wrong with it.
    """
    if not os.path.exists(path):
        raise UserError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, expected a .npz or .csv file")
    lowered = path.lower()
    if lowered.endswith(".npz"):
        X, y = _read_npz(path)
    elif lowered.endswith((".csv", ".csv.gz")):
        X, y = _read_csv(path)
    else:
        raise UserError(f"cannot tell the format of {path}: expected a name ending in .npz or .csv")

    if X.ndim != 2:
        hint = ""
        if X.ndim > 2:
            hint = "; flatten each sample first, e.g. X.reshape(len(X), -1)"
        raise UserError(
            f"'{NPZ_FEATURES_KEY}' in {path} must have shape (n_samples, n_features), got {X.shape}{hint}"
        )
    if y.ndim != 1:
        raise UserError(f"'{NPZ_LABELS_KEY}' in {path} must have shape (n_samples,), got {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise UserError(
            f"{path} holds {X.shape[0]} feature rows but {y.shape[0]} labels; they must match"
        )
    if X.shape[1] < 1:
        raise UserError(f"{path} holds no feature columns")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_) or np.iscomplexobj(X):
        raise UserError(f"features in {path} must be real numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        row = int(np.argmax(~np.all(np.isfinite(X), axis=1)))
        raise UserError(f"features in {path} must be finite, got NaN or infinity at sample {row}")
    return X, _as_integer_labels(y, path)


def encode_labels(labels: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Map arbitrary integer labels to 0..K-1 in sorted order; return ``(classes, codes)``.

    Raises UserError when there are fewer than two classes: softmax over one class learns nothing.
    """
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        only = f" (every label is {classes[0]})" if len(classes) == 1 else ""
        raise UserError(f"need at least 2 classes to train a classifier, found {len(classes)}{only}")
    return classes, codes.reshape(-1).astype(np.int64)
