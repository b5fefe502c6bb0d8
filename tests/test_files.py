"""nabla.files: the one way nabla writes a file, atomically."""

from __future__ import annotations

import os

import pytest

from nabla import files


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_written_file_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    files.write_text_atomic(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert names(tmp_path) == ["results.json"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old picture")
    with pytest.raises(ValueError, match="drawing failed"):
        with files.atomic_path(target, suffix=".png") as temporary:
            assert temporary.parent == tmp_path and temporary.name.startswith(".plot.png.")
            assert temporary.suffix == ".png" and temporary.exists()
            temporary.write_bytes(b"half a pic")
            raise ValueError("drawing failed")
    assert target.read_bytes() == b"old picture"
    assert names(tmp_path) == ["plot.png"]


def test_a_failing_rename_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "config.toml"

    def no_rename(source, destination):
        raise PermissionError("read-only target")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(PermissionError):
        files.write_text_atomic(target, "lr = 0.1\n")
    assert names(tmp_path) == []


def test_the_check_reads_the_file_after_it_reached_the_disk_and_can_abandon_it(
    tmp_path, monkeypatch
):
    target, events = tmp_path / "last.safetensors", []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])

    def check(temporary):
        events.append(("check", temporary.read_bytes()))
        raise RuntimeError("digest mismatch")

    with pytest.raises(RuntimeError, match="digest"):
        files.write_atomic(target, b"payload", before_replace=check)
    assert events == ["fsync", ("check", b"payload")]
    assert names(tmp_path) == []


def test_a_missing_folder_is_named_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere.* does not exist"):
        files.atomic_path(tmp_path / "nowhere" / "file.txt")


def test_permissions_are_those_of_a_plain_open(tmp_path):
    plain, atomic = tmp_path / "plain.txt", tmp_path / "atomic.txt"
    plain.write_text("x")
    files.write_text_atomic(atomic, "x")
    assert os.stat(atomic).st_mode == os.stat(plain).st_mode
