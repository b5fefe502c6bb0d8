"""Pooling over 2-D windows: max, average, and adaptive (global) average.

Max pooling passes each window's gradient to the position of its maximum (the first one on ties,
as PyTorch); average pooling spreads it evenly over the window. Both loop over the kh*kw kernel
offsets, each a strided slice of the padded input covering that offset of every window
(:func:`nabla.ops.conv.offsets`): a few cheap vectorized passes instead of copying all windows.

Every array here is allocated in the memory layout of the input (see
:func:`nabla.ops.conv_buffers.scratch_like`): a convolution's output is an (N, C, H, W) view of a
(C, H, W, N) array, and the pooled output, its gradient and the masks keep that layout, so the
element-wise passes never mix layouts (which makes NumPy's loops several times slower) and the
next convolution reads the pooled output without a copy.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .conv import chwn, compiled_for, launch, offsets, output_size, pair
from .conv_buffers import scratch, scratch_like


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
    """x padded by ``value``, in x's memory layout (a (C, H, W, N) conv output stays one)."""
    ph, pw = padding
    if not (ph or pw):
        return x
    if value == -np.inf and x.dtype.kind != "f":  # integer images: pad with the smallest value
        value = np.iinfo(x.dtype).min
    n, c, h, w = x.shape
    xp = scratch_like(x, (n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp.fill(value)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


class MaxPool2d(Function):
    """The maximum of each window, and its gradient routed to the window's first maximum.

    Forward keeps a running maximum over the kernel offsets (k = 0, 1, ... in row-major order),
    one strided slice of the padded input at a time, and records for each k > 0 where the offset
    was *strictly* larger than every earlier one: ``won[k] = slice_k > running_max``. The maximum
    of a window then sits at the last offset that won it (offset 0 if none did), which is the
    first maximum in row-major order when values tie: PyTorch's rule. (A window holding NaN
    outputs NaN, as in PyTorch; its gradient goes to the last offset that won before the NaN.)

    Backward walks the offsets in reverse with ``rest``, the gradient not yet routed:
    offset k takes ``rest * won[k]`` and removes it from ``rest``; offset 0 takes what is left.
    When windows do not overlap (stride >= kernel) each offset *writes* its own slice of the
    input gradient; overlapping windows *add*. No argmax indices, no scatter (``np.add.at``).
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out):
        ctx.padding, ctx.kernel, ctx.stride, ctx.x_shape = padding, kernel, stride, x.shape
        ctx.fast = compiled_for(x.dtype)
        if ctx.fast:  # one pass (kernels/pool.py), the winning offsets kept as bytes
            xc = chwn(x)
            y = scratch((xc.shape[0], *out, xc.shape[3]), x.dtype)
            record = bool(ctx.needs_input_grad)
            offsets_type = np.uint8 if kernel[0] * kernel[1] <= 256 else np.int32
            arg = scratch(y.shape if record else (1, 1, 1, 1), offsets_type)
            forward = launch("pool.max_pool_forward", x.size)
            forward(xc, y, arg, *kernel, *stride, *padding, record)
            ctx.arg = arg
            return y.transpose(3, 0, 1, 2)
        xp = _pad(x, padding, -np.inf)
        slices = [(rows, cols) for _, _, rows, cols in offsets(kernel, stride, (1, 1), out)]
        shape = (*x.shape[:2], *out)
        result = scratch_like(xp, shape, x.dtype)  # x's layout (as every array here)
        np.copyto(result, xp[:, :, slices[0][0], slices[0][1]])
        recording = bool(ctx.needs_input_grad)  # empty when no graph is recorded
        won = []
        for rows, cols in slices[1:]:
            candidate = xp[:, :, rows, cols]
            if recording:
                won.append(np.greater(candidate, result, out=scratch_like(xp, shape, bool)))
            np.maximum(result, candidate, out=result)
        ctx.won, ctx.slices, ctx.xp = won, slices, xp
        return result

    @staticmethod
    def backward(ctx, g):
        (kh, kw), (sh, sw) = ctx.kernel, ctx.stride
        (ph, pw), (h, w) = ctx.padding, ctx.x_shape[2:]
        overlapping = sh < kh or sw < kw
        tiled = (sh, sw) == (kh, kw) and (ph, pw) == (0, 0)  # windows side by side, no gaps
        covered = tiled and (g.shape[2] * sh, g.shape[3] * sw) == (h, w)  # ... to the last row
        if ctx.fast:
            n, c = ctx.x_shape[:2]
            gx = scratch((c, h, w, n), g.dtype)
            backward = launch("pool.max_pool_backward", gx.size)
            backward(chwn(g), ctx.arg, gx, kh, kw, sh, sw, ph, pw, overlapping, covered)
            return gx.transpose(3, 0, 1, 2), None, None, None, None
        xp, slices = ctx.xp, ctx.slices
        gxp = scratch_like(xp, xp.shape, g.dtype)
        if not covered:  # a covered input gets every element written below
            gxp.fill(0)
        # ``rest`` in the masks' layout: mixing layouts makes NumPy's loops several times slower.
        rest = scratch_like(xp, g.shape, g.dtype)
        np.copyto(rest, g)
        part = scratch_like(xp, g.shape, g.dtype) if overlapping else None
        for (rows, cols), won in zip(reversed(slices[1:]), reversed(ctx.won)):
            share = gxp[:, :, rows, cols]  # offset k's element of every window
            if overlapping:
                share += np.multiply(rest, won, out=part)
                rest -= part
            else:  # this slice belongs to offset k alone: write it directly
                np.multiply(rest, won, out=share)
                rest -= share
        rows, cols = slices[0]
        if overlapping:
            gxp[:, :, rows, cols] += rest
        else:
            gxp[:, :, rows, cols] = rest
        return gxp[:, :, ph : ph + h, pw : pw + w], None, None, None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out, count_include_pad):
        ctx.padding, ctx.x_shape, ctx.kernel, ctx.stride = padding, x.shape, kernel, stride
        ctx.fast = compiled_for(x.dtype)
        if ctx.fast:
            ctx.divisor = _counts(x.shape[2:], kernel, stride, padding, out, count_include_pad)
            ctx.divisor = ctx.divisor.astype(x.dtype)
            xc = chwn(x)
            y = scratch((xc.shape[0], *out, xc.shape[3]), x.dtype)
            forward = launch("pool.avg_pool_forward", x.size)
            forward(xc, y, ctx.divisor, *kernel, *stride, *padding)
            return y.transpose(3, 0, 1, 2)
        xp = _pad(x, padding, 0.0)
        slices = [(rows, cols) for _, _, rows, cols in offsets(kernel, stride, (1, 1), out)]
        total = np.copy(xp[:, :, slices[0][0], slices[0][1]], order="K")  # keeps x's layout
        for rows, cols in slices[1:]:
            total += xp[:, :, rows, cols]
        if count_include_pad:
            divisor = np.asarray(kernel[0] * kernel[1], dtype=x.dtype)
        else:  # count only the real (unpadded) elements of each window
            ones = _pad(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), padding, 0.0)
            divisor = sum(ones[:, :, rows, cols] for rows, cols in slices)
        ctx.divisor, ctx.slices, ctx.xp = divisor, slices, xp  # xp: for its shape and layout
        total /= divisor
        return total

    @staticmethod
    def backward(ctx, g):
        if ctx.fast:
            n, c, h, w = ctx.x_shape
            gx = scratch((c, h, w, n), g.dtype)
            backward = launch("pool.avg_pool_backward", gx.size)
            backward(chwn(g), gx, ctx.divisor, *ctx.kernel, *ctx.stride, *ctx.padding)
            return gx.transpose(3, 0, 1, 2), None, None, None, None, None
        share = g / ctx.divisor  # every element of a window gets this much
        gxp = np.zeros_like(ctx.xp, dtype=share.dtype)  # x's layout
        for rows, cols in ctx.slices:
            gxp[:, :, rows, cols] += share
        (ph, pw), (h, w) = ctx.padding, ctx.x_shape[2:]
        return gxp[:, :, ph : ph + h, pw : pw + w], None, None, None, None, None


def _counts(size, kernel, stride, padding, out, count_include_pad) -> np.ndarray:
    """The (Ho, Wo) numbers of elements each window averages: kh kw, or its unpadded ones."""
    if count_include_pad:
        return np.full(out, float(kernel[0] * kernel[1]))
    spans = [
        [
            min(i * stride[a] - padding[a] + kernel[a], size[a])
            - max(i * stride[a] - padding[a], 0)
            for i in range(out[a])
        ]
        for a in (0, 1)
    ]
    return np.outer(spans[0], spans[1]).astype(float)


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Maximum over each kernel_size window (stride defaults to the kernel size)."""
    kernel, stride, padding, out = _geometry(x, kernel_size, stride, padding, "max_pool2d")
    return MaxPool2d.apply(x, kernel, stride, padding, out)


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over each kernel_size window; padded zeros count unless ``count_include_pad=False``."""
    kernel, stride, padding, out = _geometry(x, kernel_size, stride, padding, "avg_pool2d")
    return AvgPool2d.apply(x, kernel, stride, padding, out, count_include_pad)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int, int]) -> Tensor:
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
