"""Pooling in detail: nabla/ops/pool.py against torch in float64, on the compiled kernels and on
the NumPy references, with both memory layouts (NCHW, and a convolution's (C, H, W, N) view, which
picks the kernels' fast path), and the validation messages at their exact boundaries. More paths
and dtypes: test_pool_paths.py; normalization: test_norm_details.py.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import as_layout

import nabla as nb
from nabla.ops import conv_buffers
from nabla.ops import pool as pool_ops

TOL = dict(rtol=1e-10, atol=1e-10)


def dirty_scratch():
    """Fill every free scratch array with garbage, as a reused array may hold: a code path that
    forgets to zero (or to write) part of its array then gives wrong numbers."""
    for arrays in conv_buffers._pool.values():
        for raw, a in arrays:  # the loop scratch() measures its free refcounts in
            if (sys.getrefcount(raw), sys.getrefcount(a)) == conv_buffers._FREE:
                a.fill(True if a.dtype == bool else 7 if a.dtype.kind in "iu" else 1e3)


def ours_and_torch(fn_ours, fn_torch, x, layout="nchw", seed=3):
    """Output and input gradient (random cotangent) of both, x in float64; ours run twice, the
    second time on scratch arrays left dirty by the first."""

    def ours():
        xt = nb.from_numpy(as_layout(x, layout))
        xt.requires_grad = True
        y = fn_ours(xt)
        (y * nb.tensor(g, dtype=x.dtype)).sum().backward()
        return y.numpy().copy(), np.array(xt.grad)  # copies: the scratch arrays become free

    shape = fn_ours(nb.from_numpy(x)).shape
    g = np.random.default_rng(seed).standard_normal(shape)
    ours()
    dirty_scratch()
    y, dx = ours()
    tx = torch.tensor(x, requires_grad=True)
    ty = fn_torch(tx)
    ty.backward(torch.from_numpy(g))
    return (y, dx), (ty.detach().numpy(), tx.grad.numpy())


def assert_pair(ours, theirs, tol=TOL):
    for name, a, b in zip(["y", "dx"], ours, theirs):
        np.testing.assert_allclose(a, b, err_msg=name, **tol)


# --------------------------------------------------------------------------------- pooling

# (input shape, kernel, stride, padding): overlapping, tiled (covered or not), gapped windows
POOLS = [
    ((2, 3, 7, 8), 3, 2, 1),  # overlapping, padded
    ((2, 2, 6, 8), 2, None, 0),  # tiled and covering the input
    ((2, 2, 7, 9), 2, None, 0),  # tiled, the last row and column left out
    ((1, 3, 9, 10), (2, 3), (3, 4), 0),  # gaps between the windows
    ((2, 2, 8, 7), (3, 2), (1, 2), (1, 1)),
    ((1, 2, 6, 6), (2, 2), (2, 2), (1, 0)),  # stride == kernel but padded: not "tiled"
    ((2, 1, 5, 6), (1, 3), (2, 1), (0, 1)),
    ((1, 2, 9, 6), 2, 3, 0),  # gaps, the last window ending at the last row and column
    ((1, 2, 6, 6), 3, 3, (1, 0)),  # stride == kernel, padded: the last row in no window
    ((1, 2, 6, 6), 3, 3, (0, 1)),  # ... the last column in no window
]


@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOLS)
def test_max_pool2d_matches_torch(shape, kernel, stride, padding, layout, backend):
    """Values and gradient routing for every window arrangement the backward distinguishes."""
    x = np.random.default_rng(0).standard_normal(shape)
    ours, theirs = ours_and_torch(
        lambda t: pool_ops.max_pool2d(t, kernel, stride, padding),
        lambda t: TF.max_pool2d(t, kernel, stride, padding),
        x,
        layout,
    )
    assert_pair(ours, theirs)


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool2d_ties_go_to_the_first_maximum(stride, backend):
    """Equal values in a window: the gradient goes to the first in row-major order (torch's rule),
    in overlapping and in tiled windows."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1:3, 1:3] = 5.0
    x[0, 0, 3, 0] = 5.0
    ours, theirs = ours_and_torch(
        lambda t: pool_ops.max_pool2d(t, 2, stride), lambda t: TF.max_pool2d(t, 2, stride), x
    )
    assert_pair(ours, theirs)


def test_max_pool2d_negative_values_and_padding(backend):
    """Padding never wins: an all-negative input padded by -inf, not by 0."""
    x = -1.0 - np.random.default_rng(1).random((2, 2, 5, 5))
    ours, theirs = ours_and_torch(
        lambda t: pool_ops.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1), x
    )
    assert_pair(ours, theirs)
    assert (ours[0] < 0).all()


def test_max_pool2d_integer_images_pad_with_the_smallest_int():
    """An int64 image is padded by the smallest int64, so all-negative windows keep their max."""
    x = -np.arange(1, 1 + 2 * 25, dtype=np.int64).reshape(1, 2, 5, 5)
    y = pool_ops.max_pool2d(nb.from_numpy(x), 3, 2, 1)
    want = TF.max_pool2d(torch.from_numpy(x).double(), 3, 2, 1).numpy().astype(np.int64)
    np.testing.assert_array_equal(y.numpy(), want)
    assert y.dtype == np.int64


def test_max_pool2d_many_offsets(backend):
    """More than 256 kernel offsets (a window index no longer fits a byte), the maximum at the
    last one, and exactly 256."""
    x = np.random.default_rng(2).standard_normal((1, 1, 257, 2))
    x[0, 0, 256, 1] = 10.0
    for kernel in [(257, 2), (128, 2)]:
        ours, theirs = ours_and_torch(
            lambda t, k=kernel: pool_ops.max_pool2d(t, k, 1),
            lambda t, k=kernel: TF.max_pool2d(t, k, 1),
            x,
        )
        assert_pair(ours, theirs)


