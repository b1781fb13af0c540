"""Bad input to Network and Trainer: every mistake raises a ValueError (TypeError for data that
is not real numbers, or arguments of the wrong type) whose message names the problem, and the
failed call changes nothing: weights, biases and the trainer's shuffling RNG stay bitwise equal."""

import contextlib
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastmlp

SIZES = [4, 5, 3]  # 4 features, 3 classes
N = 6


@pytest.fixture
def net():
    return fastmlp.Network(SIZES, seed=0)


@pytest.fixture
def trainer(net):
    return fastmlp.Trainer(net, lr=0.1, batch_size=4, seed=1)


def good_X():
    return np.random.default_rng(0).standard_normal((N, SIZES[0])).astype(np.float32)


def good_y():
    return np.array([0, 1, 2, 0, 1, 2])


def snapshot(net, trainer):
    # Wider than tests.helpers.snapshot: a refused call must also leave the trainer's shuffling RNG where it was,
    # and assert_same checks dtypes and shapes besides the bytes.
    return ([np.array(w, copy=True) for w in net.weights], [np.array(b, copy=True) for b in net.biases],
            trainer.training_state.rng.bit_generator.state)


def assert_same(before, after):
    (W0, b0, rng0), (W1, b1, rng1) = before, after
    assert len(W0) == len(W1) and len(b0) == len(b1)
    for a, b in zip(W0 + b0, W1 + b1):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    assert rng0 == rng1


@contextlib.contextmanager
def changes_nothing(net, trainer):
    before = snapshot(net, trainer)
    yield
    assert_same(before, snapshot(net, trainer))


def raises_cleanly(net, trainer, call, exc, pattern):
    with changes_nothing(net, trainer), pytest.raises(exc, match=pattern):
        call()


# Each entry calls one entry point with (X, y); `xname`/`yname` are the names the messages use.
CALLS = {
    "predict_proba": (lambda n, t, X, y: n.predict_proba(X), "X", None),
    "predict": (lambda n, t, X, y: n.predict(X), "X", None),
    "loss": (lambda n, t, X, y: n.loss(X, y), "X", "y"),
    "accuracy": (lambda n, t, X, y: n.accuracy(X, y), "X", "y"),
    "gradients": (lambda n, t, X, y: n.gradients(X, y), "X", "y"),
    "step": (lambda n, t, X, y: t.step(X, y), "X", "y"),
    "fit": (lambda n, t, X, y: t.fit(X, y, epochs=2), "X", "y"),
    "fit_validation": (lambda n, t, X, y: t.fit(good_X(), good_y(), epochs=2, validation_data=(X, y)),
                       "X_val", "y_val"),
}
CALLS_WITH_Y = [name for name, (_, _, yname) in CALLS.items() if yname]


def with_value(value, row=2, col=1, dtype=np.float64):
    X = good_X().astype(dtype)
    X[row, col] = value
    return X


def obj_strings():
    return np.array([["a", "b", "c", "d"]] * N, dtype=object)


OVERFLOW = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

BAD_X = [
    pytest.param(lambda: np.zeros((N, 5)), ValueError, r"expects 4 input features, got {X} with shape \(6, 5\)",
                 id="wrong-width"),
    pytest.param(lambda: np.zeros(4), ValueError,
                 r"got {X} with shape \(4,\); for a single sample use {X}\.reshape\(1, -1\)", id="1d-one-sample"),
    pytest.param(lambda: np.zeros(24), ValueError, r"of shape \(n_samples, 4\), got {X} with shape \(24,\)",
                 id="1d"),
    pytest.param(lambda: np.zeros((N, 2, 2)), ValueError,
                 r"shape \(6, 2, 2\); flatten it with {X}\.reshape\(len\({X}\), -1\)", id="3d"),
    pytest.param(lambda: np.zeros((0, 4)), ValueError, r"{X} has 0 samples", id="empty"),
    pytest.param(lambda: with_value(np.nan), ValueError, r"{X} contains NaN", id="nan"),
    pytest.param(lambda: with_value(np.inf), ValueError, r"{X} contains infinity", id="+inf"),
    pytest.param(lambda: with_value(-np.inf), ValueError, r"{X} contains infinity", id="-inf"),
    pytest.param(lambda: with_value(1e39), ValueError, r"{X} contains .*too large for float32",
                 id="overflows-float32", marks=OVERFLOW),
    pytest.param(lambda: with_value(-1e39), ValueError, r"{X} contains .*too large for float32",
                 id="-overflows-float32", marks=OVERFLOW),
    pytest.param(lambda: [["a", "b", "c", "d"]] * N, TypeError, r"{X} must hold numbers, got dtype <U1",
                 id="strings"),
    pytest.param(obj_strings, TypeError, r"{X} must hold numbers; it has dtype object", id="object-strings"),
    pytest.param(lambda: good_X() + 1j, TypeError, r"{X} must be real, got complex", id="complex"),
    pytest.param(lambda: [[1, 2, 3, 4], [1, 2]], TypeError, r"{X} could not be read as a numeric array",
                 id="ragged"),
]


