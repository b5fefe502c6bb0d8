"""Run folders never lose work: an existing run is not replaced without --overwrite, a run locks
its folder against a second process, and a run that fails before its first checkpoint leaves
nothing that looks like a resumable run."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from nabla import cli
from nabla.train import config, run

TINY = ["--epochs", "1", "--hidden", "16", "--quiet"]


def nabla(*args, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nabla", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def no_report(monkeypatch):
    """Runs without the HTML report (seconds of plotting that these tests do not look at)."""
    monkeypatch.setattr("nabla.report.build", lambda directory: os.path.join(directory, "-"))


def a_finished_run(folder) -> None:
    cfg = config.resolve({"epochs": 1, "hidden": [16]})
    run.train(cfg, folder, verbose=0)


def test_out_on_an_existing_run_is_refused_without_overwrite(tmp_path, capsys, no_report):
    out = tmp_path / "r"
    a_finished_run(out)
    before = (out / "checkpoints" / "last.safetensors").read_bytes()
    assert cli.main(["train", "--out", str(out), "--seed", "1", *TINY]) == 2
    error = capsys.readouterr().err
    assert str(out) in error and "--overwrite" in error and "--resume" in error
    assert (out / "checkpoints" / "last.safetensors").read_bytes() == before

    assert cli.main(["train", "--out", str(out), "--seed", "1", "--overwrite", *TINY]) == 0
    assert (out / "checkpoints" / "last.safetensors").read_bytes() != before
    assert "seed = 1" in (out / "config.toml").read_text()


def test_out_on_a_folder_of_other_files_is_refused_even_with_overwrite(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work\n")
    for extra in ([], ["--overwrite"]):
        assert cli.main(["train", "--out", str(out), *TINY, *extra]) == 2
        assert str(out) in capsys.readouterr().err
    assert os.listdir(out) == ["thesis.tex"]


def test_an_empty_existing_folder_is_fine(tmp_path, no_report):
    out = tmp_path / "empty"
    out.mkdir()
    assert cli.main(["train", "--out", str(out), *TINY]) == 0
    assert (out / "results.json").is_file()


def test_overwrite_and_resume_do_not_go_together(tmp_path, capsys, no_report):
    a_finished_run(tmp_path / "r")
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--overwrite", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_second_process_cannot_use_a_locked_run_folder(tmp_path):
    out = tmp_path / "r"
    command = [
        sys.executable,
        "-m",
        "nabla",
        "train",
        "--batch-size",
        "1",
        "--epochs",
        "100",
        "--hidden",
        "16",
        "--out",
        str(out),
        "--quiet",
    ]
    first = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoints" / "last.safetensors").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        for args in (["--out", out, "--overwrite", *TINY], ["--resume", out, "--quiet"]):
            second = nabla("train", *args)
            assert second.returncode == 2, second.stderr
            assert str(out) in second.stderr and "another run" in second.stderr
            assert f"process {first.pid}" in second.stderr
            assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on, its files untouched
        assert (out / "checkpoints" / "last.safetensors").exists()
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130


def test_the_lock_is_refused_in_process_too(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    with open(out / run.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        cfg = config.resolve({"epochs": 1, "hidden": [16]})
        with pytest.raises(run.RunFolderError, match="another run"):
            run.train(cfg, out, verbose=0)
    assert os.listdir(out) == [run.LOCK_FILE]


def test_a_run_that_fails_before_its_first_checkpoint_is_removed(tmp_path, capsys):
    out = tmp_path / "r"
    args = [
        "train",
        "--optimizer",
        "sgd",
        "--schedule",
        "constant",
        "--lr",
        "1e30",
        "--out",
        str(out),
        *TINY,
    ]
    assert cli.main(args) == 1
    assert "none was written" in capsys.readouterr().err
    assert not out.exists()


def test_resume_of_a_folder_without_a_checkpoint_says_what_to_do(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.toml").write_text(config.to_toml(config.resolve({"epochs": 1})))
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "no checkpoint" in error and f"--out {out} --overwrite" in error


def test_run_files_that_are_not_regular_files_are_refused_on_resume(tmp_path, no_report):
    out = tmp_path / "r"
    a_finished_run(out)
    (out / "metrics.jsonl").unlink()
    os.mkfifo(out / "metrics.jsonl")  # opening it would wait for a writer forever
    result = nabla("train", "--resume", out, "--quiet", timeout=60)
    assert result.returncode == 2 and "metrics.jsonl" in result.stderr, result.stderr
