"""Checkpoint details pinned by mutation testing (issue 21): the format metadata a checkpoint
carries, the file names of the kept and the set-aside checkpoints, how the previous checkpoint is
kept (hard link or copy, no temporary file left), every refusal of :func:`checkpoint.load` with a
message naming the file and the value, the type checks of a trainer's state at their boundaries,
and the random streams a checkpoint records and puts back."""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np
import pytest

import nabla as nb
from nabla import nn, optim, random
from nabla.serialization import CheckpointError, load_metadata
from nabla.state import save_state
from nabla.train import Trainer, checkpoint


def small_trainer(model=None, **kwargs):
    nb.manual_seed(0)
    model = model or nn.Linear(3, 2)
    return Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), **kwargs)


def state(**changes):
    base = small_trainer().state_dict()
    base.update(changes)
    return base


# --- what save writes -----------------------------------------------------------------------------


def test_a_checkpoint_names_its_format_and_version(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(state(step=3), path)
    metadata = load_metadata(path)
    assert metadata["format"] == "nabla.checkpoint" and metadata["format_version"] == "2"
    assert checkpoint.load(path)["step"] == 3
    assert sorted(os.listdir(tmp_path)) == ["c.safetensors"]


def test_save_keeps_no_previous_file_by_default(tmp_path):
    path = tmp_path / "last.safetensors"
    checkpoint.save(state(step=1), str(path))
    checkpoint.save(state(step=2), str(path))
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]
    checkpoint.save(state(step=3), path, keep_previous=True)
    assert sorted(os.listdir(tmp_path)) == ["last.previous.safetensors", "last.safetensors"]
    assert checkpoint.load(tmp_path / "last.previous.safetensors")["step"] == 2


def test_keep_previous_without_an_old_file_keeps_nothing(tmp_path):
    path = tmp_path / "last.safetensors"
    checkpoint.save(state(step=1), path, keep_previous=True)
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]


def test_previous_path_inserts_previous_before_the_extension(tmp_path):
    assert checkpoint.previous_path("runs/last.safetensors") == "runs/last.previous.safetensors"
    assert checkpoint.previous_path(tmp_path / "a.b") == str(tmp_path / "a.previous.b")
    assert checkpoint.previous_path("noext") == "noext.previous"


def test_a_bad_read_back_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    checkpoint.save(state(step=1), path)

    def unreadable(written):
        raise CheckpointError(f"{written}: digest mismatch")

    monkeypatch.setattr(checkpoint, "load_state", unreadable)
    with pytest.raises(CheckpointError) as info:
        checkpoint.save(state(step=2), path, keep_previous=True)
    message = str(info.value)
    assert message.startswith(f"{path}: the checkpoint read back from disk is not what was written")
    assert message.endswith(": digest mismatch); the previous checkpoint was left in place")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]


# --- keeping the previous file --------------------------------------------------------------------


def test_keep_hard_links_where_it_can(tmp_path):
    path, previous = tmp_path / "last.safetensors", tmp_path / "last.previous.safetensors"
    path.write_bytes(b"old checkpoint")
    checkpoint._keep(str(path), str(previous))
    assert previous.read_bytes() == b"old checkpoint"
    assert os.stat(path).st_ino == os.stat(previous).st_ino
    assert sorted(os.listdir(tmp_path)) == ["last.previous.safetensors", "last.safetensors"]


def test_keep_copies_without_hard_links_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path, previous = tmp_path / "last.safetensors", tmp_path / "last.previous.safetensors"
    path.write_bytes(b"old checkpoint")
    previous.write_bytes(b"older")
    made = []

    def no_links(source, target):
        made.append(target)
        raise OSError("no hard links on this filesystem")

    monkeypatch.setattr(os, "link", no_links)
    checkpoint._keep(str(path), str(previous))
    assert previous.read_bytes() == b"old checkpoint"
    assert os.stat(path).st_ino != os.stat(previous).st_ino
    assert sorted(os.listdir(tmp_path)) == ["last.previous.safetensors", "last.safetensors"]
    (tmp,) = made  # hidden, beside the target, named after it, as write_atomic names its own
    assert os.path.dirname(tmp) == str(tmp_path)
    assert re.fullmatch(r"\.last\.previous\.safetensors\.[0-9a-f]{12}\.tmp", os.path.basename(tmp))