def fill(pattern, xname, yname):
    return pattern.format(X=re.escape(xname), y=re.escape(yname or "y"))


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("make_X,exc,pattern", BAD_X)
def test_bad_X(net, trainer, call, make_X, exc, pattern):
    f, xname, yname = CALLS[call]
    raises_cleanly(net, trainer, lambda: f(net, trainer, make_X(), good_y()), exc, fill(pattern, xname, yname))


def labels(last, dtype=None):
    return np.array([0, 1, 2, 0, 1, last], dtype=dtype)


def targets(last_row):
    T = np.eye(3)[good_y()]
    T[-1] = last_row
    return T


BAD_Y = [
    pytest.param(lambda: labels(-1), ValueError, r"labels must be integers in \[0, 3\).*{y} contains -1$",
                 id="negative"),
    pytest.param(lambda: labels(3), ValueError, r"labels must be integers in \[0, 3\).*{y} contains 3$",
                 id="equal-K"),
    # Must not wrap around to a small label when narrowed: 2**40 and 2**63 are out of range as they are.
    pytest.param(lambda: labels(2**40, np.int64), ValueError, r"{y} contains 1099511627776$", id="int64-2**40"),
    pytest.param(lambda: labels(2**63, np.uint64), ValueError, r"{y} contains 9223372036854775808$",
                 id="uint64-2**63"),
    pytest.param(lambda: labels(-2**63, np.int64), ValueError, r"{y} contains -9223372036854775808$",
                 id="int64-min"),
    pytest.param(lambda: labels(1.5), ValueError, r"labels must be integers in \[0, 3\); {y}\[5\] = ",
                 id="float-1.5"),
    pytest.param(lambda: labels(np.nan), ValueError, r"{y} contains NaN", id="nan"),
    pytest.param(lambda: labels(np.inf), ValueError, r"{y} contains NaN or infinity", id="inf"),
    pytest.param(lambda: np.array(["a", "b", "c", "a", "b", "c"]), TypeError, r"{y} must hold numbers", id="strings"),
    pytest.param(lambda: ["0", "1", "2", "0", "1", "2"], TypeError, r"{y} must hold numbers", id="digit-strings"),
    pytest.param(lambda: np.array([0, 1, 2]), ValueError, r"{y} has 3 labels but .* has 6 samples", id="too-short"),
    pytest.param(lambda: np.zeros(7, int), ValueError, r"{y} has 7 labels but .* has 6 samples", id="too-long"),
    pytest.param(lambda: np.full((N, 4), 0.25), ValueError,
                 r"target distributions need 3 columns .* shape \(6, 4\)", id="targets-too-wide"),
    pytest.param(lambda: np.full((N, 2), 0.5), ValueError,
                 r"target distributions need 3 columns .* shape \(6, 2\)", id="targets-too-narrow"),
    pytest.param(lambda: good_y()[:, None], ValueError, r"shape \(6, 1\); for integer labels pass a 1-D array "
                 r"\({y}\.ravel\(\)\)", id="column-labels"),
    pytest.param(lambda: np.eye(3)[[0, 1, 2]], ValueError, r"{y} has 3 rows but .* has 6 samples",
                 id="targets-too-few-rows"),
    pytest.param(lambda: targets([1.5, -0.5, 0.0]), ValueError, r"must be >= 0; {y} has negative entries",
                 id="negative-targets"),
    pytest.param(lambda: targets([0.5, 0.2, 0.2]), ValueError, r"must sum to 1; row 5 of {y} sums to 0\.9",
                 id="rows-not-summing-to-1"),
    pytest.param(lambda: targets([np.nan, 0.5, 0.5]), ValueError, r"{y} contains NaN", id="nan-targets"),
    pytest.param(lambda: np.zeros((N, 3, 1)), ValueError, r"{y} must be labels of shape \(6,\) or targets of "
                 r"shape \(6, 3\), got shape \(6, 3, 1\)", id="3d"),
    pytest.param(lambda: 1, ValueError, r"{y} must be labels of shape \(6,\)", id="scalar"),
]


