"""Callback details pinned by mutation testing (issue 21), part one: the monitor's modes and its
comparisons at equality, EarlyStopping and ModelCheckpoint (defaults from Keras, argument validation
at its exact boundaries, the files written, ``state_dict`` round trips, messages naming the callback
and the value). SnapshotEnsemble, the learning-rate callbacks and the loggers have their own files
(``test_callback_snapshots.py``, ``test_callback_lr.py``, ``test_callback_loggers.py``), which use
the stand-ins defined here.

The callbacks are driven by hand with a stand-in trainer (``FakeTrainer``): each hook is called
directly, so the tests pin the callback's own behaviour and run in milliseconds."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from nabla import nn
from nabla.train.callbacks import (
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
)


class FakeOptimizer:
    def __init__(self, *lrs):
        self.param_groups = [{"lr": lr} for lr in lrs]


class FakeTrainer:
    """What the callbacks read and write of a trainer."""

    def __init__(self, lr=0.1, *more, step=0, epoch=0, batches=4):
        self.model = nn.Linear(2, 1)
        self.optimizer = FakeOptimizer(lr, *more)
        self.step, self.epoch, self.stop_training = step, epoch, False
        self.train_loader = [None] * batches
        self.saved = []

    def save_checkpoint(self, path):
        self.saved.append(os.path.basename(path))
        open(path, "w").close()


def feed(callback, trainer, key, values):
    for epoch, value in enumerate(values):
        callback.on_epoch_end(trainer, epoch, {key: value})


# --- the monitor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("monitor", "mode"),
    [
        ("dev_accuracy", "max"),
        ("acc", "max"),
        ("dev_loss", "min"),
        ("loss", "min"),
        ("Accuracy", "min"),
    ],
)
def test_auto_mode_maximizes_accuracies_only(monitor, mode):
    tracker = EarlyStopping(monitor=monitor).tracker
    assert tracker.mode == mode
    assert tracker.best == (math.inf if mode == "min" else -math.inf)


def test_explicit_modes_and_bad_ones():
    assert EarlyStopping(monitor="acc", mode="min").tracker.mode == "min"
    assert EarlyStopping(monitor="loss", mode="max").tracker.best == -math.inf
    with pytest.raises(ValueError) as info:
        EarlyStopping(mode="lower")
    assert str(info.value) == "EarlyStopping: mode must be 'auto', 'min' or 'max', got 'lower'"
    with pytest.raises(ValueError, match=r"^ModelCheckpoint: mode must be .* got 'up'$"):
        ModelCheckpoint("d", best=True, mode="up")


def test_an_improvement_must_exceed_min_delta():
    low = EarlyStopping(monitor="loss", min_delta=0.5).tracker
    low.best = 2.0
    assert low.improved(1.4) and not low.improved(1.5) and not low.improved(2.0)
    high = EarlyStopping(monitor="acc", min_delta=-0.5).tracker  # the sign does not matter
    assert high.min_delta == 0.5
    high.best = 2.0
    assert high.improved(2.6) and not high.improved(2.5) and not high.improved(2.0)
    plain = EarlyStopping(monitor="loss").tracker
    plain.best = 1.0
    assert plain.improved(0.999) and not plain.improved(1.0)


def test_a_missing_monitor_names_the_callback_and_the_logs():
    stop = EarlyStopping(monitor="dev_acc")
    with pytest.raises(KeyError) as info:
        stop.on_epoch_end(FakeTrainer(), 0, {"loss": 1.0, "acc": 0.5})
    message = info.value.args[0]
    assert message.startswith("EarlyStopping: monitor 'dev_acc' is not among the epoch logs")
    assert "['acc', 'loss']" in message and "pass dev data to fit()" in message
    assert stop.tracker.value({"dev_acc": np.float32(0.25)}) == 0.25
    assert type(stop.tracker.value({"dev_acc": np.float32(0.25)})) is float
    for cb in (ReduceLROnPlateau(), ModelCheckpoint(".", best=True)):
        with pytest.raises(KeyError) as info:
            cb.on_epoch_end(FakeTrainer(), 0, {"loss": 1.0})
        assert info.value.args[0].startswith(f"{type(cb).__name__}: monitor 'dev_loss' is not")


# --- EarlyStopping --------------------------------------------------------------------------------


def test_early_stopping_defaults_are_keras():
    stop = EarlyStopping()
    assert stop.tracker.monitor == "dev_loss" and stop.patience == 5
    assert stop.tracker.min_delta == 0.0 and stop.restore_best is False
    assert stop.wait == 0 and stop.best_epoch is stop.stopped_epoch is stop.best_weights is None
    trainer = FakeTrainer()
    feed(stop, trainer, "dev_loss", [1.0, 1.0, 1.0, 1.0, 1.0])
    assert not trainer.stop_training and stop.wait == 4
    stop.on_epoch_end(trainer, 5, {"dev_loss": 1.0})
    assert trainer.stop_training and stop.stopped_epoch == 5 and stop.best_weights is None


def test_patience_zero_stops_at_the_first_epoch_without_improvement():
    for patience in (-1, 1.5):
        with pytest.raises(ValueError) as info:
            EarlyStopping(patience=patience)
        assert str(info.value) == f"EarlyStopping: patience must be an int >= 0, got {patience!r}"
    stop, trainer = EarlyStopping(monitor="loss", patience=0), FakeTrainer()
    assert stop.patience == 0 and EarlyStopping(patience=2.0).patience == 2
    stop.on_epoch_end(trainer, 0, {"loss": 1.0})
    assert not trainer.stop_training and stop.best_epoch == 0
    stop.on_epoch_end(trainer, 1, {"loss": 1.0})
    assert trainer.stop_training and stop.stopped_epoch == 1


def test_patience_counts_epochs_without_improvement_and_resets():
    stop, trainer = EarlyStopping(monitor="loss", patience=2), FakeTrainer()
    feed(stop, trainer, "loss", [3.0, 3.5, 2.0, 2.5])
    assert stop.wait == 1 and stop.best_epoch == 2 and stop.tracker.best == 2.0
    assert not trainer.stop_training and stop.stopped_epoch is None
    stop.on_epoch_end(trainer, 4, {"loss": 2.0})
    assert trainer.stop_training and stop.stopped_epoch == 4 and stop.wait == 2


def test_restore_best_puts_back_copies_of_the_best_weights():
    stop, trainer = EarlyStopping(monitor="loss", restore_best=True), FakeTrainer()
    best = trainer.model.weight.data.copy()
    stop.on_epoch_end(trainer, 0, {"loss": 1.0})
    trainer.model.weight.data[...] += 1.0  # in place: the kept weights must be a copy
    stop.on_epoch_end(trainer, 1, {"loss": 2.0})
    np.testing.assert_array_equal(stop.best_weights["weight"], best)
    stop.on_train_end(trainer)
    np.testing.assert_array_equal(trainer.model.weight.data, best)
    EarlyStopping(restore_best=True).on_train_end(trainer)  # nothing kept: nothing to do
    stop = EarlyStopping(monitor="loss")  # without restore_best the weights stay
    stop.best_weights = {"weight": np.zeros((1, 2), np.float32), "bias": np.zeros(1, np.float32)}
    trainer.model.weight.data[...] = 5.0
    stop.on_train_end(trainer)
    assert (trainer.model.weight.data == 5.0).all()


def test_early_stopping_state_round_trip():
    stop, trainer = EarlyStopping(monitor="loss", patience=3, restore_best=True), FakeTrainer()
    feed(stop, trainer, "loss", [2.0, 1.0, 1.5])
    state = stop.state_dict()
    assert set(state) == {"best", "wait", "best_epoch", "best_weights"}
    assert (state["best"], state["wait"], state["best_epoch"]) == (1.0, 1, 1)
    again = EarlyStopping(monitor="loss", patience=3, restore_best=True)
    again.load_state_dict({**state, "best": np.float64(1.0), "wait": np.int64(1)})
    assert type(again.tracker.best) is float and type(again.wait) is int
    assert (again.tracker.best, again.wait, again.best_epoch) == (1.0, 1, 1)
    assert again.best_weights is state["best_weights"] is stop.best_weights is not None
    assert set(EarlyStopping().state_dict()) == {"best", "wait", "best_epoch"}
    again.load_state_dict({"best": 3.0, "wait": 0, "best_epoch": None})
    assert again.best_weights is None


# --- ModelCheckpoint ------------------------------------------------------------------------------


def test_model_checkpoint_defaults_write_last_only(tmp_path):
    folder = tmp_path / "new" / "checkpoints"
    cb, trainer = ModelCheckpoint(folder), FakeTrainer()
    assert ModelCheckpoint(folder, best=True).tracker.mode == "min"  # auto, on dev_loss
    assert cb.tracker is None and cb.every is None and cb.directory == str(folder)
    for epoch in range(3):
        cb.on_epoch_end(trainer, epoch, {})
    assert trainer.saved == ["last.safetensors"] * 3 and cb.state_dict() == {}
    cb.load_state_dict({"best": 1.0, "best_epoch": 0})
    assert cb.best_epoch is None


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_model_checkpoint_refuses_a_bad_every(every):
    with pytest.raises(ValueError) as info:
        ModelCheckpoint("d", every=every)
    assert str(info.value) == f"ModelCheckpoint: every must be a positive int, got {every!r}"


def test_every_n_epochs_and_best_files(tmp_path):
    cb = ModelCheckpoint(tmp_path, last=False, best=True, every=3, monitor="loss")
    trainer = FakeTrainer()
    for epoch, loss in enumerate([3.0, 2.0, 2.0, 2.5, 1.0, 1.5, 1.5]):
        cb.on_epoch_end(trainer, epoch, {"loss": loss})
    assert trainer.saved == [
        "best.safetensors",
        "best.safetensors",
        "epoch-0003.safetensors",
        "best.safetensors",
        "epoch-0006.safetensors",
    ]
    assert cb.best_epoch == 4 and cb.tracker.best == 1.0
    assert ModelCheckpoint(tmp_path, every=1).every == 1


def test_model_checkpoint_state_round_trip(tmp_path):
    cb = ModelCheckpoint(tmp_path, best=True, monitor="acc")
    feed(cb, FakeTrainer(), "acc", [0.5, 0.7, 0.6])
    state = cb.state_dict()
    assert state == {"best": 0.7, "best_epoch": 1}
    again = ModelCheckpoint(tmp_path, best=True, monitor="acc")
    again.load_state_dict({"best": np.float32(0.5), "best_epoch": 1})
    assert type(again.tracker.best) is float and again.best_epoch == 1
    again.load_state_dict({})  # a checkpoint from a run without best: nothing to take
    assert again.tracker.best == 0.5
