"""Training checkpoints: one safetensors file with JSON metadata, a format version and a digest.

:func:`save` stores a trainer's state (``Trainer.state_dict()``: arrays as safetensors tensors,
the rest as JSON, see :func:`nabla.save_state`) with ``{"format": "nabla.checkpoint",
"format_version": "2"}`` in the metadata and the sha256 digest every nabla file carries (see
:mod:`nabla.serialization`). Writing is atomic and verified: the bytes go to a temporary file,
which is fsynced, read back and checked against its digest before it is renamed over the old
checkpoint, so a crash or a bad write leaves the previous checkpoint in place. With
``keep_previous`` the file being replaced stays beside it as ``<name>.previous.safetensors``
(``last.previous.safetensors``): a checkpoint damaged later still has a predecessor to resume from.

:func:`load` refuses a file that is not a nabla checkpoint, of a newer version, whose content does
not match its digest, or whose state is not a trainer's, with a message naming the file and
saying which. Version 1 files (written before digests) load with a warning that they cannot be
verified. Nothing is ever unpickled.

Random streams: ``random_state(model)`` records the seed and state of nabla's default generator
and of every module that owns a generator (``Dropout(generator=...)``), keyed by module name;
``set_random_state`` puts them back.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import warnings
from typing import TYPE_CHECKING

import numpy as np

from .. import random
from ..files import write_atomic
from ..serialization import CheckpointError, has_digest, load_metadata
from ..state import load_state, state_to_bytes

if TYPE_CHECKING:
    from ..nn import Module
    from .trainer import Trainer

FORMAT, VERSION = "nabla.checkpoint", 2
UNVERIFIED = 1  # the last format version without a digest


def save(state: dict, path: str | os.PathLike[str], keep_previous: bool = False) -> None:
    """Write a trainer state to ``path`` as a versioned checkpoint: atomically, and verified on
    disk before it replaces the old file (kept as :func:`previous_path` with ``keep_previous``)."""
    path = os.fspath(path)
    payload = state_to_bytes(state, metadata={"format": FORMAT, "format_version": str(VERSION)})
    write_atomic(path, payload, before_replace=lambda tmp: _replacing(path, tmp, keep_previous))


def previous_path(path: str | os.PathLike[str]) -> str:
    """Where the checkpoint that ``path`` replaced is kept: ``last.safetensors`` ->
    ``last.previous.safetensors``."""
    base, extension = os.path.splitext(os.fspath(path))
    return f"{base}.previous{extension}"


def _replacing(path: str, written: str, keep_previous: bool) -> None:
    """Read the new checkpoint back from disk and check it; then keep the old one aside."""
    try:
        load_state(written)
    except CheckpointError as err:
        raise CheckpointError(
            f"{path}: the checkpoint read back from disk is not what was written ({err}); the "
            "previous checkpoint was left in place"
        ) from None
    if keep_previous and os.path.isfile(path):
        _keep(path, previous_path(path))


def _keep(path: str, previous: str) -> None:
    """Make ``previous`` a copy of ``path`` atomically (a hard link where the filesystem has
    them), so that at every moment both names hold a whole checkpoint."""
    folder, name = os.path.split(previous)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here
            shutil.copyfile(path, tmp)
        os.replace(tmp, previous)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def resume_from(trainer: Trainer, path: str | os.PathLike[str]) -> str:
    """Load the checkpoint ``path`` into ``trainer``, or should it fail verification (or be
    missing), the one it replaced (:func:`previous_path`), with a warning saying so; the damaged
    file is renamed ``<name>.corrupt.safetensors``, where nothing loads or replaces it. Returns
    the path loaded; a CheckpointError naming every file and its problem when neither loads."""
    path = os.fspath(path)
    problems = [] if os.path.lexists(path) else [f"{path} is missing"]
    for candidate in (path, previous_path(path)):
        if not os.path.lexists(candidate):
            continue
        try:
            trainer.load_checkpoint(candidate)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if candidate != path:
            kept = _set_aside(path)
            warnings.warn(
                f"{problems[0]}; resuming from {os.path.basename(candidate)} (epoch "
                f"{trainer.epoch}) instead"
                + (f"; the damaged file is kept as {kept}" if kept else ""),
                stacklevel=2,  # a UserWarning (the default category)
            )
        return candidate
    raise CheckpointError("no verified checkpoint to resume from: " + "; ".join(problems))


def _set_aside(path: str) -> str | None:
    if not os.path.lexists(path):
        return None
    base, extension = os.path.splitext(path)
    os.replace(path, f"{base}.corrupt{extension}")
    return os.path.basename(f"{base}.corrupt{extension}")


def load(path: str | os.PathLike[str]) -> dict:
    """Read a checkpoint written by :func:`save`, checking its format, version, digest and that
    it holds a trainer's state."""
    metadata = load_metadata(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a nabla training checkpoint (metadata format is "
            f"{metadata.get('format')!r}, expected {FORMAT!r}); model weights alone load with "
            "nb.load and model.load_state_dict"
        )
    version = metadata.get("format_version", "?")
    if not (version.isascii() and version.isdigit()) or int(version) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported by this nabla "
            f"(it reads versions up to {VERSION}); upgrade nabla to read it"
        )
    if not has_digest(path):
        if int(version) > UNVERIFIED:
            raise CheckpointError(
                f"{path}: has no digest, which every version {version} checkpoint carries: its "
                "header was changed after it was written; use an intact copy"
            )
        warnings.warn(
            f"{path}: a version {version} checkpoint, written by an older nabla without a digest, "
            "so its content cannot be verified; it is loaded as it is (the checkpoints written "
            "from now on carry one)",  # a UserWarning (the default category)
            stacklevel=2,
        )
    return check_state(load_state(path), path)


