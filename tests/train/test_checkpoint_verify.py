"""Verified checkpoints: a sha256 digest in the metadata, checked on every load; the previous
checkpoint kept until the new one is verified on disk, and resume falling back to it; files that
are not regular files refused without being opened."""

from __future__ import annotations

import json
import os
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest

import nabla as nb
from nabla import nn, optim
from nabla.serialization import CheckpointError
from nabla.train import Trainer, checkpoint, config, run


def flip_bit(path, offset_from_end: int) -> None:
    """Flip one bit of the byte ``offset_from_end`` bytes before the end of the file (inside the
    tensor data, which is the end of a safetensors file)."""
    with open(path, "r+b") as f:
        f.seek(-offset_from_end, os.SEEK_END)
        byte = f.read(1)[0]
        f.seek(-offset_from_end, os.SEEK_END)
        f.write(bytes([byte ^ 0x10]))


def header_and_data(path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_header(path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def small_trainer(**kwargs):
    nb.manual_seed(0)
    model = nn.Linear(3, 2)
    return Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), **kwargs)


# --- the digest -----------------------------------------------------------------------------------


def test_a_flipped_bit_in_tensor_data_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    nb.save({"w": np.arange(100, dtype=np.float32)}, path)
    flip_bit(path, 10)
    with pytest.raises(CheckpointError, match="digest") as info:
        nb.load(path)
    assert str(path) in str(info.value)


def test_a_flipped_bit_in_a_training_checkpoint_is_refused(tmp_path):
    trainer = small_trainer()
    path = tmp_path / "last.safetensors"
    trainer.save_checkpoint(path)
    for offset in (1, 9, 17):  # anywhere in the data section
        good = path.read_bytes()
        flip_bit(path, offset)
        with pytest.raises(CheckpointError, match="digest"):
            checkpoint.load(path)
        path.write_bytes(good)
    checkpoint.load(path)


def test_a_changed_metadata_value_is_refused(tmp_path):
    path = tmp_path / "last.safetensors"
    small_trainer().save_checkpoint(path)
    header, data = header_and_data(path)
    structure = json.loads(header["__metadata__"]["nabla.state"])
    structure["epoch"] = 7  # a plausible edit: it parses, and only the digest can tell
    header["__metadata__"]["nabla.state"] = json.dumps(structure)
    write_header(path, header, data)
    with pytest.raises(CheckpointError, match="digest"):
        checkpoint.load(path)


def test_the_digest_is_not_user_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    nb.save({"w": np.ones(2, np.float32)}, path, metadata={"k": "v"})
    assert nb.load_metadata(path) == {"k": "v"}
    with pytest.raises(ValueError, match="reserved"):
        nb.save({"w": np.ones(2)}, path, metadata={"nabla.sha256": "0" * 64})


def test_a_current_checkpoint_without_its_digest_is_refused(tmp_path):
    path = tmp_path / "last.safetensors"
    small_trainer().save_checkpoint(path)
    header, data = header_and_data(path)
    del header["__metadata__"]["nabla.sha256"]
    write_header(path, header, data)
    with pytest.raises(CheckpointError, match="no digest"):
        checkpoint.load(path)


def test_an_older_checkpoint_without_a_digest_loads_with_a_warning(tmp_path):
    path = tmp_path / "old.safetensors"
    small_trainer().save_checkpoint(path)
    header, data = header_and_data(path)
    del header["__metadata__"]["nabla.sha256"]
    header["__metadata__"]["format_version"] = "1"
    write_header(path, header, data)
    with pytest.warns(UserWarning, match="cannot be verified"):
        state = checkpoint.load(path)
    assert state["epoch"] == 0


# --- the previous checkpoint ----------------------------------------------------------------------


def test_the_previous_checkpoint_is_kept_beside_the_new_one(tmp_path):
    trainer = small_trainer(keep_previous_checkpoint=True)
    path = tmp_path / "last.safetensors"
    trainer.step = 1
    trainer.save_checkpoint(path)
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]
    trainer.step = 2
    trainer.save_checkpoint(path)
    assert sorted(os.listdir(tmp_path)) == ["last.previous.safetensors", "last.safetensors"]
    assert checkpoint.load(tmp_path / "last.previous.safetensors")["step"] == 1
    assert checkpoint.load(path)["step"] == 2


def test_a_checkpoint_that_fails_verification_is_never_renamed_into_place(tmp_path, monkeypatch):
    trainer = small_trainer(keep_previous_checkpoint=True)
    path = tmp_path / "last.safetensors"
    trainer.save_checkpoint(path)
    before = path.read_bytes()
    real_fsync = os.fsync

    def corrupting_fsync(fd):  # a disk that flips a bit of the new file on its way
        if os.path.isfile(f"/proc/self/fd/{fd}") and os.fstat(fd).st_size:
            flip_bit(Path(f"/proc/self/fd/{fd}"), 1)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", corrupting_fsync)
    trainer.step = 5
    with pytest.raises(CheckpointError, match="digest") as info:
        trainer.save_checkpoint(path)
    assert str(path) in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]  # no temporary file left


def _run(tmp_path, name: str, epochs: int = 2):
    cfg = config.resolve({"epochs": epochs, "hidden": [16], "schedule": "constant"})
    run.train(cfg, tmp_path / name, verbose=0)
    return tmp_path / name


def test_resume_falls_back_to_the_previous_checkpoint_and_says_so(tmp_path, capsys):
    straight = _run(tmp_path, "straight")
    folder = _run(tmp_path, "flipped")
    checkpoints = folder / "checkpoints"
    assert checkpoint.load(checkpoints / "last.previous.safetensors")["epoch"] == 1
    flip_bit(checkpoints / "last.safetensors", 100)
    cfg = run.load_config(folder)
    with pytest.warns(UserWarning) as caught:
        run.train(cfg, folder, resume=True, verbose=0)
    message = " ".join(str(w.message) for w in caught)
    assert "last.safetensors" in message and "digest" in message
    assert "resuming from last.previous.safetensors (epoch 1)" in message
    assert (checkpoints / "last.corrupt.safetensors").exists()  # kept for a look, not trusted
    a = checkpoint.load(straight / "checkpoints" / "last.safetensors")
    b = checkpoint.load(checkpoints / "last.safetensors")
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key], err_msg=key)


def test_resume_with_no_verified_checkpoint_left_is_refused(tmp_path):
    folder = _run(tmp_path, "r")
    for name in ("last.safetensors", "last.previous.safetensors"):
        flip_bit(folder / "checkpoints" / name, 100)
    with pytest.raises(CheckpointError) as info:
        run.train(run.load_config(folder), folder, resume=True, verbose=0)
    assert "last.safetensors" in str(info.value) and "last.previous.safetensors" in str(info.value)


# --- files that are not regular files -------------------------------------------------------------


@pytest.fixture
def alarm():
    """Fail instead of hanging should anything open a FIFO and wait for a writer."""

    def hung(*_):
        raise TimeoutError("opened a FIFO and waited for a writer")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_fifo_or_a_folder_is_refused_without_being_opened(tmp_path, alarm):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    for path in (fifo, folder):
        for load in (nb.load, nb.load_metadata, checkpoint.load):
            with pytest.raises(CheckpointError, match="not a regular file"):
                load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(config.ConfigError, match="not a regular file"):
            config.read_toml(fifo)
