"""Scratch buffers (nabla/ops/conv_buffers.py): alignment, reuse of free arrays only, the
per-key and byte budgets, layouts, and the reference counts that tell a free array."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nabla.ops import conv_buffers


@pytest.fixture
def pool(monkeypatch):
    """An empty scratch pool for one test (the real one is restored afterwards)."""
    monkeypatch.setattr(conv_buffers, "_pool", {})
    monkeypatch.setattr(conv_buffers, "_kept", 0)
    return monkeypatch


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((3, 5), np.float64), ((7,), np.float32), ((2, 1, 3), np.uint8), ((0,), np.float32)],
)
def test_aligned_empty(shape, dtype):
    """Every array starts on a 64-byte boundary, has the shape and dtype asked for, and is a view
    of a uint8 block 64 bytes longer than its data."""
    for _ in range(6):  # several blocks: NumPy places most of them off the boundary
        a = conv_buffers.aligned_empty(shape, dtype)
        assert a.size == 0 or a.ctypes.data % 64 == 0  # (an empty view points anywhere)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.base.dtype == np.uint8 and a.base.size == a.nbytes + 64


def test_scratch_reuses_only_free_arrays(pool):
    """An array is handed out again once nothing else refers to it; one in use, or of another
    dtype, is not."""
    a = conv_buffers.scratch((2, 3), np.float32)
    b = conv_buffers.scratch((2, 3), np.float32)
    assert a is not b
    assert conv_buffers.scratch((2, 3), np.float64) is not a
    a_id = id(a)
    del a
    c = conv_buffers.scratch((2, 3), np.float32)
    assert id(c) == a_id and c.shape == (2, 3) and c.dtype == np.float32
    assert c.ctypes.data % 64 == 0
    del c  # free now, but a float64 request of the same shape must not get it
    assert conv_buffers.scratch((2, 3), np.float64).dtype == np.float64


def test_scratch_keeps_at_most_per_key(pool):
    """PER_KEY (16) arrays are kept per shape and dtype; the 17th in use at once is not kept."""
    held = [conv_buffers.scratch((4,), np.float64) for _ in range(conv_buffers.PER_KEY + 1)]
    kept = conv_buffers._pool[((4,), np.dtype(np.float64))]
    assert conv_buffers.PER_KEY == 16 and len(kept) == 16
    assert conv_buffers._kept == 16 * 32
    assert len({id(a) for a in held}) == 17


def test_scratch_budget_drops_the_oldest_shapes(pool):
    """Past BUDGET bytes the least recently added shapes are forgotten and their bytes
    subtracted; reaching the budget exactly drops nothing; an array above it is not kept."""
    pool.setattr(conv_buffers, "BUDGET", 1200)
    conv_buffers.scratch((100,), np.float64)  # 800 bytes
    assert conv_buffers._kept == 800
    conv_buffers.scratch((50,), np.float64)  # 800 + 400 == BUDGET: both kept
    assert conv_buffers._kept == 1200 and len(conv_buffers._pool) == 2
    conv_buffers.scratch((25,), np.float64)  # 200 more: the oldest shape goes
    assert ((100,), np.dtype(np.float64)) not in conv_buffers._pool
    assert conv_buffers._kept == 600
    conv_buffers.scratch((150,), np.float64)  # exactly the budget: kept, everything else goes
    assert conv_buffers._kept == 1200
    assert list(conv_buffers._pool) == [((150,), np.dtype(np.float64))]
    conv_buffers.scratch((151,), np.float64)  # above the budget: never kept
    assert conv_buffers._pool.get(((151,), np.dtype(np.float64))) == []  # its key, no array
    assert conv_buffers._kept == 1200


def test_scratch_like_keeps_the_memory_layout(pool):
    """scratch_like of a (C, H, W, N)-stored NCHW view has that layout too; of an NCHW array,
    NCHW."""
    x = np.zeros((5, 2, 3, 4)).transpose(3, 0, 1, 2)  # (N, C, H, W) view of (C, H, W, N)
    a = conv_buffers.scratch_like(x, (4, 5, 2, 3), np.float32)
    assert a.shape == (4, 5, 2, 3) and a.dtype == np.float32
    assert a.transpose(1, 2, 3, 0).flags.c_contiguous
    b = conv_buffers.scratch_like(np.zeros((2, 3, 4)), (2, 3, 4), np.float64)
    assert b.flags.c_contiguous


def test_clear_forgets_everything(pool):
    conv_buffers.scratch((8,), np.float64)
    conv_buffers.clear()
    assert conv_buffers._pool == {} and conv_buffers._kept == 0
    conv_buffers.scratch((8,), np.float64)
    assert conv_buffers._kept == 64


def test_budget_may_drop_the_requested_shape_itself(pool):
    """When the oldest shape is the one asked for (its array still in use), the budget drops it
    and the new array starts its list again: kept, and counted once."""
    pool.setattr(conv_buffers, "BUDGET", 1200)
    held = conv_buffers.scratch((100,), np.float64)  # 800 bytes, in use
    again = conv_buffers.scratch((100,), np.float64)  # 1600 > 1200: its own key is the oldest
    assert again is not held
    kept = conv_buffers._pool[((100,), np.dtype(np.float64))]
    assert [a for _, a in kept] == [again] and conv_buffers._kept == 800
    del again
    assert conv_buffers.scratch((100,), np.float64) is kept[0][1]  # and handed out again


def test_free_refcounts_are_those_of_a_free_pool_entry(pool):
    """_FREE, measured at import, is what scratch's loop sees for a block and array that only
    the pool holds; measuring again now gives the same."""
    a = conv_buffers.scratch((3,), np.float32)
    del a
    for raw, a in conv_buffers._pool[((3,), np.dtype(np.float32))]:
        seen = (sys.getrefcount(raw), sys.getrefcount(a))
    assert conv_buffers._free_refcounts() == seen == conv_buffers._FREE
