"""Logger details pinned by mutation testing (issue 21): the lines JSONLLogger and the rows
CSVLogger write (also on resume) and which callbacks run on rank zero only. Driven by hand with
the stand-in trainer of ``test_callback_details``."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
from test_callback_details import FakeTrainer

from nabla.train import callbacks
from nabla.train.callbacks import (
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    ModelCheckpoint,
    ReduceLROnPlateau,
    SnapshotEnsemble,
)

# --- the loggers ----------------------------------------------------------------------------------


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_lines_for_steps_and_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log, trainer = JSONLLogger(path), FakeTrainer()
    assert log.steps is True and log.path == str(path)
    log.on_train_begin(trainer)
    log.on_batch_end(trainer, 1, {"epoch": 0, "step": 1, "loss": np.float32(0.5), "lr": 0.1})
    trainer.step = 1
    logs = {
        "loss": 0.5,
        "acc": np.float64(0.25),
        "lr": 0.1,
        "time": 2.0,
        "dev_loss": math.inf,
        "dev_acc": math.nan,
    }
    log.on_epoch_end(trainer, 0, logs)
    assert read_jsonl(path) == [
        {"event": "step", "epoch": 0, "step": 1, "loss": 0.5, "lr": 0.1},
        {
            "event": "epoch",
            "epoch": 0,
            "step": 1,
            "time": 2.0,
            "lr": 0.1,
            "train": {"loss": 0.5, "acc": 0.25},
            "dev": {"loss": "inf", "acc": None},
        },
    ]
    log.on_epoch_end(trainer, 1, {"loss": 0.4})
    assert read_jsonl(path)[-1] == {
        "event": "epoch",
        "epoch": 1,
        "step": 1,
        "time": None,
        "lr": None,
        "train": {"loss": 0.4},
    }
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
        {
            "event": "epoch",
            "epoch": 0,
            "step": 0,
            "time": None,
            "lr": None,
            "train": {"loss": "-inf"},
        },
    ]


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
    assert rows == [
        ["epoch", "loss", "lr"],
        ["0", "0.0", "0.1"],
        ["1", "0.5", "0.1"],
        ["2", "1.0", "0.1"],
        ["3", "9.0", "0.1"],
    ]
    resumed = CSVLogger(path)
    resumed.on_train_begin(FakeTrainer(epoch=2))
    assert resumed.columns == ["epoch", "loss", "lr"]
    resumed.on_epoch_end(None, 2, {"loss": 7.0, "lr": 0.01})
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["epoch", "loss", "lr"],
        ["0", "0.0", "0.1"],
        ["1", "0.5", "0.1"],
        ["2", "7.0", "0.01"],
    ]
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
