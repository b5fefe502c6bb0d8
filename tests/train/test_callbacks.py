import csv
import json

import numpy as np
import pytest

import nabla as nb
from nabla import nn, optim
from nabla.data import ArrayDataset, DataLoader, datasets
from nabla.optim import schedules
from nabla.train import Trainer, callbacks


class Scripted(callbacks.Callback):
    """Replaces the real epoch logs' monitored value with a scripted sequence."""

    def __init__(self, key, values):
        self.key, self.values = key, list(values)

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.key] = self.values[epoch]


def tiny(cbs, lr=0.1, metrics=()):
    nb.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    data = ArrayDataset(x, x @ np.array([1.0, -2.0, 0.5], np.float32))
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=lr)
    loss = lambda out, y: nn.functional.mse_loss(out.reshape(-1), y)  # noqa: E731
    return Trainer(model, loss, opt, metrics=metrics, callbacks=cbs), DataLoader(data, batch_size=8)


def test_early_stopping_counts_patience_and_restores_the_best_weights():
    script = Scripted("score", [5.0, 4.0, 4.5, 4.2, 3.0])
    stop = callbacks.EarlyStopping(monitor="score", patience=2, restore_best=True)

    class Snapshot(callbacks.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                self.best = trainer.model.weight.data.copy()

    snap = Snapshot()
    trainer, loader = tiny([script, snap, stop])
    trainer.fit(loader, epochs=5, verbose=0)
    assert trainer.epoch == 4 and stop.best_epoch == 1 and stop.stopped_epoch == 3
    np.testing.assert_array_equal(trainer.model.weight.data, snap.best)


def test_early_stopping_min_delta_and_max_mode():
    script = Scripted("dev_accuracy", [0.5, 0.505, 0.509, 0.6])
    stop = callbacks.EarlyStopping(monitor="dev_accuracy", patience=2, min_delta=0.01)
    trainer, loader = tiny([script, stop])
    trainer.fit(loader, epochs=4, verbose=0)
    assert stop.tracker.mode == "max" and trainer.epoch == 3  # two epochs without +0.01


def test_missing_monitor_names_the_available_logs():
    trainer, loader = tiny([callbacks.EarlyStopping()])
    with pytest.raises(KeyError, match=r"dev_loss.*pass dev data"):
        trainer.fit(loader, epochs=1, verbose=0)


def test_reduce_lr_on_plateau_follows_keras():
    script = Scripted("dev_loss", [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    plateau = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.03)
    lrs = []

    class Record(callbacks.Callback):
        def on_epoch_begin(self, trainer, epoch):
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    trainer, loader = tiny([script, plateau, Record()], lr=0.1)
    trainer.fit(loader, epochs=8, verbose=0)
    # Keras' rule: no improvement at epochs 1, 2 -> x0.5 after epoch 2; epoch 3 is the cooldown
    # (and already counts as a wait once it ends); epoch 4 -> x0.5, floored at min_lr.
    assert lrs == [0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03]
    script2 = Scripted("dev_loss", [1.0] * 8)
    plateau2 = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.03)
    trainer, loader = tiny([script2, plateau2], lr=0.1)
    trainer.fit(loader, epochs=8, verbose=0)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.03  # floored at min_lr


def test_lr_callbacks_refuse_a_schedule_learning_rate():
    trainer, loader = tiny([callbacks.ReduceLROnPlateau(monitor="loss")])
    trainer.optimizer.param_groups[0]["lr"] = schedules.CosineDecay(0.1, 100)
    with pytest.raises(ValueError, match="schedule"):
        trainer.fit(loader, epochs=1, verbose=0)


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    seen = []

    class Record(callbacks.Callback):
        def on_batch_end(self, trainer, step, logs):
            seen.append(logs["lr"])

    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)
    trainer, loader = tiny([sched, Record()])
    trainer.fit(loader, epochs=3, verbose=0)
    assert seen == [0.1] * 4 + [0.05] * 4 + [0.025] * 4


def test_jsonl_and_csv_loggers_write_every_epoch(tmp_path):
    train, test = datasets.digits(flatten=True)
    nb.manual_seed(0)
    model = nn.Linear(64, 10)
    cbs = [callbacks.JSONLLogger(tmp_path / "m.jsonl"), callbacks.CSVLogger(tmp_path / "m.csv")]
    t = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optim.Adam(model.parameters(), lr=0.01),
        metrics=["accuracy"],
        callbacks=cbs,
    )
    t.fit(
        DataLoader(train, batch_size=500), epochs=2, dev=DataLoader(test, batch_size=500), verbose=0
    )
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["event"] == "step"]
    epochs = [r for r in lines if r["event"] == "epoch"]
    assert [s["step"] for s in steps] == list(range(1, 7))
    assert epochs[1]["dev"]["accuracy"] == t.history["dev_accuracy"][1]
    assert epochs[1]["train"]["loss"] == t.history["loss"][1]
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[1]["dev_accuracy"]) == pytest.approx(t.history["dev_accuracy"][1])


def test_checkpoint_every_and_best(tmp_path):
    script = Scripted("dev_loss", [3.0, 1.0, 2.0, 0.5])
    saver = callbacks.ModelCheckpoint(tmp_path, last=True, best=True, every=2)
    trainer, loader = tiny([script, saver])
    trainer.fit(loader, epochs=4, verbose=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "best.safetensors",
        "epoch-0002.safetensors",
        "epoch-0004.safetensors",
        "last.safetensors",
    ]
    assert saver.best_epoch == 3
