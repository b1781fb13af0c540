"""Small bundled datasets for examples, benchmarks and tests.

Holds the UCI handwritten digits (1797 images of 8x8 pixels) and a seeded
train/test split. Deliberately downloads nothing, caches nothing and does not
depend on scikit-learn.
"""

from __future__ import annotations

import gzip
import io
import numbers
import zlib
from importlib import resources
from typing import Any, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import check_seed, is_bool

__all__ = ["load_digits", "train_test_split"]

_DIGITS_FILE = "digits.csv.gz"
_DIGITS_N_SAMPLES = 1797
_DIGITS_N_FEATURES = 64
_DIGITS_MAX_PIXEL = 16
_DIGITS_N_CLASSES = 10


def _read_digits_bytes() -> bytes:
    """Return the raw (gzip-compressed) bytes of the bundled digits file."""
    # ``files`` and chained ``joinpath`` work from a source tree, an installed
    # wheel or a zip import, on every Python this package supports (>= 3.9).
    return resources.files(__name__).joinpath("data").joinpath(_DIGITS_FILE).read_bytes()


def _parse_digits(raw: bytes) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Decode and validate the digits file; return ``(X, y)``.

    Every way the file can be damaged (bad gzip stream, non-numeric text,
    ragged rows, wrong shape, values out of range) raises ``RuntimeError``
    naming the file, so a broken installation is reported as such rather than
    as an obscure NumPy or gzip error.
    """

    def corrupt(reason: str) -> RuntimeError:
        return RuntimeError(
            "the bundled dataset file fastmlp/datasets/data/%s is corrupt (%s); "
            "reinstall fastmlp" % (_DIGITS_FILE, reason)
        )

    try:
        text = gzip.decompress(raw).decode("ascii")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise corrupt("cannot decompress or decode it: %s" % exc) from exc
    if not text.strip():
        raise corrupt("it holds no data")
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise corrupt("cannot parse it as CSV: %s" % exc) from exc

    expected = (_DIGITS_N_SAMPLES, _DIGITS_N_FEATURES + 1)
    if table.shape != expected:
        raise corrupt("expected a table of shape %s, got %s" % (expected, table.shape))
    if not np.all(np.isfinite(table)) or not np.all(table == np.round(table)):
        raise corrupt("it holds values that are not integers")
    pixels = table[:, :_DIGITS_N_FEATURES]
    labels = table[:, _DIGITS_N_FEATURES]
    if pixels.min() < 0 or pixels.max() > _DIGITS_MAX_PIXEL:
        raise corrupt("pixel values must lie in 0..%d" % _DIGITS_MAX_PIXEL)
    if labels.min() < 0 or labels.max() > _DIGITS_N_CLASSES - 1:
        raise corrupt("labels must lie in 0..%d" % (_DIGITS_N_CLASSES - 1))

    # Dividing by 16, a power of two, is exact in float32.
    X = np.ascontiguousarray(pixels, dtype=np.float32)
    X /= np.float32(_DIGITS_MAX_PIXEL)
    y = np.ascontiguousarray(labels, dtype=np.int64)
    return X, y


def load_digits() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Load the UCI optical-recognition handwritten digits dataset.

    The file is read from the package data on every call, so each call
    returns new arrays that the caller may modify freely.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, n_features)
        ``float32``, C-contiguous, with ``n_samples = 1797`` and
        ``n_features = 64``: each row is an 8x8 image flattened row by row,
        its pixel counts 0..16 divided by 16 so that values lie in [0, 1].
    y : numpy.ndarray of shape (n_samples,)
        ``int64`` digit labels 0..9 (every class has 174 to 183 samples).

    Raises
    ------
    RuntimeError
        If the bundled data file is missing its expected content (damaged
        installation): not gzip, not numeric CSV, wrong shape, or values
        outside the documented ranges.

    Notes
    -----
    Each image was made from a 32x32 bitmap of a handwritten digit by counting
    the set pixels in each non-overlapping 4x4 block. The 1797 samples are the
    test part (``optdigits.tes``) of the UCI dataset, as shipped in
    scikit-learn's package data, bundled here unchanged.

    The dataset is by E. Alpaydin and C. Kaynak and is licensed under the
    Creative Commons Attribution 4.0 International license (CC BY 4.0),
    https://creativecommons.org/licenses/by/4.0/. See ``ATTRIBUTION.md`` next
    to this module.

    References
    ----------
    .. [1] E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten
       Digits", UCI Machine Learning Repository, 1998.
       https://doi.org/10.24432/C50P49

    Examples
    --------
    >>> from fastmlp.datasets import load_digits
    >>> X, y = load_digits()
    >>> X.shape, X.dtype, y.shape, y.dtype
    ((1797, 64), dtype('float32'), (1797,), dtype('int64'))
    """
    return _parse_digits(_read_digits_bytes())


