"""History: lists kept aligned by append, the best-epoch rule (validation loss first, NaN never
best, earliest of ties), the plain-dict round trip used by checkpoints, and the plot (with
matplotlib when it is installed, and the install hint when it is not)."""

import json
import math
import sys

import numpy as np
import pytest

from fastmlp.history import METRICS, History


def history_of(**columns):
    h = History()
    n = len(columns["loss"])
    for i in range(n):
        h.append(**{name: values[i] for name, values in columns.items()})
    return h


# ------------------------------------------------------------------ append and alignment


def test_a_new_history_is_empty():
    h = History()
    assert h.epochs == 0
    assert h.best_epoch is None
    assert all(getattr(h, name) == [] for name in METRICS)
    assert repr(h) == "<History: 0 epoch(s)>"


def test_append_records_one_value_per_metric_and_epoch():
    h = History()
    h.append(loss=0.5, accuracy=0.8, val_loss=0.6, val_accuracy=0.7, lr=0.1, epoch_time=0.01)
    h.append(loss=np.float32(0.25), accuracy=0.9, val_loss=0.4, val_accuracy=0.75, lr=0.05, epoch_time=0.02)
    assert h.epochs == 2
    assert h.loss == [0.5, 0.25]
    assert h.lr == [0.1, 0.05]
    assert all(type(v) is float for name in METRICS for v in getattr(h, name))
    assert repr(h) == "<History: 2 epoch(s), last loss 0.25>"


def test_unrecorded_metrics_stay_empty():
    # A regression records no accuracy; a run without validation data no val_*.
    h = history_of(loss=[3.0, 2.0], epoch_time=[0.1, 0.1])
    assert h.accuracy == [] and h.val_loss == [] and h.lr == []
    assert h.epochs == 2


@pytest.mark.parametrize("second", [
    dict(loss=0.4),                                      # val_loss missing
    dict(loss=0.4, val_loss=0.5, accuracy=0.9),          # accuracy new
])
def test_append_refuses_a_different_set_of_metrics(second):
    h = History()
    h.append(loss=0.5, val_loss=0.6)
    with pytest.raises(ValueError, match=r"epoch 2 got metrics .* recorded \['loss', 'val_loss'\]"):
        h.append(**second)
    assert h.loss == [0.5] and h.val_loss == [0.6] and h.accuracy == []  # unchanged


def test_append_validates_names_and_values():
    h = History()
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['val_los'\]"):
        h.append(loss=0.5, val_los=0.6)
    with pytest.raises(ValueError, match="needs loss"):
        h.append(accuracy=0.5)
    with pytest.raises(TypeError, match=r"val_loss must be a real number, got '0\.6'"):
        h.append(loss=0.5, val_loss="0.6")
    with pytest.raises(TypeError, match="loss must be a real number"):
        h.append(loss=True)
    assert h.epochs == 0 and h.val_loss == []  # nothing half-recorded


def test_append_keeps_non_finite_values():
    h = history_of(loss=[1.0, math.nan, math.inf])
    assert math.isnan(h.loss[1]) and h.loss[2] == math.inf


# ------------------------------------------------------------------ best_epoch


def test_best_epoch_is_one_based_lowest_loss_without_validation():
    assert history_of(loss=[0.9, 0.3, 0.5]).best_epoch == 2


def test_best_epoch_follows_val_loss_when_there_is_validation():
    h = history_of(loss=[0.9, 0.5, 0.1], val_loss=[0.8, 0.6, 0.7])
    assert h.best_epoch == 2


def test_best_epoch_ties_go_to_the_earliest():
    assert history_of(loss=[0.5, 0.2, 0.2, 0.3]).best_epoch == 2
    assert history_of(loss=[1, 1, 1], val_loss=[0.4, 0.4, 0.4]).best_epoch == 1


def test_nan_and_infinite_losses_are_never_best():
    assert history_of(loss=[math.nan, 0.7, 0.9]).best_epoch == 2
    assert history_of(loss=[0.9, 0.8, 0.7], val_loss=[0.5, math.nan, -math.inf]).best_epoch == 1
    assert history_of(loss=[math.nan, math.nan]).best_epoch is None
    # Validation present but all NaN: no best epoch, the training loss does not stand in.
    assert history_of(loss=[0.5, 0.4], val_loss=[math.nan, math.nan]).best_epoch is None