@pytest.mark.parametrize("call", CALLS_WITH_Y)
@pytest.mark.parametrize("make_y,exc,pattern", BAD_Y)
def test_bad_y(net, trainer, call, make_y, exc, pattern):
    f, xname, yname = CALLS[call]
    raises_cleanly(net, trainer, lambda: f(net, trainer, good_X(), make_y()), exc, fill(pattern, xname, yname))


def test_overflow_to_float32_raises_without_a_warning(net):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="too large for float32"):
            net.predict_proba(with_value(1e39))


def test_fractional_label_message_shows_the_plain_value(net):
    with pytest.raises(ValueError, match=r"y\[5\] = 1\.5$"):
        net.loss(good_X(), labels(1.5))


def test_validation_label_count_message_names_X_val(trainer):
    with pytest.raises(ValueError, match=r"y_val has 3 labels but X_val has 6 samples"):
        trainer.fit(good_X(), good_y(), validation_data=(good_X(), np.array([0, 1, 2])))


def test_object_array_of_numeric_strings_is_refused(net, trainer):
    X = np.array([["1.5", "2", "3", "4"]] * N, dtype=object)
    raises_cleanly(net, trainer, lambda: net.predict_proba(X), TypeError, "X must hold numbers")


# ---------------------------------------------------------------- constructor and trainer arguments

