"""Exact resume: 4 epochs straight equal 2 epochs, a checkpoint, a fresh process and 2 more, bit
for bit; and a process killed while writing a checkpoint leaves the previous one loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nabla as nb
from nabla import nn, optim
from nabla.data import DataLoader, datasets, transforms
from nabla.data.transforms import augment
from nabla.optim import schedules
from nabla.serialization import CheckpointError
from nabla.train import Trainer, callbacks, checkpoint


def build(tmp_path, optimizer: str = "adam", dropout_generator: bool = False):
    """A fresh model, optimizer, loaders and trainer: dropout, augmentation, shuffling and a
    schedule all draw on the random streams a checkpoint must carry."""
    nb.manual_seed(7)
    train, test = datasets.digits()
    gen = np.random.default_rng(3) if dropout_generator else None
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(0.3, generator=gen),
        nn.Linear(32, 10),
    )
    lr = schedules.CosineDecay(0.01, decay_steps=200)
    opt = {
        "adam": lambda: optim.Adam(model.named_parameters(), lr=lr),
        "sgd": lambda: optim.SGD(model.named_parameters(), lr=lr, momentum=0.9, nesterov=True),
    }[optimizer]()
    pipeline = transforms.Compose([augment.RandomTranslate(1), augment.GaussianNoise(0.05)])
    loader = DataLoader(train, batch_size=64, shuffle=True, transform=pipeline)
    dev = DataLoader(test, batch_size=128)
    cbs = [
        callbacks.EarlyStopping(patience=10, restore_best=True),
        callbacks.JSONLLogger(tmp_path / "metrics.jsonl"),
        callbacks.ModelCheckpoint(tmp_path / "checkpoints", last=True, best=True),
    ]
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, metrics=["accuracy"], callbacks=cbs)
    return trainer, loader, dev


def params(trainer) -> dict:
    return {k: v.data.copy() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("dropout_generator", [False, True])
def test_resume_is_bit_identical(tmp_path, optimizer, dropout_generator):
    straight, loader, dev = build(tmp_path / "a", optimizer, dropout_generator)
    (tmp_path / "a").mkdir()
    straight.fit(loader, epochs=4, dev=dev, verbose=0)
    expected = params(straight)

    (tmp_path / "b").mkdir()
    first, loader, dev = build(tmp_path / "b", optimizer, dropout_generator)
    first.fit(loader, epochs=2, dev=dev, verbose=0)
    nb.manual_seed(12345)  # disturb every global stream: the checkpoint must restore them
    nb.randn(100)

    resumed, loader, dev = build(tmp_path / "b", optimizer, dropout_generator)
    resumed.load_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    assert resumed.epoch == 2 and resumed.step == first.step
    resumed.fit(loader, epochs=4, dev=dev, verbose=0)

    got = params(resumed)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert resumed.history["dev_loss"] == straight.history["dev_loss"]
    assert resumed.history.steps["loss"] == straight.history.steps["loss"]
    a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    b = [
        line
        for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
        if "resume" not in line
    ]
    assert len(a) == len(b)  # same events; times differ
    assert '"event": "resume"' in (tmp_path / "b" / "metrics.jsonl").read_text()


def test_a_checkpoint_saved_again_before_fit_keeps_the_loader_position(tmp_path):
    """load_checkpoint then save_checkpoint (before fit applies the loader state) writes the same
    loader state, so a resume from the copy continues the same shuffled epoch."""
    (tmp_path / "a").mkdir()
    first, loader, dev = build(tmp_path / "a")
    first.fit(loader, epochs=2, dev=dev, verbose=0)
    saved = tmp_path / "a" / "checkpoints" / "last.safetensors"
    again, _, _ = build(tmp_path / "b")
    again.load_checkpoint(saved)
    again.save_checkpoint(tmp_path / "copy.safetensors")
    state = checkpoint.load(tmp_path / "copy.safetensors")["train_loader"]
    assert state == checkpoint.load(saved)["train_loader"]
    assert state["epoch"] == 2


def test_resume_mid_run_after_a_crash_drops_the_unsaved_log_lines(tmp_path):
    (tmp_path / "run").mkdir()
    trainer, loader, dev = build(tmp_path / "run")
    trainer.fit(loader, epochs=3, dev=dev, verbose=0)
    # Pretend the process died during epoch 3, after the epoch-2 checkpoint: take the epoch-2
    # state from a checkpoint written then.
    (tmp_path / "run2").mkdir()
    t2, loader2, dev2 = build(tmp_path / "run2")
    t2.fit(loader2, epochs=2, dev=dev2, verbose=0)
    log = tmp_path / "run2" / "metrics.jsonl"
    with open(log, "a") as f:  # lines of the lost epoch
        f.write('{"event": "step", "epoch": 2, "step": 999, "loss": 1.0}\n')
    t3, loader3, dev3 = build(tmp_path / "run2")
    t3.load_checkpoint(tmp_path / "run2" / "checkpoints" / "last.safetensors")
    t3.fit(loader3, epochs=3, dev=dev3, verbose=0)
    assert '"step": 999' not in log.read_text()
    np.testing.assert_array_equal(params(t3)["1.weight"], params(trainer)["1.weight"])


def test_a_finished_early_stopped_run_stays_stopped(tmp_path):
    nb.manual_seed(0)
    train, test = datasets.digits(flatten=True)
    model = nn.Linear(64, 10)
    stopper = callbacks.EarlyStopping(monitor="dev_accuracy", patience=0, min_delta=1.0)
    saver = callbacks.ModelCheckpoint(tmp_path)
    t = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.1),
        metrics=["accuracy"],
        callbacks=[stopper, saver],
    )
    t.fit(
        DataLoader(train, batch_size=256),
        epochs=10,
        dev=DataLoader(test, batch_size=256),
        verbose=0,
    )
    assert t.epoch == 2 and t.stop_training  # best at epoch 0, no improvement of 1.0 at epoch 1
    model2 = nn.Linear(64, 10)
    stopper2, saver2 = (
        callbacks.EarlyStopping(monitor="dev_accuracy", patience=0, min_delta=1.0),
        callbacks.ModelCheckpoint(tmp_path),
    )
    t2 = Trainer(
        model2,
        nn.CrossEntropyLoss(),
        optim.SGD(model2.parameters(), lr=0.1),
        metrics=["accuracy"],
        callbacks=[stopper2, saver2],
    )
    t2.load_checkpoint(tmp_path / "last.safetensors")
    t2.fit(DataLoader(train, batch_size=256), epochs=10, verbose=0)
    assert t2.epoch == 2


def test_foreign_and_corrupt_checkpoints_are_refused(tmp_path):
    model = nn.Linear(3, 2)
    nb.save(model.state_dict(), tmp_path / "weights.safetensors")
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="not a nabla training checkpoint"):
        trainer.load_checkpoint(tmp_path / "weights.safetensors")
    nb.save_state(
        {"a": 1},
        tmp_path / "future.safetensors",
        metadata={"format": checkpoint.FORMAT, "format_version": "99"},
    )
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        trainer.load_checkpoint(tmp_path / "future.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(CheckpointError):
        trainer.load_checkpoint(tmp_path / "junk.safetensors")


def test_checkpoint_from_other_callbacks_is_refused(tmp_path):
    model = nn.Linear(3, 2)
    t = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1))
    t.save_checkpoint(tmp_path / "c.safetensors")
    other = Trainer(
        model,
        nn.MSELoss(),
        optim.SGD(model.parameters(), lr=0.1),
        callbacks=[callbacks.EarlyStopping(monitor="loss")],
    )
    with pytest.raises(ValueError, match="callbacks"):
        other.load_checkpoint(tmp_path / "c.safetensors")


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import nabla as nb
    from nabla import nn, optim
    from nabla.train import Trainer
    nb.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 2000), nn.Linear(2000, 1000))  # 12 MB per file
    trainer = Trainer(model, nn.MSELoss(), optim.Adam(model.parameters()))
    path = sys.argv[1]
    trainer.save_checkpoint(path)
    print("ready", flush=True)
    i = 0
    while True:  # rewrite the same checkpoint until killed
        i += 1
        trainer.step = i
        trainer.save_checkpoint(path)
    """
)


def test_killed_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "last.safetensors"
    for delay in (0.05, 0.13, 0.29):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        state = checkpoint.load(path)  # whole and valid: the old file or the new one
        assert state["model"]["0.weight"].shape == (2000, 1000)
        assert int(state["step"]) >= 0
    leftovers = [p for p in os.listdir(tmp_path) if p != "last.safetensors"]
    # A temporary file may survive a SIGKILL (nothing can remove it), but never under the name.
    assert all(p.startswith(".last.safetensors.") and p.endswith(".tmp") for p in leftovers)
