"""SnapshotEnsemble details pinned by mutation testing (issue 21): cycle lengths validated at their
boundaries, when snapshots are taken (per cycle of epochs or of steps, also from a resumed step),
the copies and files they keep and their ``state_dict`` round trip. Driven by hand with the
stand-in trainer of ``test_callback_details``."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_callback_details import FakeTrainer

from nabla.optim import schedules
from nabla.train.callbacks import (
    SnapshotEnsemble,
)

# --- SnapshotEnsemble -----------------------------------------------------------------------------


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
    with pytest.raises(
        ValueError, match=r"^SnapshotEnsemble: give cycle_steps or cycle_epochs, not both$"
    ):
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
