"""2-D convolution by im2col: every receptive field becomes a row, the convolution one matmul.

For input x (N, C, H, W) and weight W (O, C/groups, kh, kw) the output is

    y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] x_pad[n, c, i*s + p*d, j*s + q*d].

``sliding_window_view`` exposes every window of the padded input without copying; one reshape
copies them into the im2col matrix (stored transposed: one row per (c, p, q), one column per
output position), and the convolution is one matmul, ``W.reshape(O, -1) @ cols^T``. Backward is
two more matmuls, dW = G cols and dcols^T = W^T G, then col2im: each of the kh*kw kernel offsets
adds its block of dcols back into the padded input gradient (overlapping windows accumulate).
Groups split the channels into independent convolutions, done as one batched matmul.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..autograd.function import Function
from ..autograd.tensor import Tensor


def pair(value, name: str, minimum: int = 1) -> tuple:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    result = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(result) != 2 or not all(isinstance(v, (int, np.integer)) for v in result):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(result[0]), int(result[1])


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def offsets(kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """For each kernel offset (p, q): the rows and columns of the padded input it touches, as
    slices, so that ``xp[..., rows, cols]`` holds that offset's element of every window."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    for p in range(kh):
        for q in range(kw):
            yield (
                p,
                q,
                slice(p * dh, p * dh + (ho - 1) * sh + 1, sh),
                slice(q * dw, q * dw + (wo - 1) * sw + 1, sw),
            )


def windows(xp: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """View (N, C, Ho, Wo, kh, kw) of the windows of the padded input ``xp`` (no copy)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    view = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw]


class Conv2d(Function):
    # Layout: the im2col matrix is built transposed, cols^T of shape (C*kh*kw, N*Ho*Wo), so that
    # both the copy into it and the col2im scatter move whole rows of Wo contiguous elements.
    # The output is computed as (O, N*Ho*Wo) and returned as an (N, O, Ho, Wo) view of it.

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        (ph, pw) = padding
        ho = output_size(h, kh, stride[0], ph, dilation[0])
        wo = output_size(w, kw, stride[1], pw, dilation[1])
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        win = windows(xp, (kh, kw), stride, dilation, (ho, wo))
        cols_t = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo)  # the copy
        k = cg * kh * kw
        if groups == 1:
            y_t = weight.reshape(o, k) @ cols_t
        else:
            w_g = weight.reshape(groups, o // groups, k)
            y_t = np.matmul(w_g, cols_t.reshape(groups, k, -1)).reshape(o, -1)
        if bias is not None:
            y_t += bias[:, None]
        ctx.cols_t, ctx.weight, ctx.groups = cols_t, weight, groups
        ctx.shapes = (x.shape, xp.shape, (ho, wo))
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        return y_t.reshape(o, n, ho, wo).transpose(1, 0, 2, 3)

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        cols_t, weight, groups = ctx.cols_t, ctx.weight, ctx.groups
        x_shape, xp_shape, out = ctx.shapes
        o, cg, kh, kw = weight.shape
        k = cg * kh * kw
        g_t = g.transpose(1, 0, 2, 3).reshape(o, -1)  # (O, N*Ho*Wo); free if g has our layout
        g_b = g_t.sum(axis=1) if need_b else None
        g_w = g_x = None
        if groups == 1:
            if need_w:
                g_w = (g_t @ cols_t.T).reshape(weight.shape)  # dW = G^T cols
            if need_x:
                g_cols_t = weight.reshape(o, k).T @ g_t  # dcols^T = W^T G^T
        else:
            g_g = g_t.reshape(groups, o // groups, -1)
            if need_w:
                cols_g = cols_t.reshape(groups, k, -1)
                g_w = np.matmul(g_g, cols_g.transpose(0, 2, 1)).reshape(weight.shape)
            if need_x:
                w_g = weight.reshape(groups, o // groups, k)
                g_cols_t = np.matmul(w_g.transpose(0, 2, 1), g_g).reshape(groups * k, -1)
        if need_x:
            n, c, h, w = x_shape
            # col2im: every kernel offset adds its (C, N, Ho, Wo) block into the input gradient.
            blocks = g_cols_t.reshape(c, kh, kw, n, *out)
            gxp = np.zeros((c, n, *xp_shape[2:]), dtype=g_cols_t.dtype)
            for p, q, rows, cols in offsets((kh, kw), ctx.stride, ctx.dilation, out):
                gxp[:, :, rows, cols] += blocks[:, p, q]
            (ph, pw) = ctx.padding
            g_x = gxp[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3)
        return g_x, g_w, g_b, None, None, None, None


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) of x (N, C, H, W) with
    weight (O, C/groups, kh, kw); ``padding`` may be an int, a pair, "valid" or "same"."""
    stride, dilation = pair(stride, "conv2d: stride"), pair(dilation, "conv2d: dilation")
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected weight (O, C/groups, kh, kw), got shape {weight.shape}")
    o, cg, kh, kw = weight.shape
    if groups < 1 or x.shape[1] % groups or o % groups:
        raise ValueError(
            f"conv2d: groups={groups} must divide the input channels {x.shape[1]} and the "
            f"output channels {o}"
        )
    if x.shape[1] != cg * groups:
        raise ValueError(
            f"conv2d: input of shape {x.shape} has {x.shape[1]} channels, weight of shape "
            f"{weight.shape} expects {cg * groups}"
        )
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same" and stride == (1, 1):
            totals = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
            if totals[0] % 2 or totals[1] % 2:
                raise ValueError("conv2d: padding='same' needs an odd effective kernel size")
            padding = (totals[0] // 2, totals[1] // 2)
        else:
            raise ValueError(
                f"conv2d: padding must be 'valid', 'same' (stride 1) or ints, got {padding!r}"
            )
    padding = pair(padding, "conv2d: padding", minimum=0)
    h_out = output_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    w_out = output_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"conv2d: input of shape {x.shape} is smaller than the kernel {(kh, kw)} "
            f"(dilation {dilation}, padding {padding})"
        )
    if bias is not None and tuple(bias.shape) != (o,):
        raise ValueError(f"conv2d: bias must have shape ({o},), got {tuple(bias.shape)}")
    if isinstance(x, Tensor) and x.dtype != weight.dtype:
        x = x.astype(weight.dtype)
    return Conv2d.apply(x, weight, bias, stride, padding, dilation, groups)
