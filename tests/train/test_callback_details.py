"""Callback details pinned by mutation testing (issue 21): the defaults (Keras'), argument
validation at its exact boundaries, the monitor's comparisons at equality, each callback's
``state_dict`` keys through a round trip, the files and lines the checkpoint, snapshot and log
callbacks write (also on resume), and the error messages that name the callback and the value.

The callbacks are driven by hand with a stand-in trainer (``FakeTrainer``): each hook is called
directly, so the tests pin the callback's own behaviour and run in milliseconds."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from nabla import nn
from nabla.optim import schedules
from nabla.train import callbacks
from nabla.train.callbacks import (
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    SnapshotEnsemble,
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
    ("monitor", "mode"), [("dev_accuracy", "max"), ("acc", "max"), ("dev_loss", "min"),
                          ("loss", "min"), ("Accuracy", "min")],
)  # fmt: skip
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


# --- EarlyStopping ---------------------------------------------------------------------------------


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


# --- ModelCheckpoint ----------------------------------------------------------------------------------


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
    assert trainer.saved == ["best.safetensors", "best.safetensors", "epoch-0003.safetensors",
                             "best.safetensors", "epoch-0006.safetensors"]  # fmt: skip
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


# --- SnapshotEnsemble -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cycle_steps", "cycle_epochs"])
@pytest.mark.parametrize("value", [0, -2, 1.5])
def test_snapshot_cycle_lengths_must_be_positive_ints(name, value):
    with pytest.raises(ValueError) as info:
        SnapshotEnsemble(**{name: value})
    assert str(info.value) == f"SnapshotEnsemble: {name} must be a positive int, got {value!r}"
    assert getattr(SnapshotEnsemble(**{name: 1}), name) == 1


def run_steps(cb, trainer, steps, batches=4):
    cb.on_train_begin(trainer)
    for step in range(trainer.step + 1, steps + 1):
        cb.on_batch_end(trainer, step, {"epoch": np.int64((step - 1) // batches)})


def test_snapshots_every_cycle_epochs_in_memory():
    cb, trainer = SnapshotEnsemble(cycle_epochs=2), FakeTrainer(batches=3)
    run_steps(cb, trainer, 13, batches=3)
    assert cb.snapshots == [
        {"cycle": 1, "step": 6, "epoch": 1, "file": None},
        {"cycle": 2, "step": 12, "epoch": 3, "file": None},
    ]
    assert type(cb.snapshots[0]["epoch"]) is int and len(cb.weights) == 2
    assert [set(w) for w in cb.weights] == [{"weight", "bias"}] * 2
    members = cb.members()
    assert [info for info, _ in members] == cb.snapshots and members[0][0] is not cb.snapshots[0]


def test_snapshots_every_cycle_steps_from_a_resumed_step():
    cb, trainer = SnapshotEnsemble(cycle_steps=5), FakeTrainer(step=10)
    run_steps(cb, trainer, 20)
    assert [(s["cycle"], s["step"]) for s in cb.snapshots] == [(3, 15), (4, 20)]
    with pytest.raises(ValueError, match="give cycle_steps or cycle_epochs, not both"):
        SnapshotEnsemble(cycle_steps=2, cycle_epochs=1)


def test_snapshots_follow_the_schedule_and_keep_copies():
    trainer = FakeTrainer(schedules.CosineDecayRestarts(0.1, 3, t_mul=2.0), step=0)
    cb = SnapshotEnsemble()
    cb.on_train_begin(trainer)
    trainer.model.weight.data[...] = 0.0
    for step in range(1, 10):
        cb.on_batch_end(trainer, step, {"epoch": 0})
        trainer.model.weight.data[...] += 1.0
    assert [(s["cycle"], s["step"]) for s in cb.snapshots] == [(1, 3), (2, 9)]
    assert [w["weight"][0, 0] for w in cb.weights] == [2.0, 8.0]


def test_snapshot_files_and_state_round_trip(tmp_path):
    cb, trainer = SnapshotEnsemble(tmp_path / "snaps", cycle_steps=2), FakeTrainer()
    run_steps(cb, trainer, 4)
    assert [s["file"] for s in cb.snapshots] == ["snapshot-1.safetensors", "snapshot-2.safetensors"]
    assert cb.weights == [] and cb.directory == str(tmp_path / "snaps")
    info, weights = cb.members()[1]
    assert (info["cycle"], info["step"], info["epoch"]) == (2, 4, 0)
    assert set(weights) == {"weight", "bias"}
    state = cb.state_dict()
    assert state == {"snapshots": cb.snapshots} and state["snapshots"][0] is not cb.snapshots[0]
    again = SnapshotEnsemble(tmp_path / "snaps", cycle_steps=2)
    again.load_state_dict(state)
    assert again.snapshots == cb.snapshots and again.weights == []
    for name in ("snapshot-1.safetensors", "snapshot-2.safetensors"):
        os.remove(tmp_path / "snaps" / name)
    with pytest.raises(FileNotFoundError) as info:
        SnapshotEnsemble(tmp_path / "snaps").load_state_dict(state)
    assert str(info.value) == (
        f"SnapshotEnsemble: the checkpoint lists snapshots that are not in {tmp_path / 'snaps'}: "
        "snapshot-1.safetensors, snapshot-2.safetensors"
    )


def test_snapshot_files_without_a_directory_are_looked_up_where_they_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snapshot-1.safetensors").write_bytes(b"")
    cb = SnapshotEnsemble()
    cb.load_state_dict(
        {"snapshots": [{"cycle": 1, "step": 2, "epoch": 0, "file": "snapshot-1.safetensors"}]}
    )
    assert cb.snapshots[0]["file"] == "snapshot-1.safetensors"


def test_in_memory_snapshot_state_round_trip():
    cb = SnapshotEnsemble(cycle_steps=1)
    run_steps(cb, FakeTrainer(), 2)
    state = cb.state_dict()
    assert set(state) == {"snapshots", "weights"} and len(state["weights"]) == 2
    again = SnapshotEnsemble(cycle_steps=1)
    again.load_state_dict(state)
    assert again.snapshots == cb.snapshots and len(again.weights) == 2


# --- the learning-rate callbacks ----------------------------------------------------------------------------


def test_reduce_lr_defaults_are_keras():
    cb = ReduceLROnPlateau()
    assert ReduceLROnPlateau(monitor="acc").tracker.mode == "max"  # auto
    assert (cb.factor, cb.patience, cb.cooldown, cb.min_lr) == (0.1, 10, 0, 0.0)
    assert cb.tracker.min_delta == 1e-4 and cb.tracker.monitor == "dev_loss"
    assert (cb.wait, cb.cooldown_left) == (0, 0)


@pytest.mark.parametrize("factor", [0.0, 1.0, -0.5, 2.0])
def test_reduce_lr_factor_must_be_between_0_and_1(factor):
    with pytest.raises(ValueError) as info:
        ReduceLROnPlateau(factor=factor)
    assert str(info.value) == f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}"
    assert ReduceLROnPlateau(factor=0.5).factor == 0.5


def lr_trace(cb, trainer, losses):
    trace = []
    for epoch, loss in enumerate(losses):
        cb.on_epoch_end(trainer, epoch, {"loss": loss})
        trace.append((trainer.optimizer.param_groups[0]["lr"], cb.wait, cb.cooldown_left))
    return trace


def test_reduce_lr_patience_and_floor_follow_keras():
    # Keras: the epoch that reduces starts the cooldown, which counts down at each epoch's start
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.03)
    trainer = FakeTrainer(0.1, 0.2)
    cb.on_train_begin(trainer)
    assert lr_trace(cb, trainer, [1.0] * 7) == [
        (0.1, 0, 0), (0.1, 1, 0), (0.05, 0, 1), (0.05, 1, 0), (0.03, 0, 1), (0.03, 1, 0),
        (0.03, 0, 1),
    ]  # fmt: skip
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.03, 0.03]
    assert type(trainer.optimizer.param_groups[1]["lr"]) is float


def test_reduce_lr_waits_out_a_longer_cooldown():
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2, min_delta=0.0)
    trainer = FakeTrainer(0.8)
    assert lr_trace(cb, trainer, [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]) == [
        (0.8, 0, 0), (0.4, 0, 2), (0.4, 0, 1), (0.2, 0, 2), (0.2, 0, 1), (0.1, 0, 2),
        (0.1, 0, 1),
    ]  # fmt: skip
    assert cb.tracker.best == 0.5


def test_reduce_lr_counts_only_improvements_beyond_min_delta():
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_delta=0.1)
    trainer = FakeTrainer(1.0)
    assert lr_trace(cb, trainer, [1.0, 0.9, 0.89, 0.8, 0.75]) == [
        (1.0, 0, 0), (1.0, 1, 0), (1.0, 0, 0), (1.0, 1, 0), (1.0, 0, 0),
    ]  # fmt: skip


def test_reduce_lr_state_round_trip():
    cb = ReduceLROnPlateau(monitor="loss", patience=3, cooldown=2)
    feed(cb, FakeTrainer(), "loss", [1.0, 2.0])
    state = cb.state_dict()
    assert state == {"best": 1.0, "wait": 1, "cooldown_left": 0}
    again = ReduceLROnPlateau(monitor="loss")
    again.load_state_dict({"best": np.float32(0.5), "wait": np.int64(2), "cooldown_left": 1.0})
    assert (again.tracker.best, again.wait, again.cooldown_left) == (0.5, 2, 1)
    assert (
        type(again.tracker.best) is float and type(again.wait) is type(again.cooldown_left) is int
    )


def test_lr_callbacks_name_themselves_when_the_lr_is_a_schedule():
    schedule = schedules.CosineDecayRestarts(0.1, 3)
    trainer = FakeTrainer(0.1, schedule)
    with pytest.raises(ValueError) as info:
        ReduceLROnPlateau().on_train_begin(trainer)
    message = str(info.value)
    assert message.startswith("ReduceLROnPlateau: the optimizer's learning rate is a schedule (")
    assert repr(schedule) in message and "ReduceLROnPlateau sets a constant" in message
    with pytest.raises(ValueError, match=r"^LearningRateScheduler: .*LearningRateScheduler sets"):
        LearningRateScheduler(lambda e, lr: lr).on_epoch_begin(trainer, 0)
    cb = ReduceLROnPlateau(monitor="loss", patience=1)
    cb.on_epoch_end(trainer, 0, {"loss": 1.0})
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: .*ReduceLROnPlateau sets"):
        cb.on_epoch_end(trainer, 1, {"loss": 1.0})


def test_learning_rate_scheduler_gets_epoch_and_lr():
    calls = []

    def schedule(epoch, lr):
        calls.append((epoch, lr))
        return np.float32(lr / 2) if epoch else 0

    cb, trainer = LearningRateScheduler(schedule), FakeTrainer(0.5, 0.25)
    cb.on_epoch_begin(trainer, 0)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.0, 0.0]  # 0 is allowed
    trainer.optimizer.param_groups[0]["lr"] = 0.5
    cb.on_epoch_begin(trainer, 3)
    assert calls == [(0, 0.5), (3, 0.5)] and trainer.optimizer.param_groups[1]["lr"] == 0.25
    assert type(trainer.optimizer.param_groups[1]["lr"]) is float


def test_a_schedule_that_swaps_in_a_schedule_lr_is_refused_by_name():
    trainer = FakeTrainer(0.5)

    def meddling(epoch, lr):
        trainer.optimizer.param_groups[0]["lr"] = schedules.CosineDecayRestarts(0.1, 3)
        return lr

    with pytest.raises(ValueError, match=r"^LearningRateScheduler: .*LearningRateScheduler sets"):
        LearningRateScheduler(meddling).on_epoch_begin(trainer, 0)


@pytest.mark.parametrize("bad", [-0.1, math.nan])
def test_learning_rate_scheduler_refuses_negative_or_nan(bad):
    trainer = FakeTrainer(0.5)
    with pytest.raises(ValueError) as info:
        LearningRateScheduler(lambda e, lr: bad).on_epoch_begin(trainer, 2)
    assert str(info.value) == f"LearningRateScheduler: schedule gave lr={bad} at epoch 2"
    assert trainer.optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(TypeError, match=r"^LearningRateScheduler: schedule must be a callable"):
        LearningRateScheduler(0.1)


# --- the loggers ------------------------------------------------------------------------------------------------


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_lines_for_steps_and_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log, trainer = JSONLLogger(path), FakeTrainer()
    assert log.steps is True and log.path == str(path)
    log.on_train_begin(trainer)
    log.on_batch_end(trainer, 1, {"epoch": 0, "step": 1, "loss": np.float32(0.5), "lr": 0.1})
    trainer.step = 1
    logs = {"loss": 0.5, "acc": np.float64(0.25), "lr": 0.1, "time": 2.0, "dev_loss": math.inf,
            "dev_acc": math.nan}  # fmt: skip
    log.on_epoch_end(trainer, 0, logs)
    assert read_jsonl(path) == [
        {"event": "step", "epoch": 0, "step": 1, "loss": 0.5, "lr": 0.1},
        {"event": "epoch", "epoch": 0, "step": 1, "time": 2.0, "lr": 0.1,
         "train": {"loss": 0.5, "acc": 0.25}, "dev": {"loss": "inf", "acc": None}},
    ]  # fmt: skip
    log.on_epoch_end(trainer, 1, {"loss": 0.4})
    assert read_jsonl(path)[-1] == {"event": "epoch", "epoch": 1, "step": 1, "time": None,
                                    "lr": None, "train": {"loss": 0.4}}  # fmt: skip
    log.on_train_end(trainer)
    assert log.file is None
    log.on_train_end(trainer)  # twice is harmless


def test_jsonl_without_steps_writes_epochs_only(tmp_path):
    log, trainer = JSONLLogger(tmp_path / "m.jsonl", steps=False), FakeTrainer()
    log.on_train_begin(trainer)
    log.on_batch_end(trainer, 1, {"step": 1})
    log.on_epoch_end(trainer, 0, {"loss": -math.inf})
    log.on_train_end(trainer)
    assert read_jsonl(tmp_path / "m.jsonl") == [
        {"event": "epoch", "epoch": 0, "step": 0, "time": None, "lr": None,
         "train": {"loss": "-inf"}},
    ]  # fmt: skip


def test_jsonl_resume_drops_the_lines_after_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"event": "step", "step": s} for s in (1, 2, 3, 4)]
    for step in (2, 1):
        path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")
        log, trainer = JSONLLogger(path), FakeTrainer(step=step, epoch=1)
        log.on_train_begin(trainer)
        log.on_train_end(trainer)
        assert read_jsonl(path) == [*lines[:step], {"event": "resume", "epoch": 1, "step": step}]
    fresh = JSONLLogger(path)
    fresh.on_train_begin(FakeTrainer(step=0))  # a new run starts the file afresh
    fresh.on_train_end(None)
    assert path.read_text() == ""


def test_csv_rows_and_resume(tmp_path):
    path = tmp_path / "log.csv"
    log, trainer = CSVLogger(path), FakeTrainer()
    assert log.columns is None
    log.on_train_begin(trainer)
    assert path.read_text() == ""
    for epoch in range(3):
        log.on_epoch_end(trainer, epoch, {"loss": epoch / 2, "lr": 0.1})
    log.on_epoch_end(trainer, 3, {"loss": 9.0, "lr": 0.1, "extra": 1})  # not a column: ignored
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "loss", "lr"], ["0", "0.0", "0.1"], ["1", "0.5", "0.1"],
                    ["2", "1.0", "0.1"], ["3", "9.0", "0.1"]]  # fmt: skip
    resumed = CSVLogger(path)
    resumed.on_train_begin(FakeTrainer(epoch=2))
    assert resumed.columns == ["epoch", "loss", "lr"]
    resumed.on_epoch_end(None, 2, {"loss": 7.0, "lr": 0.01})
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "loss", "lr"], ["0", "0.0", "0.1"], ["1", "0.5", "0.1"],
                    ["2", "7.0", "0.01"]]  # fmt: skip
    resumed.on_train_begin(FakeTrainer(epoch=1))  # the first epoch after a checkpoint
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [["epoch", "loss", "lr"], ["0", "0.0", "0.1"]]
    resumed.on_train_begin(FakeTrainer(epoch=0))  # fit again from the start: the columns stay
    assert path.read_bytes() == b"epoch,loss,lr\r\n"
    restarted = CSVLogger(path)
    restarted.on_train_begin(FakeTrainer(epoch=0))
    assert path.read_text() == "" and restarted.columns is None


def test_only_the_file_writers_run_on_rank_zero_alone():
    assert callbacks.Callback.main_process_only is False
    assert EarlyStopping.main_process_only is False and ReduceLROnPlateau.main_process_only is False
    for cls in (ModelCheckpoint, SnapshotEnsemble, JSONLLogger, CSVLogger):
        assert cls.main_process_only is True
    base = callbacks.Callback()
    assert base.state_dict() == {} and base.load_state_dict({"x": 1}) is None
