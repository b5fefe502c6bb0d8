"""Resuming with callbacks in mid-count: the run must continue as if never stopped.

A checkpoint is written when EarlyStopping has waited 2 of its 4 epochs and ReduceLROnPlateau is
2 epochs into its cooldown, both with a best value set. If either count or best were lost on
loading, the resumed run would stop at another epoch or cut the learning rate at another epoch
(and so reach other parameters). The monitored score is scripted, so these counts are known.
"""

from __future__ import annotations

import numpy as np

import nabla as nb
from nabla import nn, optim
from nabla.data import DataLoader, datasets
from nabla.train import Trainer, callbacks

# dev_score per epoch (lower is better): improves twice, then stalls above the best, 0.9. After
# the checkpoint, 0.94 would count as progress for a callback that lost its best value.
SCORES = [1.0, 0.9, 0.95, 0.95, 0.97, 0.94, 0.96, 0.95, 0.95, 0.95]
CHECKPOINT_AFTER = 4  # epochs: 0 and 1 improve, 2 and 3 do not


class ScriptedScore(callbacks.Callback):
    """Puts ``dev_score`` = SCORES[epoch] into the epoch logs, before the callbacks that read it."""

    def on_epoch_end(self, trainer, epoch, logs):
        logs["dev_score"] = SCORES[epoch]


def build(directory):
    nb.manual_seed(5)
    train, test = datasets.digits(flatten=True)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    stopper = callbacks.EarlyStopping(monitor="dev_score", patience=4)
    # patience 1: epoch 2 cuts the rate and starts a cooldown of 3 epochs (epochs 3 to 5)
    plateau = callbacks.ReduceLROnPlateau(monitor="dev_score", factor=0.5, patience=1, cooldown=3)
    saver = callbacks.ModelCheckpoint(directory, last=True)
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.2, momentum=0.5),
        metrics=["accuracy"],
        callbacks=[ScriptedScore(), stopper, plateau, saver],
    )
    loaders = DataLoader(train, batch_size=128, shuffle=True), DataLoader(test, batch_size=512)
    return trainer, stopper, plateau, loaders


def fit(trainer, loaders, epochs):
    train, dev = loaders
    trainer.fit(train, epochs=epochs, dev=dev, verbose=0)


def outcome(trainer, stopper):
    """Everything the run decided: when it stopped, the rates, the history, the parameters."""
    epochs = [{k: v for k, v in logs.items() if k != "time"} for logs in trainer.history.epochs]
    return {
        "epoch": trainer.epoch,
        "stopped_epoch": stopper.stopped_epoch,
        "lr": trainer.optimizer.param_groups[0]["lr"],
        "epochs": epochs,
        "steps": {k: list(v) for k, v in trainer.history.steps.items() if k != "update_ratio"},
        "params": {k: v.data.copy() for k, v in trainer.model.state_dict().items()},
    }


def assert_same(got, want):
    assert got["epoch"] == want["epoch"]
    assert got["stopped_epoch"] == want["stopped_epoch"]
    assert [e["lr"] for e in got["epochs"]] == [e["lr"] for e in want["epochs"]]
    assert got["lr"] == want["lr"]
    assert got["epochs"] == want["epochs"]
    assert got["steps"] == want["steps"]
    for key, value in want["params"].items():
        np.testing.assert_array_equal(got["params"][key], value, err_msg=key)


def test_resume_with_early_stopping_waiting_and_plateau_in_cooldown(tmp_path):
    straight, stopper, _, loaders = build(tmp_path / "straight")
    fit(straight, loaders, epochs=len(SCORES))
    want = outcome(straight, stopper)
    # The setting does what it claims: stopped at epoch 5 (patience 4 after the best, epoch 1),
    # the rate halved at epoch 2 and, after the cooldown, at epoch 5 (too late to be used).
    assert want["epoch"] == 6 and want["stopped_epoch"] == 5
    assert [e["lr"] for e in want["epochs"]] == [0.2, 0.2, 0.2, 0.1, 0.1, 0.1]
    assert want["lr"] == 0.05

    first, stopper, plateau, loaders = build(tmp_path / "resumed")
    fit(first, loaders, epochs=CHECKPOINT_AFTER)
    # mid-way at the checkpoint: both counts are neither 0 nor done, both best values are set
    assert stopper.wait == 2 and stopper.tracker.best == 0.9 and stopper.best_epoch == 1
    assert plateau.cooldown_left == 2 and plateau.wait == 0 and plateau.tracker.best == 0.9
    nb.manual_seed(999)  # a fresh process would not have the streams either

    resumed, stopper, plateau, loaders = build(tmp_path / "resumed")
    resumed.load_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert resumed.epoch == CHECKPOINT_AFTER
    fit(resumed, loaders, epochs=len(SCORES))
    assert_same(outcome(resumed, stopper), want)