# Arrays keep their dtype through the split; other array-likes come out as whatever
# numpy.asarray makes of them.
_XScalar = TypeVar("_XScalar", bound=np.generic)
_YScalar = TypeVar("_YScalar", bound=np.generic)


@overload
def train_test_split(
    X: NDArray[_XScalar], y: NDArray[_YScalar], test_fraction: float = ..., seed: int | None = ...
) -> tuple[NDArray[_XScalar], NDArray[_XScalar], NDArray[_YScalar], NDArray[_YScalar]]: ...
@overload
def train_test_split(
    X: ArrayLike, y: ArrayLike, test_fraction: float = ..., seed: int | None = ...
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]: ...
def train_test_split(
    X: ArrayLike, y: ArrayLike, test_fraction: float = 0.25, seed: int | None = 0
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Split samples into a training and a test part by a seeded shuffle.

    The rows are permuted with ``numpy.random.default_rng(seed)``; the first
    ``round(n_samples * test_fraction)`` of the permutation (at least 1 and at
    most ``n_samples - 1``) form the test part and the rest the training
    part. The split is not stratified. The same inputs and seed always give
    the same split.

    Parameters
    ----------
    X : array_like of shape (n_samples, ...)
        Samples, one per row (along the first axis).
    y : array_like of shape (n_samples, ...)
        Targets, aligned with the rows of `X`.
    test_fraction : float, default=0.25
        Fraction of the samples put in the test part; must lie strictly
        between 0 and 1.
    seed : int or None, default=0
        Seed for ``numpy.random.default_rng``. ``None`` gives a different
        split on every call.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, ...)
    X_test : numpy.ndarray of shape (n_test, ...)
    y_train : numpy.ndarray of shape (n_train, ...)
    y_test : numpy.ndarray of shape (n_test, ...)
        New C-contiguous arrays with the dtypes of `X` and `y`, rows in
        shuffled order, ``n_train + n_test == n_samples``.

    Raises
    ------
    ValueError
        If `test_fraction` is not a number strictly between 0 and 1, if `X`
        or `y` has no sample axis, if they hold different numbers of samples,
        or if there are fewer than 2 samples, or if `seed` is negative.
    TypeError
        If `seed` is not an int or None.

    Examples
    --------
    >>> from fastmlp.datasets import load_digits, train_test_split
    >>> X_train, X_test, y_train, y_test = train_test_split(*load_digits())
    >>> X_train.shape, X_test.shape
    ((1348, 64), (449, 64))
    """
    if is_bool(test_fraction) or not isinstance(test_fraction, numbers.Real):
        raise ValueError(
            "test_fraction must be a number strictly between 0 and 1, got %r" % (test_fraction,)
        )
    if not 0.0 < float(test_fraction) < 1.0:  # also rejects NaN
        raise ValueError(
            "test_fraction must be strictly between 0 and 1, got %r" % (test_fraction,)
        )
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError("X and y must be arrays with one sample per row, got a scalar")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            "X and y must hold the same number of samples, got %d and %d" % (n, y.shape[0])
        )
    if n < 2:
        raise ValueError(
            "need at least 2 samples to put at least 1 in each part, got %d" % n
        )

    n_test = min(max(round(n * float(test_fraction)), 1), n - 1)
    order = np.random.default_rng(check_seed(seed)).permutation(n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    return (
        np.ascontiguousarray(X[train_idx]),
        np.ascontiguousarray(X[test_idx]),
        np.ascontiguousarray(y[train_idx]),
        np.ascontiguousarray(y[test_idx]),
    )
