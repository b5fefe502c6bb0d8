"""Checkpoints: ``nb.save(state_dict, path)`` and ``nb.load(path)`` in the safetensors format.

Why safetensors: a file is an 8-byte little-endian header length, a JSON header naming every
tensor's dtype, shape and byte range (plus an optional ``"__metadata__"`` object of string ->
string), then the raw little-endian buffers. Loading one parses JSON and copies bytes, so it never
executes code (unlike pickle, which ``torch.save`` and ``np.save(allow_pickle=True)`` use and which
nabla never touches). PyTorch reads the same file with ``safetensors.torch.load_file`` and nabla
reads files written by ``safetensors.torch.save_file``, so weights move between the two freely.

Decisions:

- Values are nabla tensors or NumPy arrays of nabla's dtypes (float32, float64, int64, bool); any
  other dtype is refused on save and on load rather than silently converted (a float16 checkpoint
  from elsewhere must be cast by whoever wrote it). Non-contiguous or big-endian arrays are
  written as contiguous little-endian copies; tensors are saved detached, gradients are not.
- ``metadata`` is a flat ``dict[str, str]``, exactly what safetensors stores, so every safetensors
  tool shows it unchanged; other values are refused with a ``TypeError`` (``json.dumps`` them
  yourself for structured data).
- Writes are atomic (:mod:`nabla.files`): the bytes go to a temporary file in the target's
  directory, which is flushed, fsync'd and then ``os.replace``-d over the target. An exception
  leaves the previous file intact and removes the temporary file; a killed process may leave a
  ``.<name>.*.tmp`` file behind but never a half-written checkpoint under the real name.
- Every file nabla writes carries a digest: ``"nabla.sha256"`` in its metadata is the sha256 of
  the other metadata and of every tensor's name, dtype, shape and bytes. ``load`` recomputes it
  and refuses a file whose content changed since it was written (a flipped bit in the data, an
  edited header) with a :class:`CheckpointError` naming the file. Files written elsewhere
  (``safetensors.torch.save_file``) have no digest and load unverified. ``load_metadata`` does
  not show the digest: it is the file's, not the user's.
- ``load`` checks the header itself and reads the tensors from the bytes it checked, so a
  truncated, corrupt or foreign file (a pickle, an ``.npz``, random bytes) raises
  :class:`CheckpointError`, a ``ValueError`` naming the file and what is wrong. Only regular files
  are read: a FIFO, a device or a folder is refused without being opened for reading (opening a
  FIFO would wait for a writer forever). Tensors come back in the file's order (safetensors orders
  them by dtype, not by the order they were saved in); names are unchanged.

>>> import os, tempfile
>>> import numpy as np
>>> import nabla as nb
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> nb.save({"w": nb.tensor([[1.0, 2.0]]), "step": np.array(7)}, path, metadata={"epoch": "3"})
>>> sd = nb.load(path)
>>> sd["w"], sd["step"].item()
(tensor([[1., 2.]]), 7)
>>> nb.load_metadata(path)
{'epoch': '3'}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .autograd import Tensor
from .autograd.dtypes import SUPPORTED
from .creation import from_numpy
from .files import write_atomic

__all__ = ["CheckpointError", "load", "load_metadata", "save"]

# safetensors dtype codes for nabla's dtypes, and their sizes in bytes
_CODES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "BOOL": np.dtype("?"),
}
_METADATA_KEY = "__metadata__"
DIGEST_KEY = "nabla.sha256"  # the metadata entry holding the file's digest
_MAX_HEADER = 100_000_000  # the limit the safetensors reader itself enforces


class CheckpointError(ValueError):
    """A file that is not a valid nabla/safetensors checkpoint (truncated, corrupt or foreign)."""


# --- save -----------------------------------------------------------------------------------------


def save(
    state_dict: Mapping, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``state_dict`` (name -> Tensor or ndarray) to ``path`` as safetensors, atomically.

    ``metadata`` is an optional dict of str -> str stored in the file's header.
    """
    write_atomic(os.fspath(path), to_bytes(state_dict, metadata))


