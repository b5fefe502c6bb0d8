"""Training checkpoints: one safetensors file with JSON metadata and a format version.

:func:`save` stores a trainer's state (``Trainer.state_dict()``: arrays as safetensors tensors,
the rest as JSON, see :func:`nabla.save_state`) with ``{"format": "nabla.checkpoint",
"format_version": "1"}`` in the metadata; :func:`load` refuses a file that is not a nabla
checkpoint, or of a newer version, with a message saying which. Files are written to a temporary
name and renamed, so a crash while writing leaves the previous checkpoint loadable. Nothing is
ever unpickled.

Random streams: ``random_state(model)`` records the seed and state of nabla's default generator
and of every module that owns a generator (``Dropout(generator=...)``), keyed by module name;
``set_random_state`` puts them back.
"""

from __future__ import annotations

import json

import numpy as np

from .. import random
from ..serialization import CheckpointError, load_metadata
from ..state import load_state, save_state

FORMAT, VERSION = "nabla.checkpoint", 1


def save(state: dict, path) -> None:
    """Write a trainer state to ``path`` as a versioned checkpoint (atomically)."""
    save_state(state, path, metadata={"format": FORMAT, "format_version": str(VERSION)})


def load(path) -> dict:
    """Read a checkpoint written by :func:`save`, checking its format and version."""
    metadata = load_metadata(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a nabla training checkpoint (metadata format is "
            f"{metadata.get('format')!r}, expected {FORMAT!r}); model weights alone load with "
            "nb.load and model.load_state_dict"
        )
    version = metadata.get("format_version", "?")
    if not version.isdigit() or int(version) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported by this nabla "
            f"(it reads versions up to {VERSION}); upgrade nabla to read it"
        )
    return load_state(path)


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


def random_state(model) -> dict:
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


def set_random_state(model, state: dict) -> None:
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