# the entries of Trainer.state_dict() and the types they must have
STATE_TYPES = {
    "model": dict,
    "optimizer": dict,
    "train_loader": (dict, type(None)),
    "random": dict,
    "callbacks": list,
    "callback_types": list,
    "history": dict,
    "epoch": int,
    "step": int,
    "elapsed": (int, float),
    "stop_training": bool,
}


def check_state(state: object, path: str | os.PathLike[str]) -> dict:
    """``state`` if it has the entries of a trainer's state with the right types, else a
    CheckpointError naming the file and every entry that is missing or of the wrong type."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a JSON {type(state).__name__}, not a trainer's state")
    problems = [f"no {key!r}" for key in STATE_TYPES if key not in state]
    for key, kind in STATE_TYPES.items():
        value = state.get(key)
        if key in state and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            problems.append(f"{key!r} is a {type(value).__name__}")
    if not problems:  # every entry has its type: now check the values
        problems = [f"{key!r} is negative" for key in ("epoch", "step") if state[key] < 0]
        problems += [
            f"model entry {k!r} is not an array"
            for k, v in state["model"].items()
            if not isinstance(v, np.ndarray)
        ]
    if problems:
        raise CheckpointError(f"{path}: not a trainer's state: {'; '.join(problems)}")
    return state


def _generator_state(generator: np.random.Generator) -> str:
    # PCG64's state holds 128-bit integers: JSON text keeps them exact.
    return json.dumps(generator.bit_generator.state)


def _restore(generator: np.random.Generator, text: str) -> None:
    state = json.loads(text)
    if state["bit_generator"] != type(generator.bit_generator).__name__:
        raise CheckpointError(
            f"checkpoint random state is for {state['bit_generator']}, the generator here is "
            f"{type(generator.bit_generator).__name__}"
        )
    generator.bit_generator.state = state


def random_state(model: Module) -> dict:
    """The seed and the state of every random stream a training run draws from."""
    modules = {
        name: _generator_state(m.generator)
        for name, m in model.named_modules()
        if isinstance(getattr(m, "generator", None), np.random.Generator)
    }
    return {
        "seed": random.initial_seed(),
        "default": _generator_state(random.default_generator()),
        "modules": modules,
    }


def set_random_state(model: Module, state: dict) -> None:
    """Put back the streams recorded by :func:`random_state`."""
    random.manual_seed(int(state["seed"]))
    _restore(random.default_generator(), state["default"])
    owners = dict(model.named_modules())
    for name, text in state["modules"].items():
        generator = getattr(owners.get(name), "generator", None)
        if not isinstance(generator, np.random.Generator):
            raise CheckpointError(
                f"checkpoint has a random stream for module {name!r}, which has none here"
            )
        _restore(generator, text)
