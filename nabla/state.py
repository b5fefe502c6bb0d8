"""Nested state in one safetensors file: ``nb.save_state(obj, path)`` and ``nb.load_state(path)``.

A training checkpoint holds more than tensors: an optimizer's ``state_dict`` nests dicts and
lists of arrays, step counts, hyperparameters and schedule configs; a loader has its epoch and
position. ``save_state`` walks such a structure, stores every array (or Tensor) as one safetensors
tensor named by its path (``state/0.weight/exp_avg``), and keeps the rest of the structure, with
the arrays replaced by references, as JSON in the file's metadata. Loading reverses it. The file
is written atomically and read without unpickling anything, like ``nb.save``.

Allowed leaves: arrays and Tensors of nabla's dtypes, and JSON values (str, int, float, bool,
None); tuples come back as lists. A callable (a lambda used as a learning rate, say) cannot be
stored: give it a schedule class with ``get_config`` instead.

>>> import os, tempfile
>>> import numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "state.safetensors")
>>> save_state({"step": 3, "buffers": {"v": np.ones(2)}, "lr": [0.1, None]}, path)
>>> load_state(path)["buffers"]["v"].tolist(), load_state(path)["lr"]
([1.0, 1.0], [0.1, None])
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .autograd.tensor import Tensor
from .files import write_atomic
from .serialization import CheckpointError, load_with_metadata, to_bytes

STRUCTURE_KEY = "nabla.state"  # the metadata entry holding the JSON structure
MAX_DEPTH = 64  # deeper structures are refused on load (a trainer's state is about 6 deep)
_REF = "__tensor__"


def save_state(obj: Any, path: str | os.PathLike[str], metadata: dict | None = None) -> None:
    """Write a nested structure of arrays and JSON values to ``path`` (atomically)."""
    write_atomic(os.fspath(path), state_to_bytes(obj, metadata))


def state_to_bytes(obj, metadata: dict | None = None) -> bytes:
    """The bytes :func:`save_state` writes: the arrays as tensors, the structure as JSON."""
    arrays: dict[str, np.ndarray] = {}
    structure = _flatten(obj, "", arrays)
    meta = dict(metadata or {})
    if STRUCTURE_KEY in meta:
        raise ValueError(f"save_state: metadata key {STRUCTURE_KEY!r} is reserved")
    meta[STRUCTURE_KEY] = json.dumps(structure, allow_nan=True)
    return to_bytes(arrays, metadata=meta)


def load_state(path: str | os.PathLike[str]) -> Any:
    """Read a structure written by :func:`save_state`; arrays come back as NumPy arrays.

    The file is verified against its digest before its structure is read; a structure that is
    not valid JSON or is nested deeper than :data:`MAX_DEPTH` is refused (a hostile file could
    otherwise exhaust the stack)."""
    tensors, metadata = load_with_metadata(path)
    if STRUCTURE_KEY not in metadata:
        raise CheckpointError(f"{path}: not a nabla state file (no {STRUCTURE_KEY!r} metadata)")
    try:
        structure = json.loads(metadata[STRUCTURE_KEY])
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(
            f"{path}: the {STRUCTURE_KEY!r} metadata is not valid JSON "
            f"({type(err).__name__}: {err})"
        ) from None
    return _unflatten(structure, {k: v.data for k, v in tensors.items()}, path)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # JSON-pointer escaping keeps paths unique


def _flatten(obj, path: str, arrays: dict):
    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, np.ndarray):
        name = path or "/"
        arrays[name] = obj
        return {_REF: name}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"save_state: keys must be strings, got {key!r} at {path or '/'}")
            if key == _REF:
                raise ValueError(f"save_state: the key {_REF!r} is reserved (at {path or '/'})")
        return {
            key: _flatten(value, f"{path}/{_escape(key)}", arrays) for key, value in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [_flatten(value, f"{path}/{i}", arrays) for i, value in enumerate(obj)]
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    raise TypeError(
        f"save_state: cannot store a {type(obj).__name__} at {path or '/'}; use arrays, tensors "
        "and JSON values (a schedule object with get_config instead of a function)"
    )


def _unflatten(obj, arrays: dict, path, depth: int = 0):
    if depth > MAX_DEPTH:
        raise CheckpointError(
            f"{path}: the {STRUCTURE_KEY!r} metadata is nested deeper than {MAX_DEPTH} levels; "
            "nabla never writes that"
        )
    if isinstance(obj, dict):
        if set(obj) == {_REF}:
            if not isinstance(obj[_REF], str) or obj[_REF] not in arrays:
                raise CheckpointError(f"{path}: the structure names a missing tensor {obj[_REF]!r}")
            return arrays[obj[_REF]]
        if set(obj) == {"__float__"}:
            return _special_float(obj["__float__"], path)
        return {key: _unflatten(value, arrays, path, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(value, arrays, path, depth + 1) for value in obj]
    return obj


def _special_float(text, path) -> float:
    if text not in ("inf", "-inf", "nan"):
        raise CheckpointError(f"{path}: {text!r} is not one of the floats stored as text")
    return float(text)
