"""Trainer(compile=True): the same training, bit for bit, through nabla.compile's plans; and
resume from a checkpoint written in compiled mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nabla as nb
from nabla import nn, optim
from nabla.data import DataLoader, datasets, transforms
from nabla.data.transforms import augment
from nabla.optim import schedules
from nabla.train import Trainer, callbacks


def build(tmp_path, compile: bool):
    nb.manual_seed(7)
    train, test = datasets.digits()
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(32, 10),
    )
    opt = optim.Adam(model.named_parameters(), lr=schedules.CosineDecay(0.01, decay_steps=200))
    pipeline = transforms.Compose([augment.RandomTranslate(1), augment.GaussianNoise(0.05)])
    loader = DataLoader(
        train, batch_size=100, shuffle=True, transform=pipeline
    )  # a smaller last batch
    dev = DataLoader(test, batch_size=128)
    cbs = [callbacks.ModelCheckpoint(tmp_path / "checkpoints", last=True, best=True)]
    trainer = Trainer(
        model, nn.CrossEntropyLoss(), opt, metrics=["accuracy"], callbacks=cbs, compile=compile
    )
    return trainer, loader, dev


def state(trainer) -> dict:
    return {k: v.data.copy() for k, v in trainer.model.state_dict().items()}


def test_compiled_training_is_eager_training_bit_for_bit(tmp_path):
    eager, loader, dev = build(tmp_path / "eager", compile=False)
    eager.fit(loader, epochs=2, dev=dev, verbose=0)
    compiled, loader, dev = build(tmp_path / "compiled", compile=True)
    compiled.fit(loader, epochs=2, dev=dev, verbose=0)
    assert compiled.history.steps["loss"] == eager.history.steps["loss"]
    assert compiled.history["dev_loss"] == eager.history["dev_loss"]
    assert compiled.history["accuracy"] == eager.history["accuracy"]
    expected = state(eager)
    for key, value in state(compiled).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    # one plan for the full batches, one for the last; one for each evaluation batch size
    assert len(compiled.compiled.plans) == 2 and compiled.compiled.replays == compiled.step - 2
    assert len(compiled.compiled_evaluation.plans) == 2
    assert compiled.compiled.eager_reason is None


def test_resume_from_a_checkpoint_written_in_compiled_mode_is_bit_identical(tmp_path):
    straight, loader, dev = build(tmp_path / "a", compile=True)
    straight.fit(loader, epochs=3, dev=dev, verbose=0)

    first, loader, dev = build(tmp_path / "b", compile=True)
    first.fit(loader, epochs=1, dev=dev, verbose=0)
    nb.manual_seed(999)  # the checkpoint must bring every stream back
    resumed, loader, dev = build(tmp_path / "b", compile=True)
    resumed.load_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    resumed.fit(loader, epochs=3, dev=dev, verbose=0)
    assert resumed.history.steps["loss"] == straight.history.steps["loss"]
    expected = state(straight)
    for key, value in state(resumed).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    # and the same checkpoint resumes an eager trainer to the same numbers
    eager, loader, dev = build(tmp_path / "b", compile=False)
    eager.load_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    eager.fit(loader, epochs=3, dev=dev, verbose=0)
    assert eager.history.steps["loss"] == straight.history.steps["loss"]


def test_compile_with_distributed_training_is_refused_clearly():
    model = nn.Linear(2, 2)
    with pytest.raises(
        ValueError, match=r"^Trainer: compile=True is not supported with distributed training yet"
    ):
        Trainer(
            model,
            nn.MSELoss(),
            optim.SGD(model.parameters(), lr=0.1),
            distributed=True,
            compile=True,
        )


def test_nabla_train_compile_logs_the_numbers_of_an_eager_run(tmp_path, capsys):
    from nabla.cli import main

    runs = {}
    for flag in ("--compile", "--no-compile"):
        out = tmp_path / flag.strip("-")
        assert (
            main(["train", "--epochs", "1", "--hidden", "32", "--quiet", "--out", str(out), flag])
            == 0
        )
        lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        runs[flag] = [
            (e.get("loss"), e.get("dev_loss"), e.get("grad_norm")) for e in lines if "loss" in e
        ]
        assert ("compile = true" if flag == "--compile" else "compile = false") in (
            out / "config.toml"
        ).read_text()
    assert runs["--compile"] == runs["--no-compile"] and len(runs["--compile"]) > 10
