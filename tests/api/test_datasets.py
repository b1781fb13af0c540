"""Tests for the bundled dataset and the train/test split (fastmlp.datasets only)."""

import gzip
import hashlib

import numpy as np
import pytest

from fastmlp import datasets
from fastmlp.datasets import load_digits, train_test_split

# Must match ATTRIBUTION.md: the data file is bundled byte for byte unchanged.
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# --- load_digits -------------------------------------------------------------


def test_data_file_is_the_attributed_one():
    assert hashlib.sha256(datasets._read_digits_bytes()).hexdigest() == DIGITS_SHA256


def test_shapes_and_dtypes(digits):
    X, y = digits
    assert X.shape == (1797, 64)
    assert y.shape == (1797,)
    assert X.dtype == np.float32
    assert y.dtype == np.int64


def test_c_contiguous(digits):
    X, y = digits
    assert X.flags.c_contiguous
    assert y.flags.c_contiguous


def test_pixels_scaled_to_unit_interval(digits):
    X, _ = digits
    assert np.all(np.isfinite(X))
    assert X.min() == 0.0
    assert X.max() == 1.0
    # Original pixels are integer counts 0..16; scaling by 1/16 is exact.
    assert np.array_equal(X * 16, np.round(X * 16))


def test_first_row_matches_file(digits):
    X, y = digits
    first_line = gzip.decompress(datasets._read_digits_bytes()).decode("ascii").splitlines()[0]
    values = [int(v) for v in first_line.split(",")]
    assert np.array_equal(X[0] * 16, np.array(values[:64], dtype=np.float32))
    assert y[0] == values[64]


def test_labels_cover_0_to_9(digits):
    _, y = digits
    assert y.min() == 0 and y.max() == 9
    assert set(np.unique(y).tolist()) == set(range(10))


def test_class_counts_roughly_balanced(digits):
    _, y = digits
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10
    assert counts.sum() == 1797
    assert np.all((counts >= 170) & (counts <= 185)), counts


def test_fresh_arrays_per_call():
    X1, y1 = load_digits()
    X1_before, y1_before = X1.copy(), y1.copy()
    X1[:] = -5.0
    y1[:] = 42
    X2, y2 = load_digits()
    assert not np.shares_memory(X1, X2)
    assert not np.shares_memory(y1, y2)
    assert np.array_equal(X2, X1_before)
    assert np.array_equal(y2, y1_before)


def test_arrays_are_writeable(digits):
    X, y = digits
    assert X.flags.writeable and y.flags.writeable


# --- corrupt data file -------------------------------------------------------


def _gz_rows(rows):
    return gzip.compress(("\n".join(rows) + "\n").encode("ascii"))


def _valid_rows():
    return gzip.decompress(datasets._read_digits_bytes()).decode("ascii").splitlines()


def test_valid_rows_parse():
    X, y = datasets._parse_digits(_gz_rows(_valid_rows()))
    assert X.shape == (1797, 64) and y.shape == (1797,)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not gzip at all", id="not-gzip"),
        pytest.param(None, id="truncated-gzip"),
        pytest.param(gzip.compress(b""), id="empty-content"),
        pytest.param(gzip.compress(b"\xff\xfe\x00garbage"), id="not-ascii"),
    ],
)
def test_undecodable_file_raises(raw):
    if raw is None:
        raw = datasets._read_digits_bytes()[:1000]
    with pytest.raises(RuntimeError, match="corrupt"):
        datasets._parse_digits(raw)


def _mutate(row_index, transform):
    rows = _valid_rows()
    rows[row_index] = transform(rows[row_index])
    return _gz_rows(rows)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_gz_rows(_valid_rows()[:-1]), id="missing-row"),
        pytest.param(_gz_rows(_valid_rows() + [_valid_rows()[0]]), id="extra-row"),
        pytest.param(_mutate(5, lambda r: r + ",0"), id="ragged-row"),
        pytest.param(
            _gz_rows([r.rsplit(",", 1)[0] for r in _valid_rows()]), id="missing-label-column"
        ),
        pytest.param(_mutate(3, lambda r: "abc," + r.split(",", 1)[1]), id="non-numeric"),
        pytest.param(_mutate(3, lambda r: "1.5," + r.split(",", 1)[1]), id="non-integer"),
        pytest.param(_mutate(3, lambda r: "nan," + r.split(",", 1)[1]), id="nan"),
        pytest.param(_mutate(3, lambda r: "17," + r.split(",", 1)[1]), id="pixel-too-big"),
        pytest.param(_mutate(3, lambda r: "-1," + r.split(",", 1)[1]), id="pixel-negative"),
        pytest.param(_mutate(7, lambda r: r.rsplit(",", 1)[0] + ",10"), id="label-too-big"),
        pytest.param(_mutate(7, lambda r: r.rsplit(",", 1)[0] + ",-1"), id="label-negative"),
    ],
)
def test_invalid_content_raises(raw):
    with pytest.raises(RuntimeError, match="corrupt"):
        datasets._parse_digits(raw)


