"""Progress, the display fit uses: silence at verbose=0, one line per epoch at verbose=1 and
whenever the stream is not a terminal, a bar redrawn in place at verbose=2 on a terminal (tqdm's
when installed, a plain one otherwise), argument checks and the context manager."""

import io
import re
import sys

import numpy as np
import pytest

from fastmlp._progress import Progress, check_verbose

LOGS = {"loss": 0.1234, "accuracy": 0.95, "val_loss": 0.2, "val_accuracy": 0.9, "epoch_time": 0.0123}


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class WriteOnly:
    """A stream with no isatty at all (some loggers' file-likes)."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass


def run(progress, epochs, logs=LOGS):
    with progress:
        for epoch in range(1, epochs + 1):
            progress.epoch_start(epoch)
            progress.epoch_end(epoch, dict(logs, loss=logs["loss"] / epoch))


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)


# ------------------------------------------------------------------ verbose 0 and 1


@pytest.mark.parametrize("stream_type", [io.StringIO, FakeTerminal])
@pytest.mark.parametrize("verbose", [0, False])
def test_verbose_0_prints_nothing(stream_type, verbose):
    stream = stream_type()
    progress = Progress(5, verbose, stream=stream)
    progress.batch_done(10)
    run(progress, 5)
    assert stream.getvalue() == ""
    assert progress.mode == "off"


def test_verbose_1_prints_the_trainer_line_format():
    out = io.StringIO()
    with Progress(10, 1, stream=out) as progress:
        progress.epoch_end(3, LOGS)
        progress.epoch_end(10, dict(LOGS, lr=0.05, epoch_time=1.5))
    assert out.getvalue().splitlines() == [
        "epoch  3/10  loss 0.1234  accuracy 0.9500  val_loss 0.2000  val_accuracy 0.9000  12.3 ms",
        "epoch 10/10  loss 0.1234  accuracy 0.9500  val_loss 0.2000  val_accuracy 0.9000  lr 0.05  1.50 s",
    ]


def test_line_order_is_fixed_and_other_metrics_follow():
    out = io.StringIO()
    with Progress(2, True, stream=out) as progress:
        progress.epoch_end(1, {"val_loss": 0.5, "f1": 0.25, "loss": 0.75, "epoch_time": 0.002})
    assert out.getvalue() == "epoch 1/2  loss 0.7500  val_loss 0.5000  f1 0.2500  2.0 ms\n"


def test_epoch_time_is_measured_when_logs_lack_it():
    out = io.StringIO()
    with Progress(2, 1, stream=out) as progress:
        progress.epoch_start(1)
        progress.epoch_end(1, {"loss": 0.5})
    assert re.fullmatch(r"epoch 1/2  loss 0\.5000  \d+\.\d ms\n", out.getvalue())


def test_non_finite_loss_gets_a_hint():
    out = io.StringIO()
    with Progress(1, 1, stream=out) as progress:
        progress.epoch_end(1, {"loss": float("nan"), "epoch_time": 0.001})
    assert out.getvalue() == "epoch 1/1  loss nan  1.0 ms  (loss is not finite: lower lr?)\n"


@pytest.mark.parametrize("stream", [io.StringIO(), WriteOnly()])
def test_verbose_2_on_a_non_terminal_prints_lines_not_redraws(stream):
    progress = Progress(3, 2, stream=stream)
    assert progress.mode == "lines"
    run(progress, 3)
    text = stream.getvalue() if isinstance(stream, io.StringIO) else "".join(stream.parts)
    assert "\r" not in text
    assert [line.split("  ")[0] for line in text.splitlines()] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


# ------------------------------------------------------------------ verbose 2 on a terminal


def test_plain_bar_redraws_in_place_when_tqdm_is_missing(no_tqdm, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = FakeTerminal()
    progress = Progress(4, 2, stream=out)
    assert progress.mode == "bar"
    run(progress, 4)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended once
    frames = text.rstrip("\n").split("\r")[1:]
    assert len(frames) == 8  # one redraw at each epoch's start and end
    last = frames[-1].rstrip()
    assert last.startswith("epoch 4/4 |####################| 100%  loss 0.0308  accuracy 0.9500  val_loss 0.2000")
    assert "  0%" in frames[0]
    assert "eta" in frames[1] and "eta" not in last
    assert all(len(frame) >= len(previous.rstrip()) for previous, frame in zip(frames, frames[1:]))


def test_plain_bar_fits_the_terminal_width(no_tqdm, monkeypatch):
    # A line wider than the terminal wraps, and '\r' would then redraw only its last row.
    monkeypatch.setenv("COLUMNS", "50")
    out = FakeTerminal()
    run(Progress(4, 2, stream=out), 4)
    frames = out.getvalue().rstrip("\n").split("\r")[1:]
    assert max(len(frame) for frame in frames) == 49


def test_plain_bar_ends_its_line_when_training_raises(no_tqdm):
    out = FakeTerminal()
    # The interrupt must come from inside the display's body, so the block holds more than the raising call.
    with pytest.raises(KeyboardInterrupt), Progress(10, 2, stream=out) as progress:  # noqa: PT012
        progress.epoch_start(1)
        progress.epoch_end(1, LOGS)
        progress.epoch_start(2)
        raise KeyboardInterrupt
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_plain_bar_shows_rows_from_batch_done(no_tqdm, monkeypatch):
    monkeypatch.setattr("fastmlp._progress._REDRAW_INTERVAL", 0.0)
    out = FakeTerminal()
    with Progress(2, 2, stream=out) as progress:
        progress.epoch_start(1)
        progress.batch_done(32)
        progress.batch_done(32)
        assert out.getvalue().split("\r")[-1].startswith("epoch 1/2 |          ")
        assert "64 rows" in out.getvalue().split("\r")[-1]
        progress.epoch_end(1, LOGS)
    assert "rows" not in out.getvalue().rstrip().split("\r")[-1]


def test_tqdm_bar_when_tqdm_is_installed():
    pytest.importorskip("tqdm")
    out = FakeTerminal()
    progress = Progress(3, 2, stream=out)
    assert progress.mode == "tqdm"
    run(progress, 3)
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert "3/3" in last and "loss 0.0411" in last and "accuracy 0.9500" in last


def test_lines_mode_ignores_batch_done():
    out = io.StringIO()
    with Progress(1, 1, stream=out) as progress:
        progress.epoch_start(1)
        progress.batch_done(100)
        assert out.getvalue() == ""


# ------------------------------------------------------------------ arguments and lifetime


@pytest.mark.parametrize("verbose, expected", [(0, 0), (1, 1), (2, 2), (True, 1), (False, 0),
                                               (np.bool_(True), 1), (np.int64(2), 2)])
def test_check_verbose_accepts(verbose, expected):
    assert check_verbose(verbose) == expected


@pytest.mark.parametrize("verbose, error", [(3, ValueError), (-1, ValueError), (1.0, TypeError),
                                            ("yes", TypeError), (None, TypeError)])
def test_check_verbose_refuses(verbose, error):
    with pytest.raises(error, match="verbose must be 0, 1, 2 or a bool"):
        Progress(3, verbose, stream=io.StringIO())


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="total_epochs must be >= 1, got 0"):
        Progress(0, 1)
    with pytest.raises(TypeError, match="total_epochs must be an integer"):
        Progress(2.0, 1)
    progress = Progress(3, 1, stream=io.StringIO())
    with pytest.raises(ValueError, match=r"epoch \(1-based\) must be >= 1, got 0"):
        progress.epoch_start(0)
    with pytest.raises(ValueError, match="n_rows must be >= 0"):
        progress.batch_done(-1)
    with pytest.raises(TypeError, match="logs must be a dict"):
        progress.epoch_end(1, [("loss", 0.1)])


def test_default_stream_is_the_current_stderr(capsys):
    with Progress(1, 1) as progress:
        progress.epoch_end(1, {"loss": 0.5, "epoch_time": 0.001})
    assert capsys.readouterr().err == "epoch 1/1  loss 0.5000  1.0 ms\n"


def test_close_is_idempotent_and_final():
    progress = Progress(2, 1, stream=io.StringIO())
    progress.close()
    progress.close()
    with pytest.raises(RuntimeError, match="closed"):
        progress.epoch_end(1, LOGS)
    assert "closed" in repr(progress)
