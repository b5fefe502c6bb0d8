"""Convolution kernels (kernels/conv.py) against the NumPy reference (ops/conv.py), and gradchecks
on the kernel path.

im2col and col2im move values without arithmetic (col2im adds in the reference's order), so they
must agree bit for bit; the direct convolution sums in another order than BLAS, so it agrees to
rounding. Each geometry runs the direct convolution ("always") and im2col + GEMM ("never").
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels
from nabla.ops import conv as conv_ops

# (N, C, O, (H, W), kernel, stride, padding, dilation, groups)
GEOMETRIES = [
    (2, 3, 4, (7, 6), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 1, 6, (9, 9), (5, 5), (1, 1), (2, 2), (1, 1), 1),  # N = 1, LeNet's first layer
    (3, 6, 5, (8, 8), (5, 5), (1, 1), (0, 0), (1, 1), 1),
    (2, 4, 6, (9, 7), (3, 2), (2, 1), (1, 0), (1, 1), 2),  # groups, odd kernel and stride
    (2, 2, 3, (9, 9), (3, 3), (1, 1), (2, 2), (2, 2), 1),  # dilation
    (2, 2, 3, (8, 9), (3, 3), (1, 1), (1, 2), (2, 1), 1),  # mixed dilation and padding
    (2, 3, 4, (5, 5), (1, 1), (2, 2), (0, 0), (1, 1), 1),  # 1x1, stride 2 (ResNet shortcut)
    (2, 3, 2, (6, 7), (4, 2), (1, 1), (1, 1), (1, 1), 1),  # even kernel: no 'same' gradient
    (1, 2, 3, (5, 6), (2, 3), (3, 2), (1, 1), (1, 2), 1),
    (4, 4, 4, (6, 6), (3, 3), (1, 1), (0, 0), (1, 1), 4),  # depthwise
]
TOLERANCE = {"float32": 2e-5, "float64": 1e-12}


@pytest.fixture(autouse=True)
def compiled_kernels():
    """These tests are about the kernels: they run them also under NABLA_KERNELS=reference."""
    with kernels.reference(False):
        yield


def convolve(x, w, b, geometry, relu, seed, layout):
    """Output and gradients (x, W, b) of one conv2d, with a random cotangent."""
    _, _, _, _, _, stride, padding, dilation, groups = geometry
    data = (
        x
        if layout == "nchw"
        else np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    )
    xt = nb.from_numpy(data)  # keeps the memory layout
    xt.requires_grad = True
    wt = nb.tensor(w, requires_grad=True, dtype=w.dtype)
    bt = None if b is None else nb.tensor(b, requires_grad=True, dtype=b.dtype)
    y = conv_ops.conv2d(xt, wt, bt, stride, padding, dilation, groups, relu=relu)
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    (y * nb.tensor(g, dtype=x.dtype)).sum().backward()
    return [y.numpy(), xt.grad, wt.grad] + ([] if b is None else [bt.grad])


@pytest.fixture
def direct_mode():
    previous = conv_ops.DIRECT
    yield lambda mode: setattr(conv_ops, "DIRECT", mode)
    conv_ops.DIRECT = previous


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["always", "never"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv2d_kernels_equal_reference(geometry, mode, dtype, direct_mode):
    n, c, o, size, kernel, *_, groups = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    w = rng.standard_normal((o, c // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    direct_mode(mode)
    for relu, bias, layout in [(False, b, "nchw"), (True, b, "chwn"), (True, None, "nchw")]:
        compiled = convolve(x, w, bias, geometry, relu, 1, layout)
        with kernels.reference():
            reference = convolve(x, w, bias, geometry, relu, 1, layout)
        for got, want in zip(compiled, reference):
            scale = max(np.abs(want).max(), 1.0)
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_and_col2im_kernels_bit_for_bit(geometry, dtype):
    n, c, _, (h, w), (kh, kw), stride, padding, dilation, _ = geometry
    x = np.random.default_rng(0).standard_normal((c, h, w, n)).astype(dtype)
    out = tuple(
        conv_ops.output_size((h, w)[a], (kh, kw)[a], stride[a], padding[a], dilation[a])
        for a in (0, 1)
    )
    geo = (kh, kw, *stride, *padding, *dilation)
    cols = np.empty((c, kh, kw, *out, n), dtype)
    kernels.kernel("conv.im2col", cols.size)(x, cols, *geo)
    xp = conv_ops.to_chwn(x.transpose(3, 0, 1, 2), padding)
    reference = conv_ops.im2col(xp, (kh, kw), stride, dilation, out)
    np.testing.assert_array_equal(cols.reshape(reference.shape), reference)

    g_cols = np.random.default_rng(1).standard_normal(reference.shape).astype(dtype)
    gx = np.empty_like(x)
    kernels.kernel("conv.col2im", g_cols.size)(g_cols.reshape(cols.shape), gx, *geo)
    gxp = conv_ops.col2im(g_cols, xp.shape, (kh, kw), stride, dilation, out)
    (ph, pw) = padding
    np.testing.assert_array_equal(gx, gxp[:, ph : ph + h, pw : pw + w])


@pytest.mark.parametrize("mode", ["always", "never"])
@pytest.mark.parametrize("geometry", GEOMETRIES[:6])
def test_conv2d_gradcheck_on_kernel_path(geometry, mode, direct_mode):
    n, c, o, size, kernel, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(2)
    x = nb.tensor(rng.standard_normal((n, c, *size)), requires_grad=True, dtype="float64")
    w = nb.tensor(
        rng.standard_normal((o, c // groups, *kernel)), requires_grad=True, dtype="float64"
    )
    b = nb.tensor(rng.standard_normal(o), requires_grad=True, dtype="float64")
    direct_mode(mode)
    assert kernels.compiled()
    for relu in (False, True):
        nb.gradcheck(
            lambda x, w, b, relu=relu: conv_ops.conv2d(
                x, w, b, stride, padding, dilation, groups, relu=relu
            ),
            [x, w, b],
        )


def test_direct_rule_picks_the_direct_convolution_for_resnet_layers():
    assert conv_ops.use_direct(16, 1, (1, 1), 32 * 64)  # ResNet's 16-channel 3x3 layers
    assert conv_ops.use_direct(64, 1, (1, 1), 16 * 64)  # the small convnet's second layer
    assert not conv_ops.use_direct(64, 1, (1, 1), 8 * 64)  # short rows: BLAS
    assert not conv_ops.use_direct(128, 1, (1, 1), 32 * 64)  # BLAS is fast with many channels
    assert not conv_ops.use_direct(16, 1, (2, 2), 32 * 64)  # strided: im2col + GEMM
    assert not conv_ops.use_direct(16, 2, (1, 1), 32 * 64)  # groups: batched GEMM
    assert conv_ops.use_direct_weight_grad((3, 3), 1, (1, 1), 16 * 64)  # any channel count
    assert not conv_ops.use_direct_weight_grad((3, 3), 1, (1, 1), 8 * 64)  # short rows: BLAS
    assert not conv_ops.use_direct_weight_grad((5, 5), 1, (1, 1), 32 * 64)  # 3x3 only


@pytest.mark.parametrize("mode", ["always", "never"])
@pytest.mark.parametrize("k", [3, 5])  # 5x5 "always": a direct forward, an im2col dW (backward)
@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_conv2d_same_with_one_or_two_threads(mode, k, direct_mode, monkeypatch):
    monkeypatch.setattr(conv_ops, "PARALLEL_MIN", 1)  # the parallel copies at 2 threads
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 8, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, 8, k, k)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    geometry = (16, 8, 8, (16, 16), (k, k), (1, 1), (1, 1), (1, 1), 1)
    direct_mode(mode)
    threads = kernels.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            kernels.set_num_threads(n)
            results.append(convolve(x, w, b, geometry, True, 4, "chwn"))
    finally:
        kernels.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "n,c,o,size,dilation",
    [
        (2, 3, 4, (7, 6), (1, 1)),
        (3, 2, 5, (5, 9), (1, 1)),
        (1, 1, 1, (3, 3), (1, 1)),
        (2, 4, 3, (9, 8), (2, 1)),
        (64, 16, 16, (8, 8), (1, 1)),
    ],
)
def test_weight_grad_kernel_equals_windows_times_gradient(n, c, o, size, dilation, dtype):
    # the reference: dW = G cols^T with the im2col matrix of the padded input (ops/conv.py)
    rng = np.random.default_rng(5)
    out = tuple(size[a] + 2 - 2 * dilation[a] for a in (0, 1))  # padding 1
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    xp = conv_ops.to_chwn(x, (1, 1))
    g = rng.standard_normal((o, *out, n)).astype(dtype)
    cols = conv_ops.im2col(xp, (3, 3), (1, 1), dilation, out)
    want = (g.reshape(o, -1).astype(np.float64) @ cols.T.astype(np.float64)).reshape(o, c, 3, 3)
    threads = kernels.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            kernels.set_num_threads(count)
            got = np.full((o, c, 3, 3), np.nan, dtype)
            kernels.kernel("conv.weight_grad", g.size, 1)(xp, g, got, *dilation)  # parallel at 2
            results.append(got)
    finally:
        kernels.set_num_threads(threads)
    np.testing.assert_array_equal(results[0], results[1])  # the same sums on any thread count
    scale = np.abs(want).max()
    np.testing.assert_allclose(results[0], want, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_launch_splits_only_large_work(monkeypatch):
    # a parallel kernel wakes a sleeping thread (tens of microseconds): small work stays on one
    monkeypatch.setattr(conv_ops, "PARALLEL_MIN", 1000)
    threads = kernels.get_num_threads()
    try:
        kernels.set_num_threads(2)
        pair = kernels.runtime._pairs.get("conv.bias_relu") or kernels.runtime._compile_pair(
            "conv.bias_relu"
        )
        assert conv_ops.launch("conv.bias_relu", 999) is pair[0]
        if kernels.threading_layer() == "omp":
            assert conv_ops.launch("conv.bias_relu", 1000) is pair[1]
    finally:
        kernels.set_num_threads(threads)