def test_keep_removes_its_temporary_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    path.write_bytes(b"old checkpoint")

    def failing_replace(source, target):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        checkpoint._keep(str(path), str(tmp_path / "last.previous.safetensors"))
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]


# --- resume_from ----------------------------------------------------------------------------------


def test_resume_from_an_intact_checkpoint_loads_it_silently(tmp_path):
    path = tmp_path / "last.safetensors"
    checkpoint.save(state(epoch=2), path)
    checkpoint.save(state(epoch=1), checkpoint.previous_path(path))
    trainer = small_trainer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checkpoint.resume_from(trainer, path) == str(path)
    assert trainer.epoch == 2


def test_resume_from_a_missing_file_falls_back_and_says_so(tmp_path):
    path = tmp_path / "last.safetensors"
    checkpoint.save(state(epoch=1), checkpoint.previous_path(path))
    trainer = small_trainer()
    with pytest.warns(UserWarning) as caught:
        loaded = checkpoint.resume_from(trainer, path)
    assert loaded == str(tmp_path / "last.previous.safetensors") and trainer.epoch == 1
    (warning,) = caught
    assert str(warning.message) == (
        f"{path} is missing; resuming from last.previous.safetensors (epoch 1) instead"
    )
    assert sorted(os.listdir(tmp_path)) == ["last.previous.safetensors"]


def test_resume_from_a_damaged_file_sets_it_aside(tmp_path):
    path = tmp_path / "last.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    checkpoint.save(state(epoch=1), checkpoint.previous_path(path))
    with pytest.warns(UserWarning) as caught:
        checkpoint.resume_from(small_trainer(), path)
    message = str(caught[0].message)
    assert (
        str(path) in message.split(";")[0] and "resuming from last.previous.safetensors" in message
    )
    assert message.endswith("; the damaged file is kept as last.corrupt.safetensors")
    assert (tmp_path / "last.corrupt.safetensors").read_bytes() == b"not a checkpoint at all"
    assert not path.exists()