def test_max_pool2d_forward_only(backend):
    """Without a graph (no input needs a gradient) the values are the same."""
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6))
    y = pool_ops.max_pool2d(nb.from_numpy(x), 3, 2, 1)
    np.testing.assert_allclose(y.numpy(), TF.max_pool2d(torch.tensor(x), 3, 2, 1).numpy())


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOLS)
def test_avg_pool2d_matches_torch(
    shape, kernel, stride, padding, layout, count_include_pad, backend
):
    """Means and the evenly spread gradient, counting padded zeros or not."""
    x = np.random.default_rng(5).standard_normal(shape)
    ours, theirs = ours_and_torch(
        lambda t: pool_ops.avg_pool2d(t, kernel, stride, padding, count_include_pad),
        lambda t: TF.avg_pool2d(t, kernel, stride, padding, count_include_pad=count_include_pad),
        x,
        layout,
    )
    assert_pair(ours, theirs)


def test_avg_pool2d_defaults_are_torchs(backend):
    """stride = kernel, padding 0, count_include_pad True: torch's defaults."""
    x = np.random.default_rng(6).standard_normal((1, 2, 7, 6))
    y = pool_ops.avg_pool2d(nb.from_numpy(x), 3)
    np.testing.assert_allclose(y.numpy(), TF.avg_pool2d(torch.tensor(x), 3).numpy(), **TOL)
    y = pool_ops.avg_pool2d(nb.from_numpy(x), 3, 2, 1)  # padded: counts the zeros by default
    want = TF.avg_pool2d(torch.tensor(x), 3, 2, 1).numpy()
    np.testing.assert_allclose(y.numpy(), want, **TOL)
    y = pool_ops.max_pool2d(nb.from_numpy(x), 2)
    np.testing.assert_allclose(y.numpy(), TF.max_pool2d(torch.tensor(x), 2).numpy(), **TOL)


def test_counts():
    """_counts: kh kw everywhere, or the unpadded elements of each window."""
    np.testing.assert_array_equal(
        pool_ops._counts((5, 4), (3, 2), (2, 2), (1, 1), (3, 3), True), np.full((3, 3), 6.0)
    )
    got = pool_ops._counts((5, 4), (3, 2), (2, 2), (1, 1), (3, 3), False)
    np.testing.assert_array_equal(got, np.outer([2, 3, 2], [1, 2, 1]).astype(float))


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), (4, 4), 3])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
def test_adaptive_avg_pool2d_matches_torch(size, layout, backend):
    """Global, equal-bin and uneven-bin adaptive average pooling, values and gradient."""
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 7))
    ours, theirs = ours_and_torch(
        lambda t: pool_ops.adaptive_avg_pool2d(t, size),
        lambda t: TF.adaptive_avg_pool2d(t, size),
        x,
        layout,
    )
    assert_pair(ours, theirs)


@pytest.mark.parametrize("fn", [pool_ops.max_pool2d, pool_ops.avg_pool2d])
def test_pool_padding_boundary(fn):
    """Padding may be half the kernel (floor), not more; the message names the op and both."""
    name = fn.__name__
    x = nb.tensor(np.zeros((1, 1, 6, 6)))
    assert fn(x, (3, 4), 1, (1, 2)).shape == (1, 1, 6, 7)
    with pytest.raises(
        ValueError,
        match=rf"{name}: padding \(2, 2\) must be at most half the "
        r"kernel \(3, 4\)",
    ):
        fn(x, (3, 4), 1, (2, 2))
    with pytest.raises(ValueError, match=rf"{name}: padding \(1, 3\) must be at most half"):
        fn(x, (3, 4), 1, (1, 3))
    with pytest.raises(ValueError, match=rf"{name}: padding must be >= 0, got -1"):
        fn(x, 3, 1, -1)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size must be >= 1, got 0"):
        fn(x, 0)
    with pytest.raises(ValueError, match=rf"{name}: stride must be >= 1, got 0"):
        fn(x, 2, 0)


@pytest.mark.parametrize("fn", [pool_ops.max_pool2d, pool_ops.avg_pool2d])
def test_pool_shape_errors(fn):
    """A wrong rank, or an input smaller than the kernel in either axis, is refused by name; an
    input exactly the kernel's size gives one window."""
    name = fn.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: expected input \(N, C, H, W\), got shape "
        r"\(1, 6, 6\)",
    ):
        fn(nb.tensor(np.zeros((1, 6, 6))), 2)
    for shape in [(1, 1, 2, 5), (1, 1, 5, 2)]:
        text = ", ".join(map(str, shape))
        with pytest.raises(
            ValueError,
            match=rf"{name}: input of shape \({text}\) is smaller "
            r"than the kernel \(3, 3\)",
        ):
            fn(nb.tensor(np.zeros(shape)), 3)
    assert fn(nb.tensor(np.zeros((1, 1, 3, 3))), 3).shape == (1, 1, 1, 1)


def test_adaptive_avg_pool2d_errors():
    with pytest.raises(
        ValueError,
        match=r"adaptive_avg_pool2d: expected input \(N, C, H, W\), "
        r"got shape \(2, 3\)",
    ):
        pool_ops.adaptive_avg_pool2d(nb.tensor(np.zeros((2, 3))), 1)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1"):
        pool_ops.adaptive_avg_pool2d(nb.tensor(np.zeros((1, 1, 4, 4))), 0)