@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(layer_sizes=[4, 0, 3]), ValueError, r"layer_sizes\[1\] must be >= 1, got 0"),
    (dict(layer_sizes=[4, -2, 3]), ValueError, r"layer_sizes\[1\] must be >= 1, got -2"),
    (dict(layer_sizes=[0, 3]), ValueError, r"layer_sizes\[0\] must be >= 1, got 0"),
    (dict(layer_sizes=[4]), ValueError, r"needs at least an input and an output size"),
    (dict(layer_sizes=[]), ValueError, r"needs at least an input and an output size"),
    (dict(layer_sizes=[4, 2.5, 3]), TypeError, r"layer_sizes\[1\] must be an integer, got 2\.5"),
    (dict(layer_sizes=[4, "64", 3]), TypeError, r"layer_sizes\[1\] must be an integer, got '64'"),
    (dict(layer_sizes=[True, 3]), TypeError, r"layer_sizes\[0\] must be an integer, got True"),
    (dict(layer_sizes="64"), TypeError, r"layer_sizes must be a list of integers"),
    (dict(layer_sizes=64), TypeError, r"layer_sizes must be a list of integers"),
    (dict(layer_sizes=[4, 8, 1]), ValueError, r"softmax output needs at least 2 classes"),
    (dict(activation="softmax"), ValueError, r"activation must be one of .*got 'softmax'"),
    (dict(activation="ReLU"), ValueError, r"activation must be one of .*got 'ReLU'"),
    (dict(activation=None), ValueError, r"activation must be one of .*got None"),
    (dict(activation=["relu", "tanh"]), ValueError, r"activation lists 2 names but the network has 1 hidden"),
    (dict(activation=["swish"]), ValueError, r"activation must be one of .*got 'swish'"),
    (dict(output="softmax2"), ValueError, r"output must be one of \('softmax', 'sigmoid', 'identity', 'poisson'\)"),
    (dict(output=None), ValueError, r"output must be one of"),
    (dict(init="xavier"), ValueError, r"init must be one of .*got 'xavier'"),
    (dict(dropout=1.0), ValueError, r"dropout must lie in \[0, 1\)"),
    (dict(dropout=-0.1), ValueError, r"dropout must lie in \[0, 1\)"),
    (dict(dropout=float("nan")), ValueError, r"dropout must lie in \[0, 1\)"),
    (dict(dropout=[0.1, 0.2]), ValueError, r"dropout lists 2 probabilities but the network has 1 hidden"),
    (dict(dropout="0.5"), TypeError, r"dropout must be a probability"),
    (dict(dtype="float16"), ValueError, r"dtype must be one of \('float32', 'float64'\), got 'float16'"),
    (dict(dtype="int32"), ValueError, r"dtype must be one of .*got 'int32'"),
    (dict(dtype=np.int64), ValueError, r"dtype must be one of .*got 'int64'"),
    (dict(dtype=object()), ValueError, r"dtype must be one of .*got <object object"),
    (dict(dtype="bogus"), ValueError, r"dtype must be one of .*got 'bogus'"),
    (dict(seed=-1), ValueError, r"seed must be >= 0, got -1"),
    (dict(seed=1.5), TypeError, r"seed must be an int or None, got 1\.5"),
    (dict(seed="1"), TypeError, r"seed must be an int or None, got '1'"),
    (dict(seed=True), TypeError, r"seed must be an int or None, got True"),
], ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__)
def test_bad_network_arguments(kwargs, exc, pattern):
    kwargs = {"layer_sizes": SIZES, **kwargs}
    with pytest.raises(exc, match=pattern):
        fastmlp.Network(**kwargs)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(network="net"), TypeError, r"Trainer needs a fastmlp\.Network, got str"),
    (dict(network=None), TypeError, r"Trainer needs a fastmlp\.Network, got NoneType"),
    (dict(lr=0), ValueError, r"lr must be finite and > 0, got 0\.0"),
    (dict(lr=-0.1), ValueError, r"lr must be finite and > 0, got -0\.1"),
    (dict(lr=float("nan")), ValueError, r"lr must be finite and > 0, got nan"),
    (dict(lr=float("inf")), ValueError, r"lr must be finite and > 0, got inf"),
    (dict(lr="0.1"), TypeError, r"lr must be a real number, got '0\.1'"),
    (dict(lr=True), TypeError, r"lr must be a real number, got True"),
    (dict(batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    (dict(batch_size=-1), ValueError, r"batch_size must be >= 1, got -1"),
    (dict(batch_size=2.5), TypeError, r"batch_size must be an integer, got 2\.5"),
    (dict(batch_size=True), TypeError, r"batch_size must be an integer, got True"),
    (dict(shuffle=1), TypeError, r"shuffle must be True or False, got 1"),
    (dict(shuffle="yes"), TypeError, r"shuffle must be True or False, got 'yes'"),
    (dict(shuffle=None), TypeError, r"shuffle must be True or False, got None"),
    (dict(seed=-1), ValueError, r"seed must be >= 0, got -1"),
    (dict(seed=0.5), TypeError, r"seed must be an int or None, got 0\.5"),
], ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__)
def test_bad_trainer_arguments(net, kwargs, exc, pattern):
    kwargs = {"network": net, **kwargs}
    before = [W.copy() for W in net.weights]
    with pytest.raises(exc, match=pattern):
        fastmlp.Trainer(**kwargs)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, net.weights))


@pytest.mark.parametrize("call,attribute,value,pattern", [
    ("fit", "batch_size", 0, r"batch_size must be >= 1"),
])
def test_trainer_attributes_set_later_are_checked(net, trainer, call, attribute, value, pattern):
    setattr(trainer, attribute, value)
    f = CALLS[call][0]
    raises_cleanly(net, trainer, lambda: f(net, trainer, good_X(), good_y()), ValueError, pattern)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_trainer_lr_is_checked_when_set(net, trainer, value):
    before = trainer.lr
    with pytest.raises(ValueError, match=r"lr must be finite and > 0"):
        trainer.lr = value
    assert trainer.lr == before and trainer.optimizer.lr == before


@pytest.mark.parametrize("epochs,exc,pattern", [
    (0, ValueError, r"epochs must be >= 1, got 0"),
    (-3, ValueError, r"epochs must be >= 1, got -3"),
    (1.0, TypeError, r"epochs must be an integer, got 1\.0"),
    ("2", TypeError, r"epochs must be an integer, got '2'"),
    (True, TypeError, r"epochs must be an integer, got True"),
    (None, TypeError, r"epochs must be an integer, got None"),
])
def test_bad_epochs(net, trainer, epochs, exc, pattern):
    raises_cleanly(net, trainer, lambda: trainer.fit(good_X(), good_y(), epochs=epochs), exc, pattern)


