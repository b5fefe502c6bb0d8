"""Reused memory for large temporaries: glibc's malloc settings for a training process.

NumPy allocates every result array with ``malloc``. glibc serves a block above its *mmap
threshold* (128 KiB at first) with a fresh ``mmap`` and unmaps it on ``free``, so the next step's
array of the same size is faulted in again, one zeroed 4 KiB page at a time. glibc raises the
threshold by itself after freeing a larger mapped block, so whether a process pays depends on
what it happened to allocate before. Measured on the MNIST MLP at batch 512 (bench/mlp_train.py's
worker, 600 steps): 870 page faults per step and 5.6 ms per step, against 50 faults and 4.6 ms
with the settings below. The NumPy reference updates had hidden this: their own large temporaries
raised the threshold early.

:func:`keep_freed_memory` sets the threshold to 64 MiB and lets the heap keep up to 256 MiB of
freed memory instead of returning it at once, which is what a training loop that allocates the
same arrays every step wants. It runs when the first optimizer is built, only with glibc, and
not where the environment already sets ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap, and are reused
TRIM_THRESHOLD = 256 << 20  # free memory the heap keeps before returning any to the system
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_done = False


def keep_freed_memory() -> bool:
    """Apply the settings of the module docstring once; True if glibc took them."""
    global _done
    if _done:
        return True
    _done = True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False  # the user chose
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
