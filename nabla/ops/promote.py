"""Operand promotion for binary operations, with PyTorch's rules.

* Tensors of one dtype combine as they are (the fast path).
* A Python number, NumPy scalar or ndarray is a *weak* operand: it takes the tensor's dtype when
  that is a float, so ``float32_tensor * 0.5`` stays float32.
* An integer (or bool) tensor meeting a float (a float tensor, or a float constant) becomes that
  float dtype, float32 for constants; float32 meeting float64 gives float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..autograd.dtypes import DEFAULT_FLOAT, float64
from ..autograd.tensor import Tensor

_NUMBERS = (int, float, bool)


def promote(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> tuple[Any, Any]:
    """Return ``a, b`` ready for a NumPy binary op, converting only what PyTorch would."""
    a_is_t = isinstance(a, Tensor)
    b_is_t = isinstance(b, Tensor)
    if a_is_t and b_is_t:
        da, db = a.data.dtype, b.data.dtype
        if da == db:
            return a, b
        return _cast(a, _join(da, db)), _cast(b, _join(da, db))
    if a_is_t:
        return _with_constant(a, b)
    if b_is_t:
        b, a = _with_constant(b, a)
        return a, b
    raise TypeError("a binary operation needs at least one Tensor")


def _with_constant(t, c):
    kind = t.data.dtype.kind
    if type(c) in _NUMBERS and (kind == "f" or type(c) is not float):
        return t, c  # NumPy treats Python numbers as weak already
    if isinstance(c, np.generic):
        c = c.item()
        if kind == "f" or type(c) is not float:
            return t, c
    if type(c) is float:
        return _cast(t, DEFAULT_FLOAT), c
    array = np.asarray(c)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"cannot combine a tensor with {type(c).__name__}")
    if kind == "f":
        return t, array.astype(t.data.dtype, copy=False)
    if array.dtype.kind == "f":
        return _cast(t, DEFAULT_FLOAT), array.astype(DEFAULT_FLOAT, copy=False)
    return t, array


def _join(da: np.dtype, db: np.dtype) -> np.dtype:
    if da.kind == "f" and db.kind == "f":
        return float64 if float64 in (da, db) else da
    if da.kind == "f":
        return da
    if db.kind == "f":
        return db
    return np.promote_types(da, db)


def _cast(t: Tensor, dtype: np.dtype) -> Tensor:
    return t if t.data.dtype == dtype else t.astype(dtype)


def floating(x: Tensor | ArrayLike) -> Tensor:
    """``x`` itself if it is a float tensor, else converted to float32 (for exp, log, mean, ...).

    Functions with real-valued results give float32 for integer tensors, as PyTorch does,
    instead of NumPy's float64.
    """
    if isinstance(x, Tensor):
        return x if x.data.dtype.kind == "f" else x.astype(DEFAULT_FLOAT)
    return Tensor(x)
