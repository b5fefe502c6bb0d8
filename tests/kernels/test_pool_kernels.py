"""Pooling kernels (kernels/pool.py) against the NumPy reference (ops/pool.py), bit for bit: a
maximum and its first-winner rule involve no rounding, and both sum windows in the same order."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels
from nabla.ops import pool

# (input shape, kernel_size, stride, padding)
GEOMETRIES = [
    ((4, 3, 8, 8), 2, None, 0),  # LeNet's pooling: windows side by side
    ((2, 3, 9, 9), 3, 2, 1),  # overlapping, padded
    ((2, 2, 7, 7), 3, 1, 1),  # stride 1: every position in nine windows
    ((1, 2, 7, 8), (3, 2), (2, 3), (1, 1)),  # N = 1, rectangular everything
    ((2, 3, 5, 5), 2, 3, 0),  # gaps between windows
    ((3, 2, 7, 7), 2, None, 0),  # a last row and column no window covers
]
POOLS = [
    (pool.max_pool2d, {}),
    (pool.avg_pool2d, {}),
    (pool.avg_pool2d, {"count_include_pad": False}),
]


@pytest.fixture(autouse=True)
def compiled_kernels():
    """These tests are about the kernels: they run them also under NABLA_KERNELS=reference."""
    with kernels.reference(False):
        yield


def pooled(fn, x, options, layout, seed=1):
    data = (
        x
        if layout == "nchw"
        else np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    )
    xt = nb.from_numpy(data)
    xt.requires_grad = True
    y = fn(xt, **options)
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    with np.errstate(invalid="ignore"):  # the loss of NaN and infinite outputs (-inf + inf)
        (y * nb.tensor(g, dtype=x.dtype)).sum().backward()
    return y.numpy(), xt.grad


@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn,extra", POOLS)
@pytest.mark.parametrize("shape,kernel_size,stride,padding", GEOMETRIES)
def test_pool_kernels_equal_reference(
    shape, kernel_size, stride, padding, fn, extra, dtype, layout
):
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal(shape), 1).astype(dtype)  # rounded: many ties
    x[0, 0, 0, :2] = np.nan
    x[-1, -1, 1, 1] = -np.inf
    x[-1, 0, 2, :] = 0.5  # a row of equal values
    options = dict(kernel_size=kernel_size, stride=stride, padding=padding, **extra)
    compiled = pooled(fn, x, options, layout)
    with kernels.reference():
        reference = pooled(fn, x, options, layout)
    for got, want in zip(compiled, reference):
        np.testing.assert_array_equal(got, want)  # NaN where NaN


def test_max_pool_ties_go_to_the_first_maximum():
    x = nb.tensor(np.ones((1, 1, 2, 2)), requires_grad=True, dtype="float32")
    pool.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize("fn,extra", POOLS)
def test_pool_gradcheck_on_kernel_path(fn, extra):
    rng = np.random.default_rng(2)
    x = nb.tensor(
        rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0,
        requires_grad=True,
        dtype="float64",
    )
    assert kernels.compiled()
    nb.gradcheck(lambda t: fn(t, 3, 2, 1, **extra), [x])


@pytest.mark.parametrize("fn,extra", POOLS)
@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_pool_same_with_one_or_two_threads(fn, extra, monkeypatch):
    monkeypatch.setattr("nabla.ops.conv.PARALLEL_MIN", 1)  # the parallel copies at 2 threads
    x = np.random.default_rng(3).standard_normal((16, 8, 32, 32)).astype(np.float32)
    threads = kernels.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            kernels.set_num_threads(n)
            results.append(pooled(fn, x, dict(kernel_size=3, stride=2, padding=1, **extra), "chwn"))
    finally:
        kernels.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