# --- train_test_split --------------------------------------------------------


def test_split_sizes_default(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    n_test = round(1797 * 0.25)  # 449
    assert X_test.shape == (n_test, 64) and y_test.shape == (n_test,)
    assert X_train.shape == (1797 - n_test, 64) and y_train.shape == (1797 - n_test,)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9, 0.33])
def test_split_sizes_by_fraction(digits, fraction):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=fraction)
    assert len(X_test) == len(y_test) == round(1797 * fraction)
    assert len(X_train) == len(y_train) == 1797 - round(1797 * fraction)


def test_split_keeps_dtypes_and_is_c_contiguous(digits):
    X, y = digits
    for part, dtype in zip(train_test_split(X, y), [np.float32, np.float32, np.int64, np.int64]):
        assert part.dtype == dtype
        assert part.flags.c_contiguous


def test_split_c_contiguous_from_fortran_input():
    X = np.asfortranarray(np.arange(40, dtype=np.float64).reshape(10, 4))
    y = np.arange(10)
    X_train, X_test, _, _ = train_test_split(X, y, test_fraction=0.3)
    assert X_train.flags.c_contiguous and X_test.flags.c_contiguous


def test_split_deterministic_by_seed(digits):
    X, y = digits
    a = train_test_split(X, y, seed=123)
    b = train_test_split(X, y, seed=123)
    for pa, pb in zip(a, b):
        assert np.array_equal(pa, pb)
    c = train_test_split(X, y, seed=124)
    assert not np.array_equal(a[3], c[3]) or not np.array_equal(a[1], c[1])


def test_split_disjoint_and_covers_all_rows():
    n = 1797
    X = np.arange(n * 2, dtype=np.int64).reshape(n, 2)  # row i identified by X[i, 0] // 2
    y = np.arange(n)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=7)
    train_ids, test_ids = y_train.tolist(), y_test.tolist()
    assert set(train_ids).isdisjoint(test_ids)
    assert sorted(train_ids + test_ids) == list(range(n))
    assert len(set(train_ids)) == len(train_ids) and len(set(test_ids)) == len(test_ids)
    # X rows stay aligned with their labels.
    assert np.array_equal(X_train[:, 0] // 2, y_train)
    assert np.array_equal(X_test[:, 0] // 2, y_test)


def test_split_does_not_modify_or_alias_inputs(digits):
    X, y = digits
    X_copy, y_copy = X.copy(), y.copy()
    parts = train_test_split(X, y)
    assert np.array_equal(X, X_copy) and np.array_equal(y, y_copy)
    for part in parts:
        assert not np.shares_memory(part, X) and not np.shares_memory(part, y)


def test_split_at_least_one_in_each_part():
    X = np.arange(10).reshape(5, 2)
    y = np.arange(5)
    _, X_test, _, y_test = train_test_split(X, y, test_fraction=0.01)
    assert len(X_test) == len(y_test) == 1
    X_train, _, y_train, _ = train_test_split(X, y, test_fraction=0.99)
    assert len(X_train) == len(y_train) == 1
    X_train, X_test, _, _ = train_test_split(X[:2], y[:2], test_fraction=0.5)
    assert len(X_train) == len(X_test) == 1


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_split_rejects_fraction_outside_open_unit_interval(fraction):
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(X, y, test_fraction=fraction)


@pytest.mark.parametrize("fraction", ["0.25", None, True, [0.25]])
def test_split_rejects_non_numeric_fraction(fraction):
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(X, y, test_fraction=fraction)


@pytest.mark.parametrize("n", [0, 1])
def test_split_rejects_too_few_samples(n):
    with pytest.raises(ValueError, match="at least 2 samples"):
        train_test_split(np.zeros((n, 3)), np.zeros(n))


def test_split_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same number of samples"):
        train_test_split(np.zeros((10, 3)), np.zeros(9))


def test_split_rejects_scalars():
    with pytest.raises(ValueError, match="scalar"):
        train_test_split(np.float64(1.0), np.zeros(1))


@pytest.mark.parametrize("seed,exc", [(-1, ValueError), (1.5, TypeError), ("0", TypeError)])
def test_split_rejects_bad_seeds_with_a_clear_message(seed, exc):
    X, y = np.zeros((10, 2)), np.arange(10)
    with pytest.raises(exc, match="seed"):
        train_test_split(X, y, seed=seed)
