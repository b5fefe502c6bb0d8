"""Building an optimizer (or a data loader) makes glibc serve large arrays from its heap (reused
from step to step) instead of a fresh mapping per array (faulted in again every step):
nabla/memory.py."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# While a 40 MB array is alive, how many bytes glibc holds in mmapped blocks (mallinfo2's hblkhd):
# 40 MB is above glibc's largest automatic mmap threshold (32 MiB), so by default it is mapped.
CODE = """
import ctypes, numpy as np
import nabla as nb
from nabla import optim

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if {optimizer} == "optimizer":
    optim.SGD([nb.zeros(3, requires_grad=True)], lr=0.1)
elif {optimizer} == "loader":
    from nabla.data import ArrayDataset, DataLoader
    DataLoader(ArrayDataset(np.zeros((4, 2)), np.zeros(4)), batch_size=2)
a = np.ones(5_000_000)
print(libc.mallinfo2().hblkhd)
"""


def mapped_bytes(optimizer: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(optimizer=repr(optimizer))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if "mallinfo2" in done.stderr:
        pytest.skip("this glibc has no mallinfo2 (before 2.33)")
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_large_arrays_come_from_the_heap_once_an_optimizer_is_built():
    assert mapped_bytes("nothing") >= 40_000_000  # glibc's default: a mapping of its own
    assert mapped_bytes("optimizer") < 40_000_000  # from the heap, reusable after free


def test_a_data_loader_also_keeps_freed_memory():
    # Its batches are allocated and freed every step, in worker threads too (docs/data.md).
    assert mapped_bytes("loader") < 40_000_000
