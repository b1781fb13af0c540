"""Trainer.fit's training controls: the validation split, early stopping and best-weight
restoring, callbacks, the progress display and sample weights."""

import io
import threading
import tracemalloc

import numpy as np
import pytest

import fastmlp
from tests.helpers import snapshot as weights_of


def data(n=120, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return X, y % classes


def net(seed=0, **kw):
    return fastmlp.Network([6, 16, 3], dtype="float64", seed=seed, **kw)


def test_validation_fraction_holds_out_a_seeded_split():
    X, y = data()
    n_val = int(np.ceil(0.25 * len(X)))
    val_rows = np.sort(np.random.default_rng(7).permutation(len(X))[:n_val])
    train_rows = np.setdiff1d(np.arange(len(X)), val_rows)
    a = net()
    history = fastmlp.Trainer(a, lr=0.1, batch_size=len(X), seed=7, shuffle=False).fit(
        X, y, epochs=3, validation_fraction=0.25)
    assert history.val_loss[-1] == a.loss(X[val_rows], y[val_rows])
    # the held-out rows are never trained on: the same fit on the training rows alone is bitwise the same
    b = net()
    fastmlp.Trainer(b, lr=0.1, batch_size=len(X), shuffle=False).fit(X[train_rows], y[train_rows], epochs=3)
    assert weights_of(a) == weights_of(b)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(validation_fraction=0.0), ValueError, r"validation_fraction must be finite and > 0"),
    (dict(validation_fraction=1.0), ValueError, r"validation_fraction must lie in \(0, 1\)"),
    (dict(validation_fraction=0.999), ValueError, r"leaves none to train on"),
    (dict(validation_fraction=0.1, validation_data=(np.zeros((2, 6)), [0, 1])), ValueError, r"not both"),
    (dict(early_stopping=0), ValueError, r"early_stopping must be >= 1"),
    (dict(early_stopping=2.5), TypeError, r"early_stopping must be an integer"),
    (dict(tol=-1.0), ValueError, r"tol must be finite and >= 0"),
    (dict(restore_best_weights="yes"), TypeError, r"restore_best_weights must be True or False"),
    (dict(callbacks=[1]), TypeError, r"callbacks must be callables"),
    (dict(verbose=3), ValueError, r"verbose"),
    (dict(sample_weight=np.ones(5)), ValueError, r"sample_weight must have shape \(120,\)"),
    (dict(sample_weight=-np.ones(120)), ValueError, r"sample_weight must be >= 0"),
    (dict(sample_weight=np.zeros(120)), ValueError, r"sample_weight is 0 for every sample"),
    (dict(sample_weight=np.full(120, np.nan)), ValueError, r"sample_weight contains NaN"),
])
def test_bad_fit_controls_are_refused_before_training(kwargs, exc, pattern):
    X, y = data()
    a = net()
    before = weights_of(a)
    trainer = fastmlp.Trainer(a, lr=0.1)
    with pytest.raises(exc, match=pattern):
        trainer.fit(X, y, epochs=2, **kwargs)
    assert weights_of(a) == before and trainer.optimizer.steps == 0


def overfitting_problem():
    # Few noisy training rows, a wide network and a large step: the validation loss turns up early.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 6))
    y = rng.integers(0, 3, 30)
    Xv = rng.standard_normal((200, 6))
    yv = rng.integers(0, 3, 200)
    return X, y, Xv, yv


def test_early_stopping_stops_patience_epochs_after_the_best_and_restores_it():
    X, y, Xv, yv = overfitting_problem()
    a = fastmlp.Network([6, 64, 3], dtype="float64", seed=0)
    history = fastmlp.Trainer(a, lr=0.5, batch_size=10, seed=1).fit(
        X, y, epochs=200, validation_data=(Xv, yv), early_stopping=5, restore_best_weights=True)
    best = history.best_epoch
    assert history.stopped_early and history.epochs == best + 5 < 200
    assert min(history.val_loss) == history.val_loss[best - 1]
    # the restored weights are those after the best epoch: a twin trained exactly that long
    b = fastmlp.Network([6, 64, 3], dtype="float64", seed=0)
    fastmlp.Trainer(b, lr=0.5, batch_size=10, seed=1).fit(X, y, epochs=best)
    assert weights_of(a) == weights_of(b)
    assert a.loss(Xv, yv) == history.val_loss[best - 1]


def test_without_restoring_the_last_weights_stay():
    X, y, Xv, yv = overfitting_problem()
    a = fastmlp.Network([6, 64, 3], dtype="float64", seed=0)
    history = fastmlp.Trainer(a, lr=0.5, batch_size=10, seed=1).fit(
        X, y, epochs=200, validation_data=(Xv, yv), early_stopping=5)
    assert history.stopped_early
    assert a.loss(Xv, yv) == history.val_loss[-1] != history.val_loss[history.best_epoch - 1]


