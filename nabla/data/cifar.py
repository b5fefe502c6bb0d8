"""The CIFAR-10 binary format ("suitable for C programs"), read straight from its tar.gz.

Each batch file is a run of 3073-byte records: one label byte (0-9), then 3072 pixel bytes, the
red, green and blue 32x32 planes in row-major order, so a record reshapes to (3, 32, 32). The
archive ``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/data_batch_1.bin`` ...
``data_batch_5.bin`` (training, 10,000 records each) and ``test_batch.bin``.

Only those members are read, only when they are regular files, and nothing is written to disk,
so a hostile archive (``../`` names, links, devices) cannot place files anywhere. The pickled
"python version" of CIFAR-10 is never read: unpickling runs arbitrary code.

>>> x, y = parse_cifar10(bytes([3]) + bytes(range(256)) * 12)
>>> x.shape, y.tolist(), int(x[0, 1, 0, 0])
((1, 3, 32, 32), [3], 0)
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .idx import DataFormatError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

__all__ = ["FOLDER", "SPLITS", "parse_cifar10", "read_cifar10", "read_cifar10_archive"]

FOLDER = "cifar-10-batches-bin"
SPLITS = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
_RECORD = 1 + 3 * 32 * 32


def parse_cifar10(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N,), both uint8, from the records in ``data``."""
    if not data or len(data) % _RECORD:
        raise DataFormatError(
            f"{source}: truncated or not a CIFAR-10 batch: {len(data)} bytes is not a "
            f"positive multiple of the {_RECORD}-byte record"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataFormatError(f"{source}: record {bad} has label {labels[bad]}, expected 0-9")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def read_cifar10(paths: Iterable[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from extracted batch files, concatenated in the order given."""
    parts = [parse_cifar10(Path(p).read_bytes(), str(p)) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar10_archive(
    archive: str | os.PathLike[str], split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N,) of ``split`` from ``cifar-10-binary.tar.gz``."""
    if split not in SPLITS:
        raise ValueError(f"CIFAR-10: split must be one of {sorted(SPLITS)}, got {split!r}")
    wanted = {f"{FOLDER}/{name}": name for name in SPLITS[split]}
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted:
                    continue  # anything else in the archive is ignored, never extracted
                if not member.isreg():
                    raise DataFormatError(
                        f"{archive}: member {member.name} is not a regular file; refusing it"
                    )
                if name in found:
                    raise DataFormatError(f"{archive}: member {member.name} appears twice")
                source = f"{archive}:{member.name}"
                found[name] = parse_cifar10(tar.extractfile(member).read(), source)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataFormatError(f"{archive}: corrupt or truncated archive ({error})") from None
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DataFormatError(f"{archive}: missing {', '.join(missing)}")
    parts = [found[name] for name in wanted]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
