"""Creating tensors: from data, filled with a constant, ranges, and random draws.

Float results are float32 unless ``dtype`` says otherwise; random draws come from ``generator``
or from the default generator that :func:`nabla.manual_seed` resets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import random
from .autograd.dtypes import DEFAULT_FLOAT, as_array, as_dtype
from .autograd.tensor import Tensor


def _shape(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(n) for n in shape)


def _float(dtype: DTypeLike | None) -> np.dtype:
    return DEFAULT_FLOAT if dtype is None else as_dtype(dtype)


def _make(array: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._make(array)
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(
    data: Tensor | ArrayLike, dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """A tensor holding a copy of ``data``: float data becomes float32, integers int64.

    >>> tensor([[1.0, 2.0]])
    tensor([[1., 2.]])
    >>> tensor([3, 1, 4]).dtype
    dtype('int64')
    """
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
        data = [d.data if isinstance(d, Tensor) else d for d in data]
    return _make(as_array(data, dtype, copy=True), requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array``, keeping its dtype (float32, float64, int64, bool)."""
    as_dtype(array.dtype)  # refuses unsupported dtypes
    return Tensor._make(array)


def zeros(
    *shape: int | Sequence[int], dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _make(np.zeros(_shape(shape), dtype=_float(dtype)), requires_grad)


def ones(
    *shape: int | Sequence[int], dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of ones."""
    return _make(np.ones(_shape(shape), dtype=_float(dtype)), requires_grad)


def full(
    shape: int | Sequence[int],
    fill_value: ArrayLike,
    dtype: DTypeLike | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor filled with ``fill_value`` (its dtype inferred from the value unless given)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    array = as_array(np.full(shape, fill_value), dtype)
    return _make(array, requires_grad)


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1,
    dtype: DTypeLike | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """Evenly spaced values in [start, stop): int64 for integer arguments, else float32."""
    array = np.arange(start, step=step) if stop is None else np.arange(start, stop, step)
    return _make(as_array(array, dtype), requires_grad)


def linspace(
    start: float, stop: float, num: int, dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """``num`` evenly spaced values from start to stop inclusive."""
    return _make(np.linspace(start, stop, num, dtype=_float(dtype)), requires_grad)


def eye(
    n: int, m: int | None = None, dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """The identity matrix (n x m)."""
    return _make(np.eye(n, m, dtype=_float(dtype)), requires_grad)


def rand(
    *shape: int | Sequence[int],
    dtype: DTypeLike | None = None,
    generator: np.random.Generator | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples in [0, 1)."""
    rng = random.resolve(generator)
    return _make(rng.random(_shape(shape), dtype=_float(dtype)), requires_grad)


def randn(
    *shape: int | Sequence[int],
    dtype: DTypeLike | None = None,
    generator: np.random.Generator | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal samples."""
    rng = random.resolve(generator)
    return _make(rng.standard_normal(_shape(shape), dtype=_float(dtype)), requires_grad)


def randint(
    low: int, high: int, shape: int | Sequence[int], generator: np.random.Generator | None = None
) -> Tensor:
    """Integers uniform in [low, high), int64."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Tensor._make(random.resolve(generator).integers(low, high, shape, dtype=np.int64))


def _like(maker: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def like(
        t: Tensor, dtype: DTypeLike | None = None, requires_grad: bool = False, **kwargs: Any
    ) -> Tensor:
        return maker(
            t.shape,
            dtype=t.dtype if dtype is None else dtype,
            requires_grad=requires_grad,
            **kwargs,
        )

    like.__name__ = f"{maker.__name__}_like"
    like.__doc__ = f"``{maker.__name__}`` with the shape (and, by default, the dtype) of ``t``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(
    t: Tensor, fill_value: ArrayLike, dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """``full`` with the shape (and, by default, the dtype) of ``t``."""
    return full(
        t.shape, fill_value, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad
    )