def test_early_stopping_watches_the_training_loss_without_validation_and_tol_counts():
    X, y = data()
    a = net()
    # every epoch improves the training loss a little, but never by 1.0: stops after `patience`
    history = fastmlp.Trainer(a, lr=0.01, batch_size=40, seed=0).fit(X, y, epochs=50, early_stopping=3, tol=1.0)
    assert history.stopped_early and history.epochs == 4  # epoch 1 sets the best, 2-4 fail to beat it by tol
    full = fastmlp.Trainer(net(), lr=0.01, batch_size=40, seed=0).fit(X, y, epochs=6, early_stopping=3)
    assert not full.stopped_early and full.epochs == 6


def test_callbacks_see_every_epoch_and_false_stops():
    X, y = data()
    seen = []

    def record(epoch, logs):
        seen.append((epoch, dict(logs)))

    def stop_at_3(epoch, logs):
        return False if epoch == 3 else None

    history = fastmlp.Trainer(net(), lr=0.1, seed=0).fit(X, y, epochs=10, validation_fraction=0.2,
                                                          callbacks=[record, stop_at_3])
    assert history.epochs == 3 and history.stopped_early
    assert [e for e, _ in seen] == [1, 2, 3]
    assert set(seen[0][1]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"}
    assert seen[2][1]["val_loss"] == history.val_loss[2] and seen[1][1]["loss"] == history.loss[1]


def test_a_callback_runs_without_the_network_lock():
    X, y = data()
    a = net()
    results = []

    def predict_from_another_thread(epoch, logs):
        t = threading.Thread(target=lambda: results.append(a.predict(X[:3])))
        t.start()
        t.join(timeout=10)
        assert not t.is_alive(), "the network lock was held during the callback"

    fastmlp.Trainer(a, lr=0.1).fit(X, y, epochs=2, callbacks=[predict_from_another_thread])
    assert len(results) == 2


def test_a_callback_exception_propagates_and_keeps_the_completed_epochs():
    X, y = data()
    trainer = fastmlp.Trainer(net(), lr=0.1)

    def fail(epoch, logs):
        if epoch == 2:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        trainer.fit(X, y, epochs=5, callbacks=[fail])
    assert trainer.history.epochs == 2


@pytest.mark.parametrize("verbose", [1, 2, True])
def test_progress_lines_go_to_stderr(verbose, capsys):
    X, y = data()
    fastmlp.Trainer(net(), lr=0.1).fit(X, y, epochs=3, verbose=verbose, validation_fraction=0.2)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 3 and "\r" not in err  # captured stderr is not a terminal: lines, not a bar
    assert lines[0].startswith("epoch 1/3") and "val_loss" in lines[0] and "lr 0.1" in lines[0]


def test_verbose_zero_prints_nothing(capsys):
    X, y = data()
    fastmlp.Trainer(net(), lr=0.1).fit(X, y, epochs=2)
    assert capsys.readouterr().err == ""


def test_integer_sample_weights_equal_repeated_rows():
    X, y = data(n=30)
    w = np.random.default_rng(0).integers(0, 4, len(X))
    w[0] = 1
    a, b = net(), net()
    # one batch per epoch, in order: the weighted mean over the rows equals the plain mean over repeats
    fastmlp.Trainer(a, lr=0.2, batch_size=len(X), shuffle=False).fit(X, y, epochs=3, sample_weight=w)
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w)
    fastmlp.Trainer(b, lr=0.2, batch_size=len(Xr), shuffle=False).fit(Xr, yr, epochs=3)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_weighted_gradients_by_finite_differences(output):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 6))
    y = {"softmax": rng.integers(0, 3, 9), "sigmoid": (rng.random((9, 3)) < 0.5) * 1.0,
         "identity": rng.standard_normal((9, 3))}[output]
    w = rng.random(9) * 3
    a = net(output=output)
    loss, grads = a.gradients(X, y, sample_weight=w)
    per_row = np.array([a.loss(X[i:i + 1], y[i:i + 1]) for i in range(9)])
    assert loss == pytest.approx(np.sum(w * per_row) / np.sum(w), rel=1e-12)
    eps = 1e-6
    W = a.weights[0].reshape(-1)
    for i in range(0, W.size, 11):
        keep = W[i]
        W[i] = keep + eps
        up = a.loss(X, y, sample_weight=w)
        W[i] = keep - eps
        down = a.loss(X, y, sample_weight=w)
        W[i] = keep
        assert (up - down) / (2 * eps) == pytest.approx(grads[0][0].reshape(-1)[i], rel=1e-6, abs=1e-9)


def test_sample_weights_follow_the_shuffled_rows():
    # Zero weights make rows inert; shuffled batches must carry each row's own weight.
    X, y = data(n=64)
    w = np.ones(64)
    w[::2] = 0.0
    a, b = net(), net()
    fastmlp.Trainer(a, lr=0.1, batch_size=64, seed=5).fit(X, y, epochs=2, sample_weight=w)
    fastmlp.Trainer(b, lr=0.1, batch_size=32, shuffle=False).fit(X[1::2], y[1::2], epochs=2)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