@pytest.mark.parametrize("validation_data", [
    pytest.param(lambda: (good_X(),), id="1-tuple"),
    pytest.param(lambda: (good_X(), good_y(), good_y()), id="3-tuple"),
    pytest.param(lambda: good_X(), id="array"),
    pytest.param(lambda: np.stack([good_X(), good_X()]), id="array-of-2"),
    pytest.param(lambda: {"X": good_X(), "y": good_y()}, id="dict"),
    pytest.param(lambda: "Xy", id="string"),
])
def test_validation_data_must_be_a_pair(net, trainer, validation_data):
    raises_cleanly(net, trainer, lambda: trainer.fit(good_X(), good_y(), validation_data=validation_data()),
                   ValueError, r"validation_data must be a tuple \(X_val, y_val\)")


# ---------------------------------------------------------------- user edits of the parameters

def set_weight(k, make):
    def edit(net):
        net.weights[k] = make(net.weights[k])
    return edit


def set_bias(k, make):
    def edit(net):
        net.biases[k] = make(net.biases[k])
    return edit


def replace_list(net):
    net.weights = tuple(net.weights)


@pytest.mark.parametrize("edit,pattern", [
    pytest.param(set_weight(0, lambda W: np.zeros((3, 3), np.float32)), r"net\.weights\[0\] must be a float32 "
                 r"array of shape \(5, 4\), got ndarray float32 \(3, 3\)", id="wrong-shape"),
    pytest.param(set_weight(0, lambda W: np.zeros((3, 3))), r"net\.weights\[0\] must be a float32 array",
                 id="wrong-shape-and-dtype"),
    pytest.param(set_weight(0, lambda W: W.astype(np.float64)),
                 r"net\.weights\[0\] must be a float32 array of shape \(5, 4\), got ndarray float64 \(5, 4\); "
                 r"assign values with net\.weights\[0\]\[\.\.\.\] = new_values", id="float64"),
    pytest.param(set_weight(0, np.asfortranarray), r"net\.weights\[0\] must be C-contiguous", id="fortran"),
    pytest.param(set_weight(1, lambda W: np.ones((6, 5), np.float32)[::2, :]),
                 r"net\.weights\[1\] must be C-contiguous", id="strided-view"),
    pytest.param(set_weight(0, lambda W: W.tolist()), r"net\.weights\[0\] must be a float32 array", id="list"),
    pytest.param(set_bias(1, lambda b: np.zeros(4, np.float32)), r"net\.biases\[1\] must be a float32 array "
                 r"of shape \(3,\)", id="bias-shape"),
    pytest.param(replace_list, r"net\.weights must be a list of 2 arrays", id="tuple-of-weights"),
])
@pytest.mark.parametrize("call", list(CALLS))
def test_broken_parameter_edits_raise_naming_the_parameter(net, trainer, call, edit, pattern):
    edit(net)
    f = CALLS[call][0]
    raises_cleanly(net, trainer, lambda: f(net, trainer, good_X(), good_y()), ValueError, pattern)


def test_in_place_writes_take_effect(net, trainer):
    X = good_X()
    before = net.predict_proba(X)
    net.weights[-1][...] = 0
    uniform = net.predict_proba(X)
    assert not np.array_equal(before, uniform)
    assert np.all(uniform == np.float32(1 / 3))
    net.biases[-1][...] = [0, 0, 5]
    assert np.all(net.predict(X) == 2)
    trainer.step(X, good_y())  # the edited arrays are still the ones trained
    assert np.any(net.weights[-1] != 0)


def read_only_weight(net):
    net.weights[0] = net.weights[0].copy()
    net.weights[0].setflags(write=False)


def test_predict_works_with_read_only_weights(net):
    X = good_X()
    want = net.predict_proba(X)
    read_only_weight(net)
    assert net.predict_proba(X).tobytes() == want.tobytes()


@pytest.mark.parametrize("call", ["step", "fit"])
def test_training_read_only_weights_names_the_parameter(net, trainer, call):
    read_only_weight(net)
    f = CALLS[call][0]
    raises_cleanly(net, trainer, lambda: f(net, trainer, good_X(), good_y()), ValueError,
                   r"net\.weights\[0\] .*writeable")


# ---------------------------------------------------------------------- clear errors (issue 14)


def _net():
    return fastmlp.Network([3, 4, 2], seed=0)


