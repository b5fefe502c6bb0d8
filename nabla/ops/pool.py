"""Pooling over 2-D windows: max, average, and adaptive (global) average.

Max pooling passes each window's gradient to the position of its maximum (the first one on ties,
as PyTorch); average pooling spreads it evenly over the window. Both reuse the window view and
its adjoint from :mod:`nabla.ops.conv`.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .conv import output_size, pair, scatter_windows, windows


def _geometry(x, kernel_size, stride, padding, name: str):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected input (N, C, H, W), got shape {x.shape}")
    kernel = pair(kernel_size, f"{name}: kernel_size")
    stride = kernel if stride is None else pair(stride, f"{name}: stride")
    padding = pair(padding, f"{name}: padding")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")
    out = tuple(output_size(x.shape[2 + i], kernel[i], stride[i], padding[i], 1) for i in (0, 1))
    if out[0] < 1 or out[1] < 1:
        raise ValueError(f"{name}: input of shape {x.shape} is smaller than the kernel {kernel}")
    return kernel, stride, padding, out


def _pad(x: np.ndarray, padding: tuple, value: float) -> np.ndarray:
    ph, pw = padding
    if not (ph or pw):
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out):
        xp = _pad(x, padding, -np.inf)
        win = windows(xp, kernel, stride, (1, 1), out)  # (N, C, Ho, Wo, kh, kw)
        flat = win.reshape(*win.shape[:4], -1)  # copies the windows once
        index = flat.argmax(axis=-1)  # first maximum on ties
        ctx.index, ctx.xp_shape, ctx.geometry = index, xp.shape, (kernel, stride, padding)
        ctx.x_shape = x.shape
        return np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]

    @staticmethod
    def backward(ctx, g):
        kernel, stride, padding = ctx.geometry
        kh, kw = kernel
        # Route each output gradient to the offset (p, q) of its window's maximum.
        offsets = np.arange(kh * kw).reshape(kh, kw, 1, 1, 1, 1)
        hit = ctx.index[None, None] == offsets  # (kh, kw, N, C, Ho, Wo)
        grad_windows = (hit * g).transpose(2, 3, 0, 1, 4, 5)  # (N, C, kh, kw, Ho, Wo)
        gxp = scatter_windows(grad_windows, ctx.xp_shape, kernel, stride, (1, 1))
        (ph, pw), (h, w) = padding, ctx.x_shape[2:]
        return gxp[:, :, ph : ph + h, pw : pw + w], None, None, None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out, count_include_pad):
        xp = _pad(x, padding, 0.0)
        win = windows(xp, kernel, stride, (1, 1), out)
        if count_include_pad:
            divisor = np.asarray(kernel[0] * kernel[1], dtype=x.dtype)
        else:  # count only the real (unpadded) elements of each window
            ones = _pad(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), padding, 0.0)
            divisor = windows(ones, kernel, stride, (1, 1), out).sum(axis=(-2, -1))
        ctx.divisor, ctx.xp_shape, ctx.geometry = divisor, xp.shape, (kernel, stride, padding)
        ctx.x_shape = x.shape
        return win.sum(axis=(-2, -1)) / divisor

    @staticmethod
    def backward(ctx, g):
        kernel, stride, padding = ctx.geometry
        share = g / ctx.divisor  # (N, C, Ho, Wo): each window element gets this much
        grad_windows = np.broadcast_to(
            share[:, :, None, None], (*g.shape[:2], *kernel, *g.shape[2:])
        )
        gxp = scatter_windows(grad_windows, ctx.xp_shape, kernel, stride, (1, 1))
        (ph, pw), (h, w) = padding, ctx.x_shape[2:]
        return gxp[:, :, ph : ph + h, pw : pw + w], None, None, None, None, None


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Maximum over each kernel_size window (stride defaults to the kernel size)."""
    kernel, stride, padding, out = _geometry(x, kernel_size, stride, padding, "max_pool2d")
    return MaxPool2d.apply(x, kernel, stride, padding, out)


def avg_pool2d(
    x: Tensor, kernel_size, stride=None, padding=0, count_include_pad: bool = True
) -> Tensor:
    """Mean over each kernel_size window; padded zeros count unless ``count_include_pad=False``."""
    kernel, stride, padding, out = _geometry(x, kernel_size, stride, padding, "avg_pool2d")
    return AvgPool2d.apply(x, kernel, stride, padding, out, count_include_pad)


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average over a grid of ``output_size`` bins covering the input, as PyTorch: bin i spans
    rows floor(i H / out) to ceil((i + 1) H / out). Output size 1 is global average pooling."""
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected input (N, C, H, W), got shape {x.shape}")
    oh, ow = pair(output_size, "adaptive_avg_pool2d: output_size")
    h, w = x.shape[2:]
    if (oh, ow) == (1, 1):
        return x.mean(axis=(2, 3), keepdims=True)
    if h % oh == 0 and w % ow == 0:  # equal bins: an average pool
        return avg_pool2d(x, (h // oh, w // ow))
    rows = []
    for i in range(oh):
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        cells = []
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            cells.append(x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)))
        rows.append(cells)
    from .shape import stack  # local: shape imports nothing from here, but keeps this module small

    return stack([stack(cells, axis=-1) for cells in rows], axis=-2)