def test_resume_from_nothing_names_every_problem(tmp_path):
    path = tmp_path / "last.safetensors"
    with pytest.raises(CheckpointError) as info:
        checkpoint.resume_from(small_trainer(), path)
    assert str(info.value) == f"no verified checkpoint to resume from: {path} is missing"
    checkpoint.previous_path(path)
    (tmp_path / "last.previous.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as info:
        checkpoint.resume_from(small_trainer(), path)
    message = str(info.value)
    assert message.startswith(f"no verified checkpoint to resume from: {path} is missing; ")
    assert "last.previous.safetensors" in message


def test_set_aside_of_a_missing_file_is_none(tmp_path):
    assert checkpoint._set_aside(str(tmp_path / "gone.safetensors")) is None
    (tmp_path / "x.safetensors").write_bytes(b"1")
    assert checkpoint._set_aside(str(tmp_path / "x.safetensors")) == "x.corrupt.safetensors"
    assert os.listdir(tmp_path) == ["x.corrupt.safetensors"]


# --- load's refusals ------------------------------------------------------------------------------


def write(tmp_path, metadata, obj=None):
    path = tmp_path / "c.safetensors"
    save_state(state() if obj is None else obj, path, metadata=metadata)
    return path


@pytest.mark.parametrize("fmt", [None, "nabla.weights", "NABLA.CHECKPOINT"])
def test_load_refuses_another_format_naming_it(tmp_path, fmt):
    metadata = {"format_version": "2"} | ({} if fmt is None else {"format": fmt})
    path = write(tmp_path, metadata)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(info.value) == (
        f"{path}: not a nabla training checkpoint (metadata format is {fmt!r}, expected "
        "'nabla.checkpoint'); model weights alone load with nb.load and model.load_state_dict"
    )


@pytest.mark.parametrize("version", ["3", "10", "2a", "", "-1", "²", "\u0661"])  # non-ASCII digits
def test_load_refuses_versions_it_cannot_read(tmp_path, version):
    path = write(tmp_path, {"format": "nabla.checkpoint", "format_version": version})
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(info.value).startswith(f"{path}: checkpoint format version {version} is not")
    assert "(it reads versions up to 2)" in str(info.value)


def test_load_without_a_version_says_so(tmp_path):
    path = write(tmp_path, {"format": "nabla.checkpoint"})
    with pytest.raises(CheckpointError, match=r"format version \? is not supported"):
        checkpoint.load(path)


@pytest.mark.parametrize("version", ["0", "1", "2"])
def test_load_reads_every_version_up_to_the_current_one(tmp_path, version):
    path = write(tmp_path, {"format": "nabla.checkpoint", "format_version": version})
    assert checkpoint.load(path)["epoch"] == 0


def strip_digest(path, version):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    del header["__metadata__"]["nabla.sha256"]
    header["__metadata__"]["format_version"] = version
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def test_only_version_one_and_older_may_lack_a_digest(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(state(), path)
    strip_digest(path, "2")
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(info.value) == (
        f"{path}: has no digest, which every version 2 checkpoint carries: its header was "
        "changed after it was written; use an intact copy"
    )
    for version in ("1", "0"):
        checkpoint.save(state(), path)
        strip_digest(path, version)
        with pytest.warns(UserWarning) as caught:
            checkpoint.load(path)
        (warning,) = caught
        assert warning.category is UserWarning and str(warning.message) == (
            f"{path}: a version {version} checkpoint, written by an older nabla without a "
            "digest, so its content cannot be verified; it is loaded as it is (the checkpoints "
            "written from now on carry one)"
        )


class Warnings:
    """Stands in for the ``warnings`` module: records each warning's category and stacklevel.
    (The warning's file cannot be compared with this one under mutation testing: mutmut calls
    every function through two frames of its own.)"""

    def __init__(self):
        self.calls = []

    def warn(self, message, category=None, stacklevel=1):
        self.calls.append((category or UserWarning, stacklevel))  # None is UserWarning


def test_warnings_point_at_the_caller_of_load_and_resume_from(tmp_path, monkeypatch):
    recorder = Warnings()
    monkeypatch.setattr(checkpoint, "warnings", recorder)
    path = tmp_path / "last.safetensors"
    checkpoint.save(state(epoch=1), checkpoint.previous_path(path))
    checkpoint.resume_from(small_trainer(), path)
    checkpoint.save(state(), path)
    strip_digest(path, "1")
    checkpoint.load(path)
    assert recorder.calls == [(UserWarning, 2), (UserWarning, 2)]


# --- a trainer's state ----------------------------------------------------------------------------


def test_a_trainers_state_passes_as_it_is():
    good = state()
    assert checkpoint.check_state(good, "p") is good
    assert checkpoint.check_state(state(train_loader={"epoch": 0}, elapsed=1), "p")["elapsed"] == 1
    assert checkpoint.check_state(state(epoch=0, step=0), "p")["epoch"] == 0


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"epoch": True}, "'epoch' is a bool"),
        ({"step": 1.0}, "'step' is a float"),
        ({"elapsed": "1"}, "'elapsed' is a str"),
        ({"stop_training": 0}, "'stop_training' is a int"),
        ({"model": []}, "'model' is a list"),
        ({"train_loader": 3}, "'train_loader' is a int"),
        ({"callbacks": {}}, "'callbacks' is a dict"),
        ({"epoch": -1}, "'epoch' is negative"),
        ({"step": -1}, "'step' is negative"),
        ({"model": {"w": 1.0}}, "model entry 'w' is not an array"),
    ],
)
def test_a_bad_entry_is_named(changes, problem):
    with pytest.raises(CheckpointError) as info:
        checkpoint.check_state(state(**changes), "ckpt.safetensors")
    assert str(info.value) == f"ckpt.safetensors: not a trainer's state: {problem}"