def test_step_takes_sample_weights():
    X, y = data(n=10)
    a, b = net(), net()
    w = np.r_[np.ones(5), np.zeros(5)]
    fastmlp.Trainer(a, lr=0.1).step(X, y, sample_weight=w)
    fastmlp.Trainer(b, lr=0.1).step(X[:5], y[:5])
    for p, q in zip(a.weights, b.weights):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


def test_history_records_lr_and_the_second_fit_continues():
    X, y = data()
    trainer = fastmlp.Trainer(net(), lr=0.1, seed=0)
    h1 = trainer.fit(X, y, epochs=2)
    h2 = trainer.fit(X, y, epochs=3)
    assert h1.lr == [0.1, 0.1] and h2.epochs == 3 and trainer.history is h2
    assert trainer.optimizer.steps == 5 * int(np.ceil(len(X) / 32))
    out = io.StringIO()
    print(h2, file=out)
    assert "3 epoch" in out.getvalue()


def seeded_validation_rows(n, fraction, seed):
    return np.sort(np.random.default_rng(seed).permutation(n)[:int(np.ceil(fraction * n))])


def test_validation_fraction_holds_out_the_same_rows_in_every_fit():
    # Rows validated on in one call must not be trained on in the next: two fits of 3 epochs
    # equal one of 6 on the same split (full batches, no shuffling: the order cannot differ).
    X, y = data()
    val_rows = seeded_validation_rows(len(X), 0.25, 7)
    a, b = net(), net()
    twice = fastmlp.Trainer(a, lr=0.1, batch_size=len(X), seed=7, shuffle=False)
    twice.fit(X, y, epochs=3, validation_fraction=0.25)
    second = twice.fit(X, y, epochs=3, validation_fraction=0.25)
    assert second.val_loss[-1] == a.loss(X[val_rows], y[val_rows])
    fastmlp.Trainer(b, lr=0.1, batch_size=len(X), seed=7, shuffle=False).fit(
        X, y, epochs=6, validation_fraction=0.25)
    assert weights_of(a) == weights_of(b)


def test_validation_fraction_split_is_kept_by_checkpoints_without_a_seed(tmp_path):
    # Without a seed the split's key is drawn once when the trainer is built; a checkpoint keeps it.
    X, y = data()
    trainer = fastmlp.Trainer(net(), lr=0.1, batch_size=16)
    trainer.fit(X, y, epochs=1, validation_fraction=0.25)
    trainer.save_checkpoint(tmp_path / "c.npz")
    loaded = fastmlp.Trainer.load_checkpoint(tmp_path / "c.npz")
    h1 = trainer.fit(X, y, epochs=2, validation_fraction=0.25)
    h2 = loaded.fit(X, y, epochs=2, validation_fraction=0.25)
    assert h1.val_loss == h2.val_loss and weights_of(trainer.network) == weights_of(loaded.network)


def test_sample_weights_only_on_validation_rows_are_refused_before_training():
    X, y = data()
    val_rows = seeded_validation_rows(len(X), 0.5, 2)
    w = np.zeros(len(X))
    w[val_rows] = 1.0  # every positive weight is held out: nothing would be trained
    a = net()
    trainer = fastmlp.Trainer(a, lr=0.1, seed=2)
    before, rng_before = weights_of(a), trainer.training_state.rng.bit_generator.state
    with pytest.raises(ValueError, match=r"every sample with a positive sample_weight falls in the validation split"):
        trainer.fit(X, y, epochs=2, sample_weight=w, validation_fraction=0.5)
    assert weights_of(a) == before and trainer.optimizer.steps == 0
    assert trainer.training_state.rng.bit_generator.state == rng_before
    w[np.setdiff1d(np.arange(len(X)), val_rows)[0]] = 1.0  # one weighted training row is enough
    trainer.fit(X, y, epochs=1, sample_weight=w, validation_fraction=0.5)


def test_validation_fraction_does_not_copy_X():
    # The README's promise that fit never copies X holds with a validation split too: both parts
    # are read in place. NumPy reports its allocations to tracemalloc.
    # (Row lists of 8 bytes per row are allocated; X's rows are 512 bytes wide here.)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 64))
    y = rng.integers(0, 3, len(X))
    trainer = fastmlp.Trainer(fastmlp.Network([64, 16, 3], dtype="float64", seed=0), lr=0.05, batch_size=256, seed=0)
    trainer.fit(X[:100], y[:100])  # the workspace and the like exist before measuring
    tracemalloc.start()
    try:
        trainer.fit(X, y, epochs=1, validation_fraction=0.3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * X.nbytes, f"fit allocated {peak} bytes at peak for an X of {X.nbytes}"
