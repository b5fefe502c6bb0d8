"""Pooling over 2-D windows: max, average, and adaptive (global) average.

Max pooling passes each window's gradient to the position of its maximum (the first one on ties,
as PyTorch); average pooling spreads it evenly over the window. Both loop over the kh*kw kernel
offsets, each a strided slice of the padded input covering that offset of every window
(:func:`nabla.ops.conv.offsets`): a few cheap vectorized passes instead of copying all windows.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .conv import offsets, output_size, pair


def _geometry(x, kernel_size, stride, padding, name: str):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected input (N, C, H, W), got shape {x.shape}")
    kernel = pair(kernel_size, f"{name}: kernel_size")
    stride = kernel if stride is None else pair(stride, f"{name}: stride")
    padding = pair(padding, f"{name}: padding", minimum=0)
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
    if value == -np.inf and x.dtype.kind != "f":  # integer images: pad with the smallest value
        value = np.iinfo(x.dtype).min
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


class MaxPool2d(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out):
        # The maximum over kernel offsets, one strided slice of the padded input at a time:
        # kh*kw cheap passes instead of copying every window.
        xp = _pad(x, padding, -np.inf)
        slices = [(rows, cols) for _, _, rows, cols in offsets(kernel, stride, (1, 1), out)]
        result = xp[:, :, slices[0][0], slices[0][1]].copy()
        for rows, cols in slices[1:]:
            np.maximum(result, xp[:, :, rows, cols], out=result)
        ctx.xp, ctx.out, ctx.slices, ctx.padding, ctx.x_shape = xp, result, slices, padding, x.shape
        return result

    @staticmethod
    def backward(ctx, g):
        # Each window's gradient goes to its first maximum in offset order (PyTorch's rule):
        # ``taken`` marks windows whose maximum was already found at an earlier offset.
        xp, out = ctx.xp, ctx.out
        gxp = np.zeros(xp.shape, dtype=g.dtype)
        taken = np.zeros(out.shape, dtype=bool)
        for rows, cols in ctx.slices:
            hit = xp[:, :, rows, cols] == out
            hit &= ~taken
            taken |= hit
            gxp[:, :, rows, cols] += g * hit
        (ph, pw), (h, w) = ctx.padding, ctx.x_shape[2:]
        return gxp[:, :, ph : ph + h, pw : pw + w], None, None, None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out, count_include_pad):
        xp = _pad(x, padding, 0.0)
        slices = [(rows, cols) for _, _, rows, cols in offsets(kernel, stride, (1, 1), out)]
        total = xp[:, :, slices[0][0], slices[0][1]].copy()
        for rows, cols in slices[1:]:
            total += xp[:, :, rows, cols]
        if count_include_pad:
            divisor = np.asarray(kernel[0] * kernel[1], dtype=x.dtype)
        else:  # count only the real (unpadded) elements of each window
            ones = _pad(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), padding, 0.0)
            divisor = sum(ones[:, :, rows, cols] for rows, cols in slices)
        ctx.divisor, ctx.slices, ctx.xp_shape = divisor, slices, xp.shape
        ctx.padding, ctx.x_shape = padding, x.shape
        total /= divisor
        return total

    @staticmethod
    def backward(ctx, g):
        share = g / ctx.divisor  # every element of a window gets this much
        gxp = np.zeros(ctx.xp_shape, dtype=share.dtype)
        for rows, cols in ctx.slices:
            gxp[:, :, rows, cols] += share
        (ph, pw), (h, w) = ctx.padding, ctx.x_shape[2:]
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
