"""Pooling cases that test_pool_details.py leaves open (found by mutation testing, issue 21):
column kernels (one offset per row) on both paths, a 257-offset window (past the byte-sized
offset record of the max-pool kernel), adaptive pooling with one bin along an axis or bins
equal along one axis only, and the thread split of each pooling kernel. Against torch in
float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import chwn

import nabla as nb
from nabla import kernels
from nabla.ops import pool as pool_ops


def against_torch(ours_fn, torch_fn, x, layout="nchw", seed=1):
    """Output and input gradient (random cotangent) of ours and torch's, in float64."""
    xt = nb.from_numpy(chwn(x) if layout == "chwn" else x)
    xt.requires_grad = True
    y = ours_fn(xt)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_fn(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize(("kernel", "stride"), [((2, 1), None), ((3, 1), (1, 2)), ((2, 1), 1)])
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_column_kernels_match_torch(name, kernel, stride, layout, backend):
    """A kernel one column wide: its second offset is the next row, not the next column."""
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 5))
    x[:, :, ::2] += 4.0  # the maximum of most windows in their first row (offset 0)
    against_torch(
        lambda t: getattr(pool_ops, name)(t, kernel, stride),
        lambda t: getattr(TF, name)(t, kernel, stride),
        x,
        layout,
    )


def test_max_pool2d_column_kernel_on_integer_images():
    """Integer images take the NumPy path (no kernel): each window's maximum, the first row's
    included."""
    x = np.array([[[[9, 1], [2, 8], [7, 3], [4, 6]]]], dtype=np.int64)
    y = pool_ops.max_pool2d(nb.from_numpy(x), (2, 1))
    np.testing.assert_array_equal(y.numpy(), [[[[9, 8], [7, 6]]]])


@pytest.mark.parametrize("width", [256, 257])
def test_max_pool2d_window_of_257_offsets(width, backend):
    """The kernel records each window's winning offset in one byte up to 256 offsets (0..255)
    and in int32 beyond; a maximum at offset 256 must still get the gradient."""
    x = np.random.default_rng(3).standard_normal((2, 1, 2, width))
    x[0, 0, 0, -1] = x[1, 0, 1, -1] = 10.0  # the maximum at the last offset
    against_torch(
        lambda t: pool_ops.max_pool2d(t, (1, width)), lambda t: TF.max_pool2d(t, (1, width)), x
    )


@pytest.mark.parametrize(
    ("size", "out"),
    [
        ((6, 4), (2, 1)),
        ((4, 6), (1, 2)),
        ((6, 6), (2, 1)),
        ((5, 6), (2, 3)),
        ((6, 5), (3, 2)),
        ((5, 4), (5, 2)),
    ],
)
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
def test_adaptive_avg_pool2d_one_bin_or_one_uneven_axis(size, out, layout, backend):
    """One bin along one axis only, and bins that split one axis evenly but not the other."""
    x = np.random.default_rng(4).standard_normal((2, 3, *size))
    against_torch(
        lambda t: pool_ops.adaptive_avg_pool2d(t, out),
        lambda t: TF.adaptive_avg_pool2d(t, out),
        x,
        layout,
    )


def test_each_kernel_is_split_by_the_values_it_touches(monkeypatch):
    """With the kernels on, a float input runs the four pooling kernels, and the thread split of
    each (conv.launch) is chosen by the number of values it passes over: the input, or its
    gradient (the same size)."""
    calls = []

    def spy(name, work):
        calls.append((name, work))
        return launch(name, work)

    launch = pool_ops.launch
    monkeypatch.setattr(pool_ops, "launch", spy)
    x = nb.from_numpy(chwn(np.random.default_rng(5).standard_normal((3, 2, 6, 5))))
    x.requires_grad = True
    with kernels.reference(False):
        pool_ops.max_pool2d(x, 2).sum().backward()
        pool_ops.avg_pool2d(x, 3, 1, 1).sum().backward()
    names = ["max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward"]
    assert calls == [(f"pool.{name}", x.size) for name in names]
