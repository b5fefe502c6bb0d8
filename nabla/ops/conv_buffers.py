"""Scratch arrays kept from one training step to the next, for convolution and pooling.

Why: a convolution allocates arrays of several MB per step (the im2col matrix, its gradient, the
padded input and its gradient, the output). glibc's malloc serves blocks that large by ``mmap``
or from the top of its heap, and gives them back to the kernel when they are freed (``munmap``,
or trimming the heap); the next step then page-faults every 4 KiB page in again and the kernel
zeroes each one. On the benchmark machine that cost about a third of a LeNet-5 training step.
Keeping the arrays costs memory that the step needs at its peak anyway.

Alignment: every array starts on a 64-byte boundary (a cache line, one AVX-512 vector). NumPy's
large arrays start 16 bytes past one, so every vector load of the direct convolution straddled
two lines: with aligned rows it ran 1.5x faster (kernels/conv.py, 24 against 37 GMAC/s).

Safety: an array is handed out again only when nothing but this pool refers to it: no tensor,
no graph node, no saved array, no view of it (a view holds a reference to its base array, so it
counts too). ``sys.getrefcount`` tells, of both the handed-out array and the raw block under it
(a view of a view refers to the block, not to the array it was taken from). An array still held
by a graph that was never backwarded or was retained is simply not reused: a new one is allocated.

>>> a = scratch((2, 3), np.float32)
>>> b = scratch((2, 3), np.float32)  # ``a`` is in use: a different array
>>> a is b
False
>>> a_id = id(a)
>>> del a  # now only the pool holds it
>>> id(scratch((2, 3), np.float32)) == a_id
True
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.typing import DTypeLike

PER_KEY = 16  # arrays kept per (shape, dtype); beyond that, new arrays are not kept
BUDGET = 512 * 2**20  # bytes kept in all; the least recently added shapes are dropped first
ALIGN = 64  # bytes

_pool: dict[tuple, list[tuple[np.ndarray | None, np.ndarray]]] = {}  # key -> [(raw block, array)]
_kept = 0  # bytes held by _pool


def aligned_empty(shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an ALIGN-byte boundary: a view
    of a slightly larger byte block (its ``base``)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _free_refcounts() -> tuple:
    # What sys.getrefcount reports, inside a loop like scratch's, for a block and its array that
    # only the pool holds: measured, not assumed, since it depends on the interpreter.
    a = aligned_empty((0,), np.float32)
    arrays = [(a.base, a)]
    del a
    for raw, a in arrays:
        return sys.getrefcount(raw), sys.getrefcount(a)
    raise AssertionError  # pragma: no cover


_FREE = _free_refcounts()


def scratch(shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """An uninitialized, 64-byte-aligned array of ``shape`` and ``dtype`` that nothing else
    refers to: one kept from an earlier call when one is free, else a new one, kept for later
    if the budget allows."""
    global _kept
    key = (shape, np.dtype(dtype))
    arrays = _pool.get(key)
    if arrays is None:
        arrays = _pool[key] = []
    for raw, a in arrays:
        if (sys.getrefcount(raw), sys.getrefcount(a)) == _FREE:
            return a
    a = aligned_empty(shape, dtype)
    if len(arrays) < PER_KEY and a.nbytes <= BUDGET:
        while _kept + a.nbytes > BUDGET:  # forget the oldest shapes (arrays in use live on)
            dropped = _pool.pop(next(iter(_pool)))
            _kept -= sum(b.nbytes for _, b in dropped)
            dropped.clear()  # it may be ``arrays`` itself
        _pool.setdefault(key, arrays).append((a.base, a))
        _kept += a.nbytes
    return a


def scratch_like(x: np.ndarray, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """:func:`scratch` of ``shape``, with its axes ordered in memory as x's are (a view of a
    C-contiguous array): an (N, C, H, W) view of a (C, H, W, N) array gets the same layout."""
    order = sorted(range(x.ndim), key=lambda axis: -x.strides[axis])  # outermost axis first
    a = scratch(tuple(shape[axis] for axis in order), dtype)
    return a.transpose(np.argsort(order))


def clear() -> None:
    """Forget every kept array (the memory returns once no tensor uses them)."""
    global _kept
    _pool.clear()
    _kept = 0
