"""Train more: `nabla train --resume RUN --epochs N` continues a finished run to N epochs. The
schedule is planned again for N epochs and continues at the step reached, so with a schedule that
does not depend on the number of epochs, training 2 epochs and then 2 more is one 4-epoch run."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nabla import cli
from nabla.train import checkpoint, config, run

SETTINGS = {"hidden": [16], "augment": ["noise"]}  # dropout and noise: random streams carry over


@pytest.fixture
def no_report(monkeypatch):
    monkeypatch.setattr("nabla.report.build", lambda directory: os.path.join(directory, "-"))


def train(folder, epochs: int, schedule: str, resume: bool = False):
    cfg = config.resolve({**SETTINGS, "schedule": schedule, "epochs": epochs})
    return run.train(cfg, folder, resume=resume, verbose=0)


def last(folder) -> dict:
    return checkpoint.load(folder / "checkpoints" / "last.safetensors")


@pytest.mark.parametrize("schedule", ["constant", "inverse-sqrt"])
def test_train_more_equals_one_longer_run(tmp_path, schedule):
    longer = tmp_path / "longer"
    train(longer, 4, schedule)
    more = tmp_path / "more"
    train(more, 2, schedule)
    results = train(more, 4, schedule, resume=True)
    a, b = last(longer), last(more)
    assert a["epoch"] == b["epoch"] == 4 and a["step"] == b["step"]
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key], err_msg=key)
    assert a["history"]["steps"]["loss"].tolist() == b["history"]["steps"]["loss"].tolist()
    assert results["epochs_run"] == 4
    assert "epochs = 4" in (more / "config.toml").read_text()


def test_a_cosine_schedule_is_stretched_to_the_new_length(tmp_path):
    longer = tmp_path / "longer"
    train(longer, 4, "cosine")
    more = tmp_path / "more"
    train(more, 2, "cosine")
    seam = last(more)["step"]
    train(more, 4, "cosine", resume=True)
    a, b = (last(f)["history"]["steps"]["lr"] for f in (longer, more))
    assert b[seam - 1] < 1e-5  # the 2-epoch cosine had come down to 0
    np.testing.assert_array_equal(b[seam:], a[seam:])  # then the 4-epoch cosine, from the seam


def test_the_cli_trains_more_and_says_what_the_schedule_does(tmp_path, capsys, no_report):
    folder = tmp_path / "r"
    assert (
        cli.main(["train", "--out", str(folder), "--epochs", "1", "--hidden", "16", "--quiet"]) == 0
    )
    assert cli.main(["train", "--resume", str(folder), "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "training more: 1 -> 3 epochs" in out
    assert "cosine schedule" in out and "3 epochs" in out and "step " in out
    assert last(folder)["epoch"] == 3


def test_fewer_epochs_or_other_settings_are_refused(tmp_path, capsys, no_report):
    folder = tmp_path / "r"
    train(folder, 2, "constant")
    assert cli.main(["train", "--resume", str(folder), "--epochs", "1", "--quiet"]) == 2
    assert "--epochs 1" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(folder), "--epochs", "3", "--lr", "0.5"]) == 2
    assert "keeps its config.toml" in capsys.readouterr().err
    assert last(folder)["epoch"] == 2


def test_the_same_epochs_resume_a_finished_run_as_before(tmp_path, no_report):
    folder = tmp_path / "r"
    train(folder, 1, "constant")
    before = last(folder)
    assert cli.main(["train", "--resume", str(folder), "--quiet"]) == 0
    after = last(folder)
    assert after["step"] == before["step"]


def test_a_run_that_stopped_early_is_not_trained_more(tmp_path, capsys, no_report):
    folder = tmp_path / "r"
    train(folder, 2, "constant")
    path = folder / "checkpoints" / "last.safetensors"
    state = checkpoint.load(path)
    state["stop_training"] = True  # as EarlyStopping leaves it
    checkpoint.save(state, path)
    assert cli.main(["train", "--resume", str(folder), "--epochs", "4", "--quiet"]) == 2
    assert "stopped early" in capsys.readouterr().err
    assert "epochs = 2" in (folder / "config.toml").read_text()
