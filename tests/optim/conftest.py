"""Shared by the optimizer tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """torch's tiny ops on two OpenMP threads slow down 100x when another process holds a core
    (the threads spin at each barrier); one thread is as fast for these sizes."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
