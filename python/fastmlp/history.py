"""History: the per-epoch record of a training run (losses, accuracies, learning rate, time),
which epoch was best, a plot of the curves and a plain-dict form for checkpoints. It only
stores and reports numbers; deciding when to stop or what to restore is the Trainer's job."""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from ._validation import is_bool

PLOT_INSTALL_HINT = 'pip install "fastmlp[plot]"'

# Every metric a History records, in the order of to_dict() and of the progress lines.
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time")

# The curves plot() can draw: each on its own axes, with its validation curve when recorded.
PLOTTABLE = ("loss", "accuracy", "lr", "epoch_time")


def _import_pyplot() -> Any:
    """matplotlib.pyplot, imported on first use: matplotlib is an optional dependency."""
    try:
        # import_module, not an import statement: the type checker need not have matplotlib.
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        raise ImportError(f"History.plot needs matplotlib, which is not installed; {PLOT_INSTALL_HINT} "
                          "installs it") from None


def _as_float(value: object, name: str) -> float:
    # NaN and infinity are kept: a run that diverged with on_nonfinite="warn" records them.
    if is_bool(value) or isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


class History:
    """Per-epoch records of one :meth:`Trainer.fit` call.

    Every list holds one value per epoch, or stays empty when that metric is not recorded
    (``accuracy`` for a regression, ``val_*`` without validation data, ``lr`` without a
    schedule), so ``history.loss[i]`` and ``history.val_loss[i]`` always belong to epoch i + 1.
    :meth:`append` keeps them so.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch, each sample's loss taken before the update of its
        batch (so it trails the end-of-epoch loss slightly, as in Keras).
    accuracy : list of float
        Training accuracy of each epoch, measured the same way (classifiers only).
    val_loss, val_accuracy : list of float
        Loss and accuracy on ``validation_data`` after each epoch (empty without it).
    lr : list of float
        Learning rate used in each epoch (empty when not recorded).
    epoch_time : list of float
        Seconds per epoch, training and validation.

    Examples
    --------
    >>> h = History()
    >>> h.append(loss=0.9, val_loss=1.0)
    >>> h.append(loss=0.5, val_loss=0.7)
    >>> h.epochs, h.best_epoch
    (2, 2)
    """

    def __init__(self) -> None:
        self.loss: list[float] = []
        self.accuracy: list[float] = []
        self.val_loss: list[float] = []
        self.val_accuracy: list[float] = []
        self.lr: list[float] = []
        self.epoch_time: list[float] = []
        #: Whether early stopping or a callback ended the fit before its ``epochs``.
        self.stopped_early: bool = False

    @property
    def epochs(self) -> int:
        """int: the number of completed epochs."""
        return len(self.loss)

    @property
    def best_epoch(self) -> Optional[int]:
        """int or None: the 1-based epoch with the lowest ``val_loss``, or the lowest ``loss``
        when there is no validation.

        NaN or infinite losses are never best (a diverged epoch is no checkpoint to return
        to); of equal losses the earliest epoch wins, as a restore-best-weights rule wants.
        None when no epoch has a finite loss (in particular before the first epoch).
        """
        values = self.val_loss if self.val_loss else self.loss
        best: Optional[int] = None
        for i, value in enumerate(values):
            # Strictly lower: a later tie does not replace the earlier epoch.
            if math.isfinite(value) and (best is None or value < values[best]):
                best = i
        return None if best is None else best + 1

    def _recorded(self) -> list[str]:
        return [name for name in METRICS if getattr(self, name)]

    def append(self, **values: float) -> None:
        """Record one epoch.

        Parameters
        ----------
        **values : float
            ``loss`` (required) and any of ``accuracy``, ``val_loss``, ``val_accuracy``,
            ``lr``, ``epoch_time``. The first epoch fixes which metrics are recorded; every
            later epoch must give the same ones, so that the lists stay aligned. NaN and
            infinity are stored as they are.

        Raises
        ------
        ValueError
            An unknown metric name, ``loss`` missing, or a different set of metrics than the
            epochs before. Nothing is recorded then.
        TypeError
            A value that is not a real number.
        """
        unknown = sorted(set(values) - set(METRICS))
        if unknown:
            raise ValueError(f"History.append got unknown metric(s) {unknown}; the metrics are {list(METRICS)}")
        if "loss" not in values:
            raise ValueError(f"History.append needs loss, got only {sorted(values)}")
        if self.epochs:
            expected = self._recorded()
            given = [name for name in METRICS if name in values]
            if given != expected:
                raise ValueError(
                    f"History.append for epoch {self.epochs + 1} got metrics {given}, but the epochs "
                    f"before recorded {expected}; every epoch must record the same metrics")
        # All values converted before any list grows: a bad value leaves the History unchanged.
        converted = {name: _as_float(value, name) for name, value in values.items()}
        for name, value in converted.items():
            getattr(self, name).append(value)

    def to_dict(self) -> dict[str, list[float]]:
        """The records as ``{metric: list of float}``, every metric of :data:`METRICS` present
        (empty lists for those not recorded); new lists, safe to store or edit."""
        return {name: [float(v) for v in getattr(self, name)] for name in METRICS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[object]]) -> History:
        """A History from :meth:`to_dict`'s output (missing metrics are taken as not recorded).

        Raises
        ------
        ValueError
            An unknown metric, or a list whose length is neither 0 nor that of ``loss``.
        TypeError
            ``data`` is not a mapping, or a value is not a real number.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"History.from_dict needs a mapping of metric -> list of float, got {type(data).__name__}")
        unknown = sorted(str(k) for k in set(data) - set(METRICS))
        if unknown:
            raise ValueError(f"History.from_dict got unknown metric(s) {unknown}; the metrics are {list(METRICS)}")
        history = cls()
        for name in METRICS:
            if name in data:
                values = data[name]
                if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                    raise TypeError(f"{name} must be a list of float, got {type(values).__name__}")
                setattr(history, name, [_as_float(v, f"{name}[{i}]") for i, v in enumerate(values)])
        n = history.epochs
        for name in METRICS:
            length = len(getattr(history, name))
            if length not in (0, n):
                raise ValueError(f"{name} has {length} values but loss has {n}; each metric needs one value per "
                                 "epoch, or none")
        return history

    def plot(self, metrics: Optional[Sequence[str]] = None, ax: Any = None) -> Any:
        """Plot the training curves against the epoch, one axes per metric.

        The validation curve (``val_loss``, ``val_accuracy``) is drawn on the axes of its
        training metric, dashed, and the best epoch (see :attr:`best_epoch`) is marked on
        the loss axes.

        Parameters
        ----------
        metrics : str or sequence of str, optional
            Which of ``"loss"``, ``"accuracy"``, ``"lr"``, ``"epoch_time"`` to draw. Default:
            ``loss``, and ``accuracy`` when recorded.
        ax : matplotlib Axes or sequence of Axes, optional
            Where to draw, one Axes per metric. Default: a new figure with the axes side by side.

        Returns
        -------
        matplotlib.figure.Figure
            The figure of the (first) axes.

        Raises
        ------
        ImportError
            matplotlib is not installed (``pip install "fastmlp[plot]"``).
        ValueError
            An empty History, an unknown or unrecorded metric, or a number of axes that does not
            match the number of metrics.
        """
        if isinstance(metrics, str):
            metrics = [metrics]
        if metrics is None:
            chosen = [name for name in ("loss", "accuracy") if getattr(self, name)]
        else:
            chosen = list(metrics)
            bad = [m for m in chosen if m not in PLOTTABLE]
            if bad:
                raise ValueError(f"metrics must be among {list(PLOTTABLE)}, got {bad}")
            missing = [m for m in chosen if not getattr(self, m)]
            if missing:
                raise ValueError(f"no values recorded for {missing}; recorded: {self._recorded()}")
        if not self.epochs or not chosen:
            raise ValueError("nothing to plot: the History has no epochs")
        plt = _import_pyplot()  # only now: validation errors do not need matplotlib

        if ax is None:
            figure, created = plt.subplots(1, len(chosen), figsize=(4.5 * len(chosen), 3.5), squeeze=False)
            axes = list(created[0])
        else:
            if hasattr(ax, "flat"):  # a NumPy array of Axes, as plt.subplots returns
                axes = list(ax.flat)
            elif isinstance(ax, Sequence):
                axes = list(ax)
            else:
                axes = [ax]
            if len(axes) != len(chosen):
                raise ValueError(f"ax must hold one Axes per metric: {len(chosen)} for {chosen}, got {len(axes)}")
            figure = axes[0].figure

        epochs = range(1, self.epochs + 1)
        best = self.best_epoch
        for axes_k, name in zip(axes, chosen):
            axes_k.plot(epochs, getattr(self, name), marker=".", label=name)
            val = getattr(self, f"val_{name}", None)
            if val:
                axes_k.plot(epochs, val, marker=".", linestyle="--", label=f"val_{name}")
            if name == "loss" and best is not None:
                axes_k.axvline(best, color="0.6", linestyle=":", linewidth=1, label=f"best epoch {best}")
            axes_k.set_xlabel("epoch")
            axes_k.set_ylabel(name)
            axes_k.legend()
        return figure

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.4g}" if self.loss else ""
        return f"<History: {self.epochs} epoch(s){last}>"
