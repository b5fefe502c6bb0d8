"""Fixtures of the op tests: one torch thread (the oracle's ops are tiny; on a shared machine
one thread is the fastest) and ``backend``, which runs a test on both kernel paths."""

import pytest
import torch

from nabla import kernels


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(params=["compiled", "reference"])
def backend(request):
    """Runs the test on the compiled kernels and on the NumPy references (both must agree with
    torch), whatever NABLA_KERNELS says."""
    with kernels.reference(request.param == "reference"):
        yield request.param