def test_every_problem_is_listed():
    bad = state(epoch=-1, step=-2)
    with pytest.raises(CheckpointError) as info:
        checkpoint.check_state(bad, "p")
    assert str(info.value) == "p: not a trainer's state: 'epoch' is negative; 'step' is negative"
    bad = state(step="0")
    del bad["history"], bad["random"]
    with pytest.raises(CheckpointError) as info:
        checkpoint.check_state(bad, "p")
    assert str(info.value) == "p: not a trainer's state: no 'random'; no 'history'; 'step' is a str"


def test_negative_counters_and_bad_model_entries_are_listed_together():
    with pytest.raises(CheckpointError) as info:
        checkpoint.check_state(state(step=-1, model={"w": [1.0]}), "p")
    assert (
        str(info.value)
        == "p: not a trainer's state: 'step' is negative; model entry 'w' is not an array"
    )


def test_load_names_the_file_whose_state_is_not_a_trainers(tmp_path):
    path = write(tmp_path, {"format": "nabla.checkpoint", "format_version": "2"}, {"epoch": 1})
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(info.value).startswith(f"{path}: not a trainer's state: no 'model'")


def test_a_state_that_is_not_a_dict_is_named():
    with pytest.raises(CheckpointError) as info:
        checkpoint.check_state([1, 2], "p.safetensors")
    assert str(info.value) == "p.safetensors: holds a JSON list, not a trainer's state"


# --- random streams -------------------------------------------------------------------------------


def test_random_state_records_the_seed_the_default_and_every_module_stream():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5, generator=np.random.default_rng(4)))
    nb.manual_seed(11)
    random.default_generator().random(3)
    recorded = checkpoint.random_state(model)
    assert set(recorded) == {"seed", "default", "modules"} and recorded["seed"] == 11
    assert json.loads(recorded["default"]) == random.default_generator().bit_generator.state
    assert list(recorded["modules"]) == ["1"]
    expected = np.random.default_rng(4).bit_generator.state
    assert json.loads(recorded["modules"]["1"]) == expected


def test_set_random_state_puts_every_stream_back():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5, generator=np.random.default_rng(4)))
    nb.manual_seed(11)
    recorded = checkpoint.random_state(model)
    default_next, module_next = random.default_generator().random(), model[1].generator.random()
    nb.manual_seed(99)
    model[1].generator.random(5)
    checkpoint.set_random_state(model, recorded)
    assert random.initial_seed() == 11
    assert random.default_generator().random() == default_next
    assert model[1].generator.random() == module_next


def test_a_stream_for_a_module_without_a_generator_is_refused():
    with_gen = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5, generator=np.random.default_rng(4)))
    recorded = checkpoint.random_state(with_gen)
    without = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with pytest.raises(CheckpointError) as info:
        checkpoint.set_random_state(without, recorded)
    assert str(info.value) == "checkpoint has a random stream for module '1', which has none here"


def test_a_stream_for_a_module_the_model_lacks_is_refused():
    recorded = {**checkpoint.random_state(nn.Linear(2, 2)), "modules": {"3": "{}"}}
    with pytest.raises(CheckpointError, match="random stream for module '3', which has none here"):
        checkpoint.set_random_state(nn.Sequential(nn.Linear(2, 2)), recorded)


def test_a_stream_of_another_bit_generator_is_refused():
    generator = np.random.Generator(np.random.MT19937(0))
    text = checkpoint._generator_state(np.random.default_rng(0))
    with pytest.raises(CheckpointError) as info:
        checkpoint._restore(generator, text)
    assert str(info.value) == "checkpoint random state is for PCG64, the generator here is MT19937"