# ------------------------------------------------------------------ to_dict / from_dict


def test_dict_round_trip_through_json():
    h = history_of(loss=[0.9, 0.5], accuracy=[0.6, 0.8], val_loss=[1.0, math.nan],
                   val_accuracy=[0.5, 0.7], lr=[0.1, 0.05], epoch_time=[0.01, 0.02])
    d = h.to_dict()
    assert list(d) == list(METRICS)
    assert all(type(v) is float for values in d.values() for v in values)
    restored = History.from_dict(json.loads(json.dumps(d)))
    assert json.dumps(restored.to_dict()) == json.dumps(d)  # NaN included
    assert restored.epochs == 2 and restored.best_epoch == 1


def test_to_dict_gives_copies():
    h = history_of(loss=[0.9])
    h.to_dict()["loss"].append(5.0)
    assert h.loss == [0.9]


def test_from_dict_takes_missing_metrics_as_unrecorded_and_numpy_values():
    h = History.from_dict({"loss": np.array([0.3, 0.2]), "val_loss": [np.float32(0.5), 0.4]})
    assert h.loss == [0.3, 0.2] and h.accuracy == [] and h.best_epoch == 2
    # Appending goes on with the metrics the dict had.
    h.append(loss=0.1, val_loss=0.3)
    assert h.epochs == 3


def test_from_dict_refuses_misaligned_unknown_or_non_numeric_data():
    with pytest.raises(ValueError, match="val_loss has 1 values but loss has 2"):
        History.from_dict({"loss": [0.3, 0.2], "val_loss": [0.5]})
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['acc'\]"):
        History.from_dict({"loss": [0.3], "acc": [0.5]})
    with pytest.raises(TypeError, match=r"loss\[1\] must be a real number"):
        History.from_dict({"loss": [0.3, "x"]})
    with pytest.raises(TypeError, match="loss must be a list of float"):
        History.from_dict({"loss": "0.3"})
    with pytest.raises(TypeError, match="needs a mapping"):
        History.from_dict([("loss", [0.3])])


# ------------------------------------------------------------------ plot


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_plot_draws_loss_and_accuracy_with_validation_on_two_axes(pyplot):
    h = history_of(loss=[0.9, 0.5, 0.4], accuracy=[0.5, 0.7, 0.8],
                   val_loss=[1.0, 0.6, 0.65], val_accuracy=[0.4, 0.6, 0.7])
    fig = h.plot()
    assert isinstance(fig, pyplot.Figure)
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "val_loss", "best epoch 2"]
    assert [line.get_label() for line in acc_ax.lines] == ["accuracy", "val_accuracy"]
    np.testing.assert_array_equal(loss_ax.lines[1].get_ydata(), [1.0, 0.6, 0.65])
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [1, 2, 3])
    assert acc_ax.get_ylabel() == "accuracy" and acc_ax.get_xlabel() == "epoch"


def test_plot_without_accuracy_uses_one_axes(pyplot):
    fig = history_of(loss=[0.9, 0.5]).plot()
    assert len(fig.axes) == 1


def test_plot_into_given_axes_and_chosen_metrics(pyplot):
    h = history_of(loss=[0.9, 0.5], lr=[0.1, 0.05])
    fig, (a, b) = pyplot.subplots(1, 2)
    assert h.plot(["loss", "lr"], ax=[a, b]) is fig
    assert b.lines[0].get_label() == "lr"
    fig2, single = pyplot.subplots()
    assert h.plot("lr", ax=single) is fig2


def test_plot_refuses_bad_requests(pyplot):
    h = history_of(loss=[0.9, 0.5])
    with pytest.raises(ValueError, match="metrics must be among"):
        h.plot(["val_loss"])
    with pytest.raises(ValueError, match=r"no values recorded for \['accuracy'\]"):
        h.plot(["accuracy"])
    _, axes = pyplot.subplots(1, 2)
    with pytest.raises(ValueError, match="one Axes per metric: 1"):
        h.plot(ax=axes)
    with pytest.raises(ValueError, match="no epochs"):
        History().plot()


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    # None in sys.modules makes the import fail as it does when the package is missing.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[plot\]"'):
        history_of(loss=[0.9, 0.5]).plot()
