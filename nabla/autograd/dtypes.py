"""The dtypes nabla works with, and how data becomes an array of one of them.

The rule follows PyTorch: float data becomes float32 unless a dtype is given, integer data
becomes int64, booleans stay bool. Only floating tensors can require gradients.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

DEFAULT_FLOAT = float32
SUPPORTED = (float32, float64, int64, bool_)


def as_dtype(dtype: DTypeLike) -> np.dtype:
    """Resolve a NumPy dtype, a type such as ``np.float64`` or a name such as ``"float64"``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"not a dtype: {dtype!r}; use one of {_names()}") from err
    if resolved not in SUPPORTED:
        raise TypeError(f"unsupported dtype {resolved}; nabla tensors are one of {_names()}")
    return resolved


def _names() -> str:
    return ", ".join(str(d) for d in SUPPORTED)


def as_array(data: ArrayLike, dtype: DTypeLike | None = None, copy: bool = False) -> np.ndarray:
    """Convert ``data`` to an ndarray: float -> float32, integer -> int64 (unless ``dtype`` is
    given)."""
    if dtype is not None:
        return np.array(data, dtype=as_dtype(dtype), copy=True if copy else None)
    array = np.asarray(data)
    kind = array.dtype.kind
    if kind == "f":
        target = DEFAULT_FLOAT
    elif kind in "iu":
        target = int64
    elif kind == "b":
        target = bool_
    else:
        raise TypeError(f"cannot make a tensor from data of dtype {array.dtype}")
    return array.astype(target, copy=copy or array.dtype != target)
