"""Every failure the `nabla` command can meet: one line on stderr (what failed, the file or
setting, what to do), exit status 2 (usage, config, data), 1 (a run that failed while training)
or 130 (Ctrl-C), and a traceback only with --debug. Each test runs the real command in a
subprocess, on the embedded digits with a tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nabla import cli, serialization
from nabla.train import checkpoint, config

TINY = ["--epochs", "1", "--hidden", "16", "--quiet"]

# a script that is the nabla command with the learning rate jumping to 1e30 after the first
# epoch (the schedule's step 50): the loss overflows during epoch 2, after a checkpoint
LR_SPIKE_AFTER_EPOCH_1 = """
import sys
from nabla.optim import schedules
constant = schedules.Constant.__call__
schedules.Constant.__call__ = lambda self, step: 1e30 if step >= 50 else constant(self, step)
from nabla import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def nabla(*args, env=None, timeout=120, script=None):
    command = [sys.executable, "-c", script] if script else [sys.executable, "-m", "nabla"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def one_line(result, status: int, *fragments: str) -> str:
    """The one line the command printed on stderr, after checking the exit status, that there
    is no traceback and that the line holds every fragment."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == status, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as `nabla train` leaves it, without training: its config.toml and an empty
    checkpoints/ (tests put the checkpoint they need there)."""
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    cfg = config.resolve({"epochs": 1, "hidden": [16]})
    (folder / "config.toml").write_text(config.to_toml(cfg))
    return folder


# --- data -----------------------------------------------------------------------------------------


def test_missing_data_names_nabla_data_the_folder_and_the_download_command(tmp_path):
    env = {
        "NABLA_DATA": "",
        "NABLA_CACHE": str(tmp_path / "cache"),
        "NABLA_MIRROR": "http://127.0.0.1:9",
    }  # fmt: skip  (port 9: connection refused at once)
    start = time.perf_counter()
    result = nabla("train", "--dataset", "mnist10k", "--out", tmp_path / "r", *TINY, env=env)
    seconds = time.perf_counter() - start
    one_line(result, 2, "NABLA_DATA", str(tmp_path / "cache" / "mnist"), "nabla download mnist")
    assert seconds < 10, f"an unreachable network took {seconds:.1f} s to fail"
    assert not (tmp_path / "r").exists()


def test_the_download_command_fails_in_one_line_without_a_network(tmp_path):
    env = {"NABLA_CACHE": str(tmp_path / "cache"), "NABLA_MIRROR": "http://127.0.0.1:9"}
    result = nabla("download", "mnist", "--root", tmp_path / "data", env=env)
    one_line(result, 2, str(tmp_path / "data" / "mnist"), "127.0.0.1:9")


def test_corrupt_data_file_is_named_with_what_to_do(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(b"\x1f\x8b not really gzip")
    env = {
        "NABLA_DATA": str(tmp_path / "data"),
        "NABLA_CACHE": str(tmp_path / "cache"),
        "NABLA_MIRROR": "http://127.0.0.1:9",
    }
    result = nabla("train", "--dataset", "mnist10k", "--out", tmp_path / "r", *TINY, env=env)
    one_line(result, 2, str(folder / "t10k-images-idx3-ubyte.gz"), "delete it")
    assert not (tmp_path / "r").exists()


# --- settings and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_an_infinite_learning_rate_is_a_config_error(tmp_path, value):
    result = nabla("train", f"--lr={value}", "--out", tmp_path / "r", *TINY)
    one_line(result, 2, "lr", "finite")
    assert not (tmp_path / "r").exists()


def test_config_path_that_is_a_folder_or_a_binary_file(tmp_path):
    one_line(nabla("train", tmp_path, *TINY), 2, str(tmp_path), "is a folder")
    binary = tmp_path / "weights.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    one_line(nabla("train", binary, *TINY), 2, str(binary), "UTF-8")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    one_line(nabla("train", fifo, *TINY, timeout=30), 2, str(fifo), "not a regular file")


def test_out_naming_a_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    one_line(nabla("train", "--out", target, *TINY), 2, str(target), "is a file")
    assert target.read_text() == "keep me\n"


# --- failures while training ----------------------------------------------------------------------


def test_out_of_memory_exits_1_with_advice(tmp_path):
    result = nabla("train", "--hidden", "4000000000", "--out", tmp_path / "r", "--quiet")
    one_line(result, 1, "out of memory", "--batch-size")
    assert not (tmp_path / "r").exists()


def test_divergence_names_the_step_the_lr_and_the_last_verified_checkpoint(tmp_path):
    out = tmp_path / "r"
    args = [
        "train",
        "--optimizer",
        "sgd",
        "--schedule",
        "constant",
        "--lr",
        "0.1",
        "--epochs",
        "3",
        "--hidden",
        "16",
        "--out",
        out,
        "--quiet",
    ]
    line = one_line(nabla(*args, script=LR_SPIKE_AFTER_EPOCH_1), 1, "diverged", "lr 1e+30")
    assert "epoch 2, step " in line
    assert f"last verified checkpoint: {out / 'checkpoints' / 'last.safetensors'} (epoch 1)" in line
    assert checkpoint.load(out / "checkpoints" / "last.safetensors")["epoch"] == 1


def test_divergence_before_the_first_checkpoint_leaves_no_run_folder(tmp_path):
    args = [
        "train",
        "--optimizer",
        "sgd",
        "--schedule",
        "constant",
        "--lr",
        "1e30",
        "--out",
        tmp_path / "r",
        *TINY,
    ]
    one_line(nabla(*args), 1, "diverged", "none was written", "removed")
    assert not (tmp_path / "r").exists()


def _start_slow_run(out):
    """A run of many slow epochs (batch size 1) in a subprocess."""
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
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_ctrl_c_stops_at_a_clean_point_and_prints_the_resume_command(tmp_path):
    out = tmp_path / "r"
    process = _start_slow_run(out)
    _wait_for(out / "checkpoints" / "last.safetensors", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    result = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    one_line(result, 130, "interrupted", f"nabla train --resume {out}")
    state = checkpoint.load(out / "checkpoints" / "last.safetensors")  # whole and verified
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] >= state["step"]  # every line whole: stopped between two steps


def test_ctrl_c_before_the_first_checkpoint_leaves_no_run_folder(tmp_path):
    out = tmp_path / "r"
    process = _start_slow_run(out)
    _wait_for(out / "config.toml", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    result = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    one_line(result, 130, "interrupted", "removed")
    assert not out.exists()


# --- checkpoints ----------------------------------------------------------------------------------


def _hostile(path, structure: str) -> None:
    """A checkpoint whose digest is right (whoever wrote it computed one) but whose structure
    is not a trainer's state."""
    serialization.save(
        {"x": np.zeros(2, np.float32)},
        path,
        metadata={
            "format": checkpoint.FORMAT,
            "format_version": str(checkpoint.VERSION),
            "nabla.state": structure,
        },
    )


@pytest.mark.parametrize(
    "structure",
    [
        "[" * 100_000 + "]" * 100_000,  # RecursionError while parsing it
        json.dumps({"model": {}}),  # KeyError: no optimizer, epoch, ...
        json.dumps({"a": [1, 2]}),
        "[1, 2, 3]",
        '{"model": ' * 500 + "{}" + "}" * 500,  # deep, but within what JSON parses
    ],
    ids=["recursion", "model-only", "no-trainer-keys", "a-list", "deep-dicts"],
)
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_hostile_checkpoint_metadata_is_refused(run_folder, structure, command):
    last = run_folder / "checkpoints" / "last.safetensors"
    _hostile(last, structure)
    args = ["evaluate", run_folder] if command == "evaluate" else ["train", "--resume", run_folder]
    one_line(nabla(*args), 2, str(last))


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_fifo_in_place_of_a_checkpoint_is_refused_not_opened(run_folder, command):
    last = run_folder / "checkpoints" / "last.safetensors"
    os.mkfifo(last)
    args = ["evaluate", run_folder] if command == "evaluate" else ["train", "--resume", run_folder]
    one_line(nabla(*args, timeout=30), 2, str(last), "not a regular file")


def test_evaluate_or_resume_something_that_is_no_run(tmp_path):
    one_line(nabla("evaluate", tmp_path / "nothing"), 2, str(tmp_path / "nothing"))
    one_line(nabla("train", "--resume", tmp_path), 2, str(tmp_path), "not a run folder")


# --- --debug and the mapping itself -------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path):
    result = nabla("train", "--lr", "inf", "--out", tmp_path / "r", "--quiet", "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_an_unexpected_error_is_one_line_asking_for_a_report(monkeypatch, capsys):
    def broken(args):
        raise TypeError("something nobody expected")

    monkeypatch.setitem(cli.COMMANDS, "report", broken)
    assert cli.main(["report", "somewhere"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "TypeError: something nobody expected" in error
    assert "--debug" in error
