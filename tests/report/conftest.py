"""Fabricated run folders, laid out as the trainer writes them, for the report's tests.

Every line of metrics.jsonl that a resume later rewrites carries ``"stale": true``, so a test can
tell which of two lines with the same step or epoch number was read.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import nabla as nb

CLASSES = [str(k) for k in range(10)]

CONFIG = """\
dataset = "digits"
model = "mlp"
hidden = [128]
activation = "relu"
optimizer = "adam"
lr = 0.01
schedule = "cosine"
epochs = {epochs}
batch_size = 32
seed = 0
"""


def _records(task, epochs, steps_per_epoch, lr, rng, epoch_range, stale):
    """The step and epoch lines of ``epoch_range``, with smooth curves plus noise."""
    total = epochs * steps_per_epoch
    lines = []
    for epoch in epoch_range:
        for k in range(1, steps_per_epoch + 1):
            step = epoch * steps_per_epoch + k
            t = step / steps_per_epoch
            record = {
                "event": "step",
                "epoch": epoch,
                "step": step,
                "loss": 2.3 * math.exp(-t / 1.5) + 0.05 + 0.1 * rng.random(),
                "lr": lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / total)),
                "batch_size": 32,
            }
            if task == "classification":
                record["grad_norm"] = None if step % 7 == 0 else float(rng.lognormal(0.5, 0.3))
                record["update_ratio"] = float(rng.lognormal(math.log(1e-3), 0.2))
            lines.append(record)
        t = epoch + 1
        wobble = 1 + 0.05 * rng.standard_normal()  # seeds differ a little
        record = {
            "event": "epoch",
            "epoch": epoch,
            "step": (epoch + 1) * steps_per_epoch,
            "time": 0.8 + 0.05 * rng.random(),
            "lr": lr * 0.5 * (1 + math.cos(math.pi * t / epochs)),
            "train": {"loss": (2.3 * math.exp(-t / 1.5) + 0.05) * wobble},
            "dev": {"loss": (2.3 * math.exp(-t / 1.5) + 0.12) * wobble},
        }
        if task == "classification":
            error = 0.9 * math.exp(-t / 0.8) * wobble
            record["train"]["accuracy"] = 1 - error
            record["dev"]["accuracy"] = 0.97 - error
        else:
            for split, shift in (("train", 0.0), ("dev", 0.05)):
                mse = 1.5 * math.exp(-t / 1.5) + 0.02 + shift
                record[split].update({"mse": mse, "mae": math.sqrt(mse) * 0.8})
        lines.append(record)
    if stale:  # the crashed attempt: tell-tale values that must not survive the resume
        for record in lines:
            record["stale"] = True
            if record["event"] == "step":
                record["loss"] = 99.0
            else:
                record["train"]["loss"] = 99.0
    return lines


def fabricate_run(
    path: Path,
    task: str = "classification",
    epochs: int = 3,
    steps_per_epoch: int = 5,
    resume_at: int | None = 1,
    images: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """Write a finished run of ``epochs`` x ``steps_per_epoch`` updates into ``path``.

    With ``resume_at=e`` the run first got through epoch ``e``, crashed, and was resumed from
    the checkpoint after epoch ``e - 1``, so epoch ``e`` and its updates appear twice.
    ``images`` (n, C, H, W) are the misclassified examples of a classification run (random
    8x8 grayscale ones by default).
    """
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    lr = 0.01
    (path / "config.toml").write_text(CONFIG.format(epochs=epochs), encoding="utf-8")

    if resume_at is None:
        lines = _records(task, epochs, steps_per_epoch, lr, rng, range(epochs), stale=False)
    else:
        lines = _records(task, epochs, steps_per_epoch, lr, rng, range(resume_at), stale=False)
        lines += _records(task, epochs, steps_per_epoch, lr, rng, [resume_at], stale=True)
        lines.append({"event": "resume", "epoch": resume_at, "step": resume_at * steps_per_epoch})
        lines += _records(task, epochs, steps_per_epoch, lr, rng, range(resume_at, epochs), False)
    with open(path / "metrics.jsonl", "w", encoding="utf-8") as f:
        for record in lines:
            f.write(json.dumps(record) + "\n")

    results = {
        "task": task,
        "evaluations": {},
        "wall_time": 12.3,
        "epochs_run": epochs,
        "stopped_early": False,
        "nabla_version": nb.__version__,
        "best": {"epoch": epochs - 1, "monitor": "dev_loss", "value": 0.08},
    }
    if task == "classification":
        confusion = np.diag(rng.integers(30, 37, size=10))
        for _ in range(25):
            i, j = rng.integers(0, 10, size=2)
            confusion[i, j] += i != j
        results["classes"] = CLASSES
        results["confusion"] = {"split": "test", "matrix": confusion.tolist()}
        results["evaluations"] = {
            "dev": {"loss": 0.1234, "accuracy": 0.9567},
            "test": {"loss": 0.0987, "accuracy": 0.9123},
        }
        if images is None:
            images = rng.random((12, 1, 8, 8)).astype(np.float32) * 1.2 - 0.1
        n = len(images)
        labels = rng.integers(0, 10, size=n)
        nb.save(
            {
                "images": images.astype(np.float32),
                "labels": labels,
                "predictions": (labels + rng.integers(1, 10, size=n)) % 10,
            },
            path / "misclassified.safetensors",
        )
    else:
        results["evaluations"] = {
            "dev": {"loss": 0.21, "mse": 0.21, "mae": 0.37},
            "test": {"loss": 0.2345, "mse": 0.2345, "mae": 0.3876},
        }
    (path / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def fabricate():
    """:func:`fabricate_run` itself, for a test that needs a run of its own."""
    return fabricate_run


@pytest.fixture
def classification_run(tmp_path) -> Path:
    """3 epochs x 5 updates of a 10-class run, resumed once so that epoch 1 appears twice."""
    return fabricate_run(tmp_path / "digits-mlp-adam")


@pytest.fixture
def regression_run(tmp_path) -> Path:
    """A regression run: MSE and MAE instead of accuracy, no confusion matrix, no images."""
    return fabricate_run(tmp_path / "regression", task="regression", resume_at=None)


@pytest.fixture
def read_png():
    """A function that checks the PNG signature of some bytes and returns the RGB pixels."""
    import matplotlib.image

    def read(data: bytes) -> np.ndarray:
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        return matplotlib.image.imread(io.BytesIO(data), format="png")[..., :3]

    return read
