"""The IDX format of MNIST and Fashion-MNIST, gzip-compressed or plain.

An IDX file is a big-endian header, then the values in C order::

    magic: 2 zero bytes, a type code (0x08 = uint8, ...), the number of dimensions d
    d sizes: 4-byte big-endian unsigned integers
    data: prod(sizes) values

MNIST images have magic 2051 (uint8, 3 dimensions: count, rows, cols), labels 2049 (uint8, 1
dimension: count). Every check names the file and what is wrong, as a :class:`DataFormatError`.

>>> header = bytes([0, 0, 8, 1, 0, 0, 0, 3])
>>> parse_idx(header + bytes([7, 2, 1])).tolist()
[7, 2, 1]
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import os

__all__ = [
    "DataFormatError", "parse_idx", "read_idx", "read_idx_images", "read_idx_labels",
    "read_idx_pair",
]  # fmt: skip

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFormatError(ValueError):
    """A data file is truncated, corrupt, or not the format expected; the message names it."""


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic bytes."""
    data = Path(path).read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataFormatError(f"{path}: corrupt gzip data ({error})") from None


def parse_idx(data: bytes, source: str = "<bytes>", magic: int | None = None) -> np.ndarray:
    """The array stored in the IDX bytes ``data`` (``source`` names it in errors).

    With ``magic``, the file's magic number must equal it (2051 for images, 2049 for labels).
    """
    if len(data) < 4:
        raise DataFormatError(f"{source}: truncated: {len(data)} bytes, no IDX header")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise DataFormatError(f"{source}: bad magic number {found}, expected {magic}")
    code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or code not in _TYPES:
        raise DataFormatError(f"{source}: bad magic number {found}: not an IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(
            f"{source}: truncated: header needs {header} bytes, file has {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) < expected:
        raise DataFormatError(
            f"{source}: truncated: shape {shape} needs {expected} bytes, file has {len(data)}"
        )
    if len(data) > expected:
        raise DataFormatError(
            f"{source}: {len(data) - expected} bytes after the data of shape {shape}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)


def read_idx(path: str | os.PathLike[str], magic: int | None = None) -> np.ndarray:
    """The array in the IDX file ``path`` (gzip or plain), checked against ``magic`` if given."""
    return parse_idx(read_bytes(path), str(path), magic)


def read_idx_images(
    path: str | os.PathLike[str], rows: int | None = 28, cols: int | None = 28
) -> np.ndarray:
    """uint8 images of shape (N, rows, cols) from an IDX image file (magic 2051)."""
    images = read_idx(path, IMAGES_MAGIC)
    if (rows, cols) != (None, None) and images.shape[1:] != (rows, cols):
        raise DataFormatError(
            f"{path}: images of {images.shape[1]}x{images.shape[2]} pixels, expected {rows}x{cols}"
        )
    return images


def read_idx_labels(path: str | os.PathLike[str], num_classes: int | None = 10) -> np.ndarray:
    """uint8 labels of shape (N,) from an IDX label file (magic 2049), each < ``num_classes``."""
    labels = read_idx(path, LABELS_MAGIC)
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise DataFormatError(
            f"{path}: label {int(labels.max())} out of range for {num_classes} classes"
        )
    return labels


def read_idx_pair(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) as uint8, checking that the counts agree."""
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataFormatError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    return images, labels
