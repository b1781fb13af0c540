"""Trainer checkpoints: a resumed run equals an uninterrupted one bit for bit (also through a new
process), every optimizer and schedule survives, and a damaged or foreign file is refused with
ModelFileError before anything is built. Also pickling of Trainers."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmlp
from fastmlp import optim, schedules


def data(n=90):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 8))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1).astype(int)
    return X.astype(np.float32), y


def make_trainer(optimizer=None, schedule=None, seed=3, dropout=0.2):
    net = fastmlp.Network([8, 32, 16, 3], activation=["gelu", "relu"], seed=1, dropout=dropout)
    return fastmlp.Trainer(net, batch_size=16, seed=seed, optimizer=optimizer or optim.Adam(1e-2),
                           schedule=schedule)


def params(trainer):
    return [a.tobytes() for a in trainer.network.weights + trainer.network.biases]


OPTIMIZERS = [lambda: optim.SGD(0.1), lambda: optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
              lambda: optim.Adam(1e-2, weight_decay=1e-4), lambda: optim.AdamW(1e-2),
              lambda: optim.RMSprop(1e-3, momentum=0.5)]
SCHEDULES = [lambda: None, lambda: schedules.StepLR(2, 0.5), lambda: schedules.CosineAnnealingLR(5),
             lambda: schedules.ReduceLROnPlateau(patience=1, factor=0.5)]


@pytest.mark.parametrize("make_schedule", SCHEDULES)
@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_save_load_continue_equals_one_run(make_optimizer, make_schedule, tmp_path):
    X, y = data()
    whole = make_trainer(make_optimizer(), make_schedule())
    whole.fit(X, y, epochs=6)
    first = make_trainer(make_optimizer(), make_schedule())
    first.fit(X, y, epochs=3)
    first.save_checkpoint(tmp_path / "ckpt")
    resumed = fastmlp.Trainer.load_checkpoint(tmp_path / "ckpt")
    history = resumed.fit(X, y, epochs=3)
    assert params(resumed) == params(whole)
    assert resumed.optimizer.steps == whole.optimizer.steps
    assert history.lr == whole.history.lr[3:]


def test_resume_in_a_new_process_is_bitwise(tmp_path):
    X, y = data()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    whole = make_trainer(schedule=schedules.StepLR(1, 0.7))
    whole.fit(X, y, epochs=10)
    first = make_trainer(schedule=schedules.StepLR(1, 0.7))
    first.fit(X, y, epochs=5)
    first.save_checkpoint(tmp_path / "ckpt.npz")
    script = textwrap.dedent(f"""
        import numpy as np, fastmlp
        X, y = np.load({str(tmp_path / 'X.npy')!r}), np.load({str(tmp_path / 'y.npy')!r})
        t = fastmlp.Trainer.load_checkpoint({str(tmp_path / 'ckpt.npz')!r})
        t.fit(X, y, epochs=5)
        t.network.save({str(tmp_path / 'out.npz')!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    out = fastmlp.Network.load(tmp_path / "out.npz")
    assert [a.tobytes() for a in out.weights + out.biases] == params(whole)


def test_checkpoint_keeps_settings_and_counters(tmp_path):
    X, y = data()
    t = make_trainer(optim.RMSprop(1e-3, alpha=0.9, momentum=0.3, weight_decay=1e-2), seed=None)
    t.shuffle = False
    t.step(X[:10], y[:10])
    t.fit(X, y, epochs=1)
    t.save_checkpoint(tmp_path / "c.npz")
    r = fastmlp.Trainer.load_checkpoint(tmp_path / "c.npz")
    assert (r.batch_size, r.shuffle, r.seed) == (16, False, None)
    assert (r.training_state.dropout_seed == t.training_state.dropout_seed and r.training_state.epochs_done == 1
            and r.training_state.single_steps == 1)
    o = r.optimizer
    assert isinstance(o, optim.RMSprop) and (o.lr, o.alpha, o.momentum, o.weight_decay) == (1e-3, 0.9, 0.3, 1e-2)
    assert o.steps == t.optimizer.steps
    for p, q in zip(o.state, t.optimizer.state):
        assert [a.tobytes() for a in p] == [a.tobytes() for a in q]
    assert r.network.dropout == t.network.dropout and r.network.activations == ["gelu", "relu"]


def test_a_checkpoint_before_any_training_loads(tmp_path):
    t = make_trainer(schedule=schedules.ExponentialLR(0.9))
    t.save_checkpoint(tmp_path / "c.npz")
    r = fastmlp.Trainer.load_checkpoint(tmp_path / "c.npz")
    assert r.optimizer.state is None and not r.schedule.started
    X, y = data()
    r.fit(X, y, epochs=2)
    t.fit(X, y, epochs=2)
    assert params(r) == params(t)


def damaged(tmp_path, change):
    t = make_trainer(schedule=schedules.StepLR(2))
    X, y = data()
    t.fit(X, y, epochs=1)
    t.save_checkpoint(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as f:
        entries = dict(f)
    change(entries)
    np.savez(tmp_path / "bad.npz", **entries)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("change,pattern", [
    (lambda e: e.update({"format": np.array("fastmlp.Network")}), r"not a fastmlp checkpoint"),
    (lambda e: e.update({"format_version": np.array(9)}), r"format version"),
    (lambda e: e.pop("opt.steps"), r"'opt.steps' is missing"),
    (lambda e: e.update({"opt.kind": np.array("lbfgs")}), r"unknown optimizer kind 'lbfgs'"),
    (lambda e: e.update({"opt.config.lr": np.array(-1.0)}), r"invalid optimizer settings"),
    (lambda e: e.update({"opt.state.0.0": np.zeros((2, 2), np.float32)}), r"opt.state.0.0 has float32 shape \(2, 2\)"),
    (lambda e: e.update({"opt.state.1.1": np.full(32, np.nan, np.float32)}), r"opt.state.1.1 contains NaN"),
    (lambda e: e.update({"rng.state": np.array("twelve")}), r"'rng.state' must be an integer"),
    (lambda e: e.update({"trainer.batch_size": np.array("0")}), r"'trainer.batch_size' = 0 is outside"),
    (lambda e: e.update({"schedule.schedule": np.array("OneCycleLR")}), r"unknown schedule 'OneCycleLR'"),
    (lambda e: e.update({"schedule.gamma": np.array(-2.0)}), r"invalid schedule state"),
    (lambda e: e.update({"net.W0": np.zeros((3, 3), np.float32)}), r"W0 has float32 shape \(3, 3\)"),
])
def test_damaged_checkpoints_are_refused(tmp_path, change, pattern):
    with pytest.raises(fastmlp.ModelFileError, match=pattern):
        fastmlp.Trainer.load_checkpoint(damaged(tmp_path, change))


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    make_trainer().network.save(tmp_path / "m.npz")
    with pytest.raises(fastmlp.ModelFileError, match=r"it is a model file: use fastmlp\.Network\.load"):
        fastmlp.Trainer.load_checkpoint(tmp_path / "m.npz")


def test_missing_checkpoint_is_an_oserror(tmp_path):
    with pytest.raises(OSError, match=r"nope\.npz"):
        fastmlp.Trainer.load_checkpoint(tmp_path / "nope.npz")


def test_trainer_pickles_and_continues_identically():
    X, y = data()
    t = make_trainer(schedule=schedules.StepLR(1, 0.9))
    t.fit(X, y, epochs=2)
    copy = pickle.loads(pickle.dumps(t))
    t.fit(X, y, epochs=2)
    copy.fit(X, y, epochs=2)
    assert params(copy) == params(t)
    assert copy.network is not t.network


def test_a_save_that_fails_midway_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    X, y = data()
    t = make_trainer(optim.Adam(1e-2))
    t.fit(X, y, epochs=1)
    path = tmp_path / "run.npz"
    t.save_checkpoint(path)
    good = path.read_bytes()
    t.fit(X, y, epochs=1)

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")  # some bytes reach the file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        t.save_checkpoint(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]  # no temporary file left behind
    assert fastmlp.Trainer.load_checkpoint(path).training_state.epochs_done == 1


@pytest.mark.parametrize("make_optimizer", [lambda: optim.Adam(lr=1e-3), lambda: optim.RMSprop(momentum=0.9)])
def test_a_very_deep_checkpoint_that_saves_also_loads(tmp_path, make_optimizer):
    # 1,500 layers with two state buffers per array: over 6,000 members, more than the reader's
    # fixed bound (8,192 is reached at ~1,360 such layers); the bound follows the declared layers.
    net = fastmlp.Network([2] * 1501, seed=0)
    trainer = fastmlp.Trainer(net, optimizer=make_optimizer(), batch_size=4, seed=0)
    X = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    trainer.step(X, np.array([0, 1, 0, 1]))
    trainer.save_checkpoint(tmp_path / "deep.npz")
    loaded = fastmlp.Trainer.load_checkpoint(tmp_path / "deep.npz")
    assert len(loaded.network.weights) == 1500
    assert params(loaded) == params(trainer)
