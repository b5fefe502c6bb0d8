"""The nabla command end to end: a run folder, resume across processes, evaluate, report, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nabla import cli
from nabla.train import checkpoint

FAST = ["--epochs", "3", "--quiet"]


def nabla(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "nabla.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def test_every_command_has_help_with_examples(capsys):
    for command in ("train", "evaluate", "report", "sweep"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "example" in text, command
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "train" in capsys.readouterr().out


def test_default_train_writes_the_whole_run_folder(tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "--out", str(run), *FAST]) == 0
    for name in (
        "config.toml",
        "metrics.jsonl",
        "results.json",
        "report.html",
        "misclassified.safetensors",
        "checkpoints/last.safetensors",
        "checkpoints/best.safetensors",
        "plots/loss.png",
        "plots/accuracy.png",
        "plots/lr.png",
        "plots/grad_norm.png",
        "plots/confusion.png",
        "plots/misclassified.png",
    ):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert results["evaluations"]["test"]["accuracy"] > 0.9 and results["epochs_run"] == 3
    assert sum(map(sum, results["confusion"]["matrix"])) == 360
    assert "epochs = 3" in (run / "config.toml").read_text()


def test_flags_override_the_config_file(tmp_path):
    (tmp_path / "c.toml").write_text('optimizer = "sgd"\nlr = 0.5\nepochs = 1\nhidden = [32]\n')
    cli.main(
        ["train", str(tmp_path / "c.toml"), "--lr", "0.1", "--out", str(tmp_path / "r"), "--quiet"]
    )
    text = (tmp_path / "r" / "config.toml").read_text()
    assert 'optimizer = "sgd"' in text and "lr = 0.1 " in text and "hidden = [32]" in text


CRASH_AFTER_EPOCH_2 = """
import os, signal, sys
from nabla.train import trainer
save = trainer.Trainer.save_checkpoint
def save_then_die(self, path):
    save(self, path)
    if self.epoch == 2 and str(path).endswith("last.safetensors"):
        os.kill(os.getpid(), signal.SIGKILL)  # a crash right after the epoch-2 checkpoint
trainer.Trainer.save_checkpoint = save_then_die
from nabla import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_crashed_run_resumes_in_a_new_process_bit_identically(tmp_path):
    args = ["--epochs", "4", "--augment", "noise", "--quiet"]
    nabla("train", "--out", str(tmp_path / "straight"), *args)
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASH_AFTER_EPOCH_2,
            "train",
            "--out",
            str(tmp_path / "resumed"),
            *args,
        ],
        capture_output=True,
    )
    assert crashed.returncode == -9
    assert not (tmp_path / "resumed" / "results.json").exists()
    nabla("train", "--resume", str(tmp_path / "resumed"), "--quiet")
    a = checkpoint.load(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = checkpoint.load(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key], err_msg=key)
    for key, value in a["optimizer"]["state"].items():
        for name in value:
            np.testing.assert_array_equal(value[name], b["optimizer"]["state"][key][name])
    results = [
        json.loads((tmp_path / r / "results.json").read_text()) for r in ("straight", "resumed")
    ]
    assert results[0]["evaluations"] == results[1]["evaluations"]


def test_resume_refuses_changed_settings(tmp_path):
    cli.main(["train", "--out", str(tmp_path / "r"), "--epochs", "1", "--quiet"])
    result = nabla("train", "--resume", str(tmp_path / "r"), "--lr", "0.5", check=False)
    assert result.returncode == 2 and "keeps its config.toml" in result.stderr


def test_evaluate_and_report_commands(tmp_path, capsys):
    run = tmp_path / "r"
    cli.main(["train", "--out", str(run), *FAST])
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "results.json").read_text())["evaluations"]["test"]
    assert printed["accuracy"] == pytest.approx(saved["accuracy"])
    (run / "report.html").unlink()
    assert cli.main(["report", str(run)]) == 0 and (run / "report.html").is_file()


def test_bad_input_exits_2_with_the_valid_choices(tmp_path, capsys):
    assert cli.main(["train", "--optimizer", "adamm", "--out", str(tmp_path / "x")]) == 2
    assert "adamm' is not one of sgd, adagrad" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_evaluate_prints_a_table(tmp_path, capsys):
    run = tmp_path / "r"
    cli.main(["train", "--out", str(run), "--epochs", "1", "--hidden", "16", "--quiet"])
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--split", "dev", "--checkpoint", "best"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert str(run) in lines[0] and "best" in lines[0] and "dev" in lines[0]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:] if line.strip()}
    assert set(rows) == {"loss", "accuracy"}
    assert 0.5 < float(rows["accuracy"]) <= 1.0 and float(rows["loss"]) > 0


def test_one_epoch_is_said_without_an_s(tmp_path, capsys):
    cli.main(["train", "--out", str(tmp_path / "r"), "--epochs", "1", "--hidden", "16"])
    out = capsys.readouterr().out
    assert "1 epoch of batch 32" in out and "1 epochs" not in out


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_the_progress_bar_fits_the_terminal_without_cutting_numbers(columns):
    from tqdm import tqdm

    from nabla.train import history

    logs = {"lr": 1.2345e-3, "batch_size": 128, "grad_norm": 12.3456, "update_ratio": 1.5e-3}
    metrics = {"accuracy": 0.98765, "top5_accuracy": 0.99999}
    postfix = history.progress_postfix(0.123456, metrics, logs, columns)
    line = tqdm.format_meter(
        1234,
        1875,
        83.2,
        ncols=columns,
        prefix="epoch 12/100",
        postfix=postfix,
        bar_format=history.BAR_FORMAT,
    )
    assert len(line) <= columns, line
    assert line.rstrip().endswith(postfix.strip())  # every number whole, nothing cut
    assert "epoch 12/100" in line and "loss 0.1235" in line and "1234/1875" in line
    if columns >= 120:
        assert "lr 1.23e-03" in line
    everything = history.progress_postfix(0.123456, metrics, logs, None)  # a notebook: no limit
    assert "|g| 12.3" in everything and "bs 128" in everything and "Δθ/θ 1.5e-03" in everything