def to_bytes(state_dict: Mapping, metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors bytes of ``state_dict`` with ``metadata`` and the digest of both."""
    from safetensors.numpy import save as _to_bytes

    arrays = _arrays(state_dict)
    meta = _check_metadata(metadata)
    meta[DIGEST_KEY] = digest(arrays, meta)
    return _to_bytes(arrays, metadata=meta)


def digest(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """sha256 of the metadata (but the digest itself) and of every tensor's name, dtype, shape
    and little-endian bytes, in name order: what ``load`` checks a file against."""
    h = hashlib.sha256()
    h.update(
        json.dumps({k: v for k, v in metadata.items() if k != DIGEST_KEY}, sort_keys=True).encode()
    )
    for name in sorted(arrays):
        array = arrays[name]
        h.update(json.dumps([name, array.dtype.name, list(array.shape)]).encode())
        little = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        h.update(little.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _arrays(state_dict) -> dict:
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"save() needs a mapping of name -> Tensor or ndarray, got {type(state_dict).__name__}"
        )
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, got {name!r} ({type(name).__name__})")
        if not name:
            raise ValueError("tensor names must be non-empty strings, got ''")
        if name == _METADATA_KEY:
            raise ValueError(
                f"{_METADATA_KEY!r} is reserved by safetensors and cannot name a tensor"
            )
        if isinstance(value, Tensor):
            array = value.data
        elif isinstance(value, (np.ndarray, np.generic)):
            array = np.asarray(value)
        else:
            raise TypeError(
                f"value for {name!r} must be a nabla Tensor or a NumPy array, "
                f"got {type(value).__name__}"
            )
        native = array.dtype.newbyteorder("=")
        if native not in SUPPORTED:
            names = ", ".join(str(d) for d in SUPPORTED)
            raise TypeError(f"value for {name!r} has dtype {array.dtype}; checkpoints hold {names}")
        # C-contiguous and little-endian (not np.ascontiguousarray: it turns 0-d arrays into 1-d)
        arrays[name] = np.asarray(array, dtype=native.newbyteorder("<"), order="C")
    return arrays


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metadata must map str -> str (as safetensors stores it); got {key!r}: "
                f"{type(value).__name__} - encode other values yourself, e.g. with json.dumps"
            )
    if DIGEST_KEY in metadata:
        raise ValueError(f"metadata key {DIGEST_KEY!r} is reserved: nabla writes the digest itself")
    return dict(metadata)


# --- load -----------------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> OrderedDict:
    """Read a safetensors file into an OrderedDict name -> Tensor (dtypes kept).

    Raises FileNotFoundError for a missing file and :class:`CheckpointError` for one that is not a
    regular file, not a valid safetensors file of float32/float64/int64/bool tensors, or whose
    content does not match its digest. Nothing is ever unpickled.
    """
    return load_with_metadata(path)[0]


def load_with_metadata(path) -> tuple[OrderedDict, dict]:
    """:func:`load` and :func:`load_metadata` from one reading of the file: the tensors and the
    metadata they were verified with."""
    path = os.fspath(path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, n = _read_header(f, size, path)
        data = f.read()
    if len(data) != size - 8 - n:
        raise CheckpointError(f"{path!r} changed while it was read: its size is no longer {size}")
    arrays = {name: _array(entry, data) for name, entry in header.items() if name != _METADATA_KEY}
    metadata = header.get(_METADATA_KEY, {})
    _verify(path, arrays, metadata)
    in_file_order = sorted(arrays, key=lambda name: header[name]["data_offsets"][0])
    state = OrderedDict((name, from_numpy(_native_copy(arrays[name]))) for name in in_file_order)
    return state, {k: v for k, v in metadata.items() if k != DIGEST_KEY}


def _array(entry: dict, data: bytes) -> np.ndarray:
    """A read-only view of one tensor's bytes in the data section (the header was checked)."""
    count, begin = math.prod(entry["shape"]), entry["data_offsets"][0]
    return np.frombuffer(data, _CODES[entry["dtype"]], count, begin).reshape(entry["shape"])


def _native_copy(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("="), copy=True)  # writeable, native order


def _verify(path: str, arrays: dict, metadata: dict) -> None:
    """Refuse a file whose tensors or metadata differ from what its digest was computed on."""
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and digest(arrays, metadata) != expected:
        raise CheckpointError(
            f"{path!r} is corrupt: its content does not match the sha256 digest stored when it was "
            "written (a changed byte in its tensors or metadata); use an intact copy"
        )


def load_metadata(path: str | os.PathLike[str]) -> dict:
    """The ``metadata`` dict stored in a safetensors file (``{}`` when it has none), without the
    digest nabla adds."""
    return {k: v for k, v in _stored_metadata(path).items() if k != DIGEST_KEY}


def has_digest(path) -> bool:
    """Whether the file at ``path`` carries a digest (every file nabla wrote does)."""
    return DIGEST_KEY in _stored_metadata(path)


def _stored_metadata(path) -> dict:
    path = os.fspath(path)
    with open_regular(path) as f:
        header, _ = _read_header(f, os.fstat(f.fileno()).st_size, path)
    return header.get(_METADATA_KEY, {})


def open_regular(path, error: type[Exception] = CheckpointError, what: str = "file"):
    """``path`` opened for reading in binary, or ``error`` (naming it as ``what``) unless it is a
    regular file. The file is opened without blocking and checked through the open descriptor,
    so a FIFO (whose opening would wait for a writer) or a device is never read and cannot be
    swapped in after the check."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {os.fspath(path)!r}") from None
    except IsADirectoryError:  # pragma: no cover - Windows; POSIX opens folders for reading
        raise error(f"{what} {os.fspath(path)!r} is a folder, not a regular file") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        raise error(
            f"{what} {os.fspath(path)!r} is {kind}, not a regular file; refusing to read it"
        )
    return os.fdopen(fd, "rb")


_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}  # fmt: skip


def _read_header(f, size: int, path: str) -> tuple[dict, int]:
    """Parse and check the header of the open file ``f`` of ``size`` bytes; returns it and the
    header length in bytes, leaving ``f`` at the start of the data section."""
    head = f.read(8)

    def bad(problem: str) -> CheckpointError:
        hint = _looks_like(head)
        return CheckpointError(
            f"{path!r} is not a valid safetensors checkpoint: {problem}"
            + (f" (it looks like {hint})" if hint else "")
        )

    if size < 8:
        raise bad(f"the file has only {size} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(head, "little")
    if n > size - 8:
        raise bad(
            f"the header claims {n} bytes but only {size - 8} follow the length prefix "
            "(truncated or not safetensors)"
        )
    if n > _MAX_HEADER:
        raise bad(f"the header claims {n} bytes, more than the {_MAX_HEADER} allowed")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise bad(f"the header is not UTF-8 JSON ({type(err).__name__}: {err})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is JSON {type(header).__name__}, not an object")
    _check_entries(header, size - 8 - n, bad)
    return header, n


def _check_entries(header: dict, buffer_size: int, bad) -> None:
    """Every tensor entry names a known dtype, a shape and the byte range that shape needs, and
    the ranges tile the data section exactly."""
    covered = []
    for name, entry in header.items():
        if name == _METADATA_KEY:
            meta = entry
            if not isinstance(meta, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
            ):
                raise bad(f"{_METADATA_KEY!r} must be an object of string -> string")
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise bad(f"the entry for {name!r} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _CODES:
            raise bad(
                f"tensor {name!r} has dtype {dtype!r}; nabla loads only "
                + ", ".join(_CODES)
                + " (float32, float64, int64, bool)"
            )
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise bad(f"tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise bad(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if end > buffer_size:
            raise bad(
                f"tensor {name!r} needs bytes {begin}..{end} of the data section, which has only "
                f"{buffer_size} (the file is truncated)"
            )
        expected = math.prod(shape) * _CODES[dtype].itemsize
        if end - begin != expected:
            raise bad(
                f"tensor {name!r} of shape {tuple(shape)} and dtype {dtype} needs {expected} "
                f"bytes but its data_offsets span {end - begin}"
            )
        covered.append((begin, end))
    position = 0
    for begin, end in sorted(covered):
        if begin != position:
            raise bad(f"the tensors' byte ranges overlap or leave a gap at byte {position}")
        position = end
    if position != buffer_size:
        raise bad(
            f"the tensors cover {position} bytes of data but the file holds {buffer_size} "
            "(truncated or trailing garbage)"
        )


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _looks_like(head: bytes) -> str:
    """A guess at what a non-safetensors file is, for the error message."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle, which nabla never loads"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive such as .npz or a torch.save file, which nabla does not load"
    if head[:6] == b"\x93NUMPY":
        return "a .npy file"
    return ""