# Network, Trainer, DataParallelTrainer, gradcheck and the estimators take sparse X since issue 16
# (tests/api/test_sparse_input.py, tests/api/test_gradcheck.py, tests/mpi/); check_X, the conversion of
# a dense X, still refuses a sparse one (rather than making an object array of it) and says how to convert.
def test_sparse_input_to_the_dense_check_says_it_is_not_supported_and_how_to_convert():
    sparse = pytest.importorskip("scipy.sparse")
    from fastmlp._validation import check_X

    X = sparse.csr_matrix(np.ones((4, 3)))
    with pytest.raises(TypeError, match=r"sparse input is not supported yet; convert with X\.toarray\(\)"):
        check_X(X, 3, np.dtype(np.float64))


def test_the_sparse_check_does_not_import_scipy():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import fastmlp
        from fastmlp._validation import check_X

        class FakeSparse:  # what the check looks for: a type that converts itself to CSR
            def tocsr(self):
                raise AssertionError("never called")

        try:
            check_X(FakeSparse(), 3, np.dtype(np.float64))  # the dense conversion
        except TypeError as exc:
            assert "sparse input is not supported yet" in str(exc), exc
        else:
            raise AssertionError("accepted")
        assert "scipy" not in sys.modules
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(pathlib.Path(fastmlp.__file__).parent.parent)))
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("spelling", ["float32", "f4", "=f4", np.float32, np.dtype(np.float32),
                                      "float64", "f8", np.float64, np.dtype("=f8")])
def test_any_spelling_of_the_two_dtypes_is_normalised(spelling):
    net = fastmlp.Network([3, 2], dtype=spelling)
    assert net.dtype is np.dtype(net.dtype.name)  # NumPy's own object, which the native calls require
    assert net.predict_proba(np.ones((1, 3))).dtype == net.dtype


@pytest.mark.parametrize("swapped", [np.dtype("float32").newbyteorder(), np.dtype("float64").newbyteorder()])
def test_a_byte_swapped_dtype_is_refused_up_front(swapped):
    with pytest.raises(ValueError, match=r"machine's byte order.*byte-swapped"):
        fastmlp.Network([3, 2], dtype=swapped)
    with pytest.raises(ValueError, match="byte order"):
        fastmlp.Network([3, 2], dtype=swapped.str)  # '>f4' on a little-endian machine


def test_a_python_int_too_large_for_a_float_is_a_value_error():
    X = np.array([[10**400, 1, 2]], dtype=object)
    with pytest.raises(ValueError, match="too large for float64"):
        _net().predict(X)
    with pytest.raises(ValueError, match="too large"):
        _net().predict([[10**400, 1, 2]])


def test_masked_arrays_with_masked_entries_are_refused():
    X = np.ma.masked_array(np.ones((2, 3)), mask=[[0, 1, 0], [0, 0, 0]])
    with pytest.raises(TypeError, match=r"masked array with 1 masked entries.*X\.filled\(value\) or drop"):
        _net().predict(X)
    with pytest.raises(TypeError, match="masked"):
        fastmlp.Trainer(_net(), seed=0).fit(X, [0, 1], epochs=1)
    plain = np.ma.masked_array(np.ones((2, 3)))  # nothing masked: the data as it is
    assert np.array_equal(_net().predict(plain), _net().predict(np.ones((2, 3))))


def test_missing_values_are_named_as_na():
    with pytest.raises(TypeError, match=r"missing values \(NA: None\)"):
        _net().predict(np.array([[None, 1.0, 2.0]], dtype=object))


def test_pandas_na_is_named_as_na():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": [1.0, 2.0], "c": [3, 4]})
    with pytest.raises(TypeError, match=r"missing values \(NA: pandas\.NA\).*fillna"):
        _net().predict(frame)
    with pytest.raises(TypeError, match=r"NA: pandas\.NA"):
        _net().predict(np.array([[pd.NA, 1.0, 2.0]], dtype=object))
    with pytest.raises(TypeError, match="NA"):
        fastmlp.Trainer(_net(), seed=0).fit(frame, [0, 1], epochs=1)


@pytest.mark.parametrize("seed", [2**64, 2**70])
def test_a_dropout_seed_past_64_bits_names_seed_and_its_range(seed):
    net = fastmlp.Network([3, 4, 2], seed=0, dropout=0.5)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        net.gradients(np.ones((2, 3)), [0, 1], training=True, seed=seed)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        net.loss(np.ones((2, 3)), [0, 1], training=True, seed=seed)
    net.gradients(np.ones((2, 3)), [0, 1], training=np.True_, seed=2**64 - 1)  # the largest key works
