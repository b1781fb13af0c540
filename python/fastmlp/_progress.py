"""Progress: what Trainer.fit prints while it trains. The native code runs a whole epoch per
call, so the display advances per epoch: one line per epoch (verbose=1, or any log file), or a
bar over the epochs redrawn in place on a terminal (verbose=2; tqdm's when installed). It only
formats and writes; the numbers come from the caller."""

from __future__ import annotations

import importlib
import math
import numbers
import shutil
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Optional, TextIO

from ._validation import check_int, is_bool

# Metrics in the order the line shows them; any other key of `logs` follows, in its own order.
_METRIC_ORDER = ("loss", "accuracy", "val_loss", "val_accuracy")
# Keys of `logs` shown in their own format at the end of the line, not as metrics.
_LR, _TIME = "lr", "epoch_time"

_BAR_WIDTH = 20
# A terminal redraw at most this often (seconds) from batch_done: redrawing per batch of a fast
# epoch would spend more time writing than training.
_REDRAW_INTERVAL = 0.1


def check_verbose(verbose: object) -> int:
    """0, 1 or 2 from a `verbose` argument (False/True count as 0/1)."""
    # numpy's bool_ is not an Integral, yet `verbose=flags.any()` should work as a bool does.
    if is_bool(verbose):
        return int(bool(verbose))
    if not isinstance(verbose, numbers.Integral):
        raise TypeError(f"verbose must be 0, 1, 2 or a bool, got {verbose!r} of type {type(verbose).__name__}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or a bool, got {verbose!r}")
    return int(verbose)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def format_seconds(seconds: float) -> str:
    """``12.3 ms`` below a second, ``1.23 s`` from there on (the Trainer's epoch lines)."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def format_metrics(logs: Mapping[str, float], seconds: Optional[float] = None) -> str:
    """``loss 0.1234  accuracy 0.9500  val_loss ...  lr 0.1  12.3 ms``: the metrics of `logs`
    (loss, accuracy, val_loss, val_accuracy first, then any other, 4 decimals), then ``lr``
    and the epoch time (``seconds``, or ``logs["epoch_time"]`` when not given)."""
    names = [n for n in _METRIC_ORDER if n in logs]
    names += [n for n in logs if n not in _METRIC_ORDER and n not in (_LR, _TIME)]
    parts = [f"{name} {float(logs[name]):.4f}" for name in names]
    if _LR in logs:
        parts.append(f"lr {float(logs[_LR]):.4g}")
    if seconds is None and _TIME in logs:
        seconds = float(logs[_TIME])
    if seconds is not None:
        parts.append(format_seconds(seconds))
    if "loss" in logs and not math.isfinite(float(logs["loss"])):
        parts.append("(loss is not finite: lower lr?)")
    return "  ".join(parts)


class Progress:
    """The progress display of :meth:`Trainer.fit`, one update per epoch.

    Parameters
    ----------
    total_epochs : int
        Number of epochs the run will have (>= 1): the denominator of ``epoch 3/10``.
    verbose : {0, 1, 2} or bool
        0 (or False): print nothing. 1 (or True): one line per epoch,
        ``epoch  3/10  loss 0.1234  accuracy 0.9500  val_loss ...  12.3 ms``.
        2: a progress bar over the epochs with the last metrics beside it, drawn by tqdm when
        it is installed (it is not a dependency) and by a plain one-line bar otherwise. When
        `stream` is not a terminal, 2 prints lines as 1 does, so that a log file gets one line
        per epoch rather than every redraw of the bar.
    stream : text stream, optional
        Where to write; default ``sys.stderr`` as it is when the Progress is made.

    Notes
    -----
    Call :meth:`epoch_start` and :meth:`epoch_end` around each epoch and :meth:`close` at the
    end, or use the Progress as a context manager, which closes it even when training raises
    (a bar then ends its line, so that the traceback starts on a line of its own).
    :meth:`batch_done` is for loops that see batches; the native epoch loop does not.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with Progress(10, verbose=1, stream=out) as progress:
    ...     progress.epoch_end(3, {"loss": 0.1234, "accuracy": 0.95, "epoch_time": 0.0123})
    >>> out.getvalue()
    'epoch  3/10  loss 0.1234  accuracy 0.9500  12.3 ms\\n'
    """

    def __init__(self, total_epochs: int, verbose: bool | int, stream: Optional[TextIO] = None) -> None:
        self.total_epochs = check_int(total_epochs, "total_epochs", 1)
        self.verbose = check_verbose(verbose)
        # Resolved now, not as a default argument: pytest and IDEs replace sys.stderr after import.
        self.stream: TextIO = sys.stderr if stream is None else stream
        self._width = len(str(self.total_epochs))
        self._epoch = 0  # the epoch in progress (or last finished)
        self._done = 0  # epochs finished
        self._rows = 0  # rows reported by batch_done in the epoch in progress
        self._epoch_t0: Optional[float] = None
        self._run_t0 = time.perf_counter()
        self._last_logs: dict[str, float] = {}
        self._last_draw = -math.inf
        self._drawn = 0  # length of the plain bar on screen, 0 when no unfinished line is there
        self._closed = False
        self._tqdm: Any = None
        if self.verbose == 0:
            self.mode = "off"
        elif self.verbose == 1 or not _is_terminal(self.stream):
            self.mode = "lines"
        else:
            self._tqdm = self._make_tqdm()
            self.mode = "bar" if self._tqdm is None else "tqdm"

    def _make_tqdm(self) -> Any:
        """A tqdm bar over the epochs, or None when tqdm cannot be imported."""
        try:
            # import_module, not an import statement: tqdm is optional and need not be typed.
            tqdm = importlib.import_module("tqdm").tqdm
        except Exception:  # missing, or a broken install: the plain bar does the job
            return None
        return tqdm(total=self.total_epochs, file=self.stream, unit="epoch", dynamic_ncols=True, leave=True)

    def __repr__(self) -> str:
        return (f"<Progress: epoch {self._epoch}/{self.total_epochs}, verbose={self.verbose}, mode={self.mode!r}"
                f"{', closed' if self._closed else ''}>")

    # ------------------------------------------------------------------ the calls of fit

    def epoch_start(self, epoch: int) -> None:
        """Epoch `epoch` (1-based) begins: starts its clock and shows it on a bar."""
        self._check_open()
        self._epoch = self._check_epoch(epoch)
        self._rows = 0
        self._epoch_t0 = time.perf_counter()
        if self.mode == "bar":
            self._draw_bar()
        elif self.mode == "tqdm":
            self._tqdm.set_description_str(f"epoch {self._epoch:>{self._width}}")

    def batch_done(self, n_rows: int) -> None:
        """`n_rows` more rows of the current epoch are trained (a bar shows the running count)."""
        self._check_open()
        self._rows += check_int(n_rows, "n_rows", 0)
        if self.mode in ("bar", "tqdm") and time.perf_counter() - self._last_draw >= _REDRAW_INTERVAL:
            if self.mode == "bar":
                self._draw_bar()
            else:
                self._tqdm.set_description_str(f"epoch {self._epoch:>{self._width}} ({self._rows} rows)")

    def epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Epoch `epoch` is finished with the metrics `logs`.

        Parameters
        ----------
        epoch : int
            1-based.
        logs : mapping of str to float
            ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and any other metric are
            shown with 4 decimals; ``lr`` is shown when present; ``epoch_time`` (seconds) is
            the time shown, else the time since :meth:`epoch_start`.
        """
        self._check_open()
        epoch = self._check_epoch(epoch)
        if not isinstance(logs, Mapping):
            raise TypeError(f"logs must be a dict of metric -> float, got {type(logs).__name__}")
        seconds: Optional[float] = None
        if _TIME not in logs and self._epoch_t0 is not None and self._epoch == epoch:
            seconds = time.perf_counter() - self._epoch_t0
        self._epoch, self._done = epoch, max(self._done, epoch)
        self._epoch_t0 = None
        self._last_logs = {k: float(v) for k, v in logs.items()}
        if self.mode == "lines":
            line = f"epoch {epoch:>{self._width}}/{self.total_epochs}"
            metrics = format_metrics(self._last_logs, seconds)
            print(f"{line}  {metrics}" if metrics else line, file=self.stream, flush=True)
        elif self.mode == "bar":
            self._draw_bar(seconds)
            if self._done >= self.total_epochs:
                self._end_line()
        elif self.mode == "tqdm":
            self._tqdm.set_postfix_str(format_metrics(self._last_logs, seconds), refresh=False)
            self._tqdm.update(max(0, epoch - self._tqdm.n))  # lands on `epoch` even after a skip

    def close(self) -> None:
        """End the display (a bar finishes its line). Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._end_line()
        elif self.mode == "tqdm":
            self._tqdm.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Progress is closed; make a new one for another run")

    def _check_epoch(self, epoch: object) -> int:
        return check_int(epoch, "epoch (1-based)", 1)

    def _draw_bar(self, seconds: Optional[float] = None) -> None:
        """Redraw the plain bar in place: ``epoch  3/10 |######      |  30%  eta 1.2 s  loss ...``."""
        filled = round(_BAR_WIDTH * self._done / self.total_epochs)
        bar = "#" * filled + " " * (_BAR_WIDTH - filled)
        percent = 100 * self._done // self.total_epochs
        parts = [f"epoch {self._epoch:>{self._width}}/{self.total_epochs} |{bar}| {percent:3d}%"]
        if self._epoch_t0 is not None and self._rows:
            parts.append(f"{self._rows} rows")
        # The ETA before the metrics: a narrow terminal cuts the end of the line.
        if 0 < self._done < self.total_epochs:
            per_epoch = (time.perf_counter() - self._run_t0) / self._done
            parts.append(f"eta {format_seconds(per_epoch * (self.total_epochs - self._done))}")
        metrics = format_metrics(self._last_logs, seconds)
        if metrics:
            parts.append(metrics)
        text = "  ".join(parts)
        # A line longer than the terminal wraps, and '\r' then redraws only its last row.
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        text = text[:max(20, columns - 1)]
        self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
        self.stream.flush()
        self._drawn = max(1, len(text))
        self._last_draw = time.perf_counter()

    def _end_line(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0
