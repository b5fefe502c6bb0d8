"""2-D convolution by im2col: every receptive field becomes a column, the convolution one matmul.

For input x (N, C, H, W) and weight W (O, C/groups, kh, kw) the output is

    y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] x_pad[n, c, i*s + p*d, j*s + q*d].

**Layout.** Inside, an image batch is stored channel-major with the batch innermost, as a
(C, H, W, N) array, and handed out as an (N, C, H, W) view of it (``transpose(3, 0, 1, 2)``).
Every shape the user sees is PyTorch's; only the strides differ. This layout is what makes the
three big copies and products cheap:

* im2col: cols[(c, p, q), (i, j, n)] = x_pad[c, i*s + p*d, j*s + q*d, n], a (C kh kw, Ho Wo N)
  matrix. With the batch innermost, each kernel offset copies runs of Wo*N contiguous elements
  (stride 1), not runs of Wo, and NumPy's copy loop runs at memory speed;
* the convolution is one GEMM, Y = W.reshape(O, -1) @ cols, of shape (O, Ho Wo N): that is
  already the (C, H, W, N) layout of the output, so the next layer reads it without a copy;
* backward: G (the output gradient, same layout) gives dW = G cols^T, db = G 1 and
  dcols = W^T G, then col2im: each of the kh*kw kernel offsets adds its block of dcols into the
  padded input gradient (overlapping windows accumulate), again in runs of Wo*N.

A network's first layer gets ordinary (N, C, H, W)-contiguous images: it copies them once into
the (C, H, W, N) layout, which costs little next to the im2col matrix, kh*kw times larger.
Every large array of a step comes from :func:`nabla.ops.conv_buffers.scratch`, which reuses
the previous step's arrays once nothing refers to them (fresh ones would be page-faulted in).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .conv_buffers import scratch


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


def to_chwn(x: np.ndarray, padding: tuple) -> np.ndarray:
    """x (N, C, H, W) as a contiguous (C, H + 2 ph, W + 2 pw, N) array, zero-padded.

    Free (a view) when x is an unpadded (N, C, H, W) view of a (C, H, W, N) array."""
    n, c, h, w = x.shape
    ph, pw = padding
    chwn = x.transpose(1, 2, 3, 0)
    if not (ph or pw) and chwn.flags.c_contiguous:
        return chwn
    xp = scratch((c, h + 2 * ph, w + 2 * pw, n), x.dtype)
    xp[:, :ph] = xp[:, ph + h :] = 0  # the border: a reused array holds old values
    xp[:, :, :pw] = xp[:, :, pw + w :] = 0
    xp[:, ph : ph + h, pw : pw + w] = chwn
    return xp


def im2col(xp: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """The (C kh kw, Ho Wo N) matrix of the windows of the padded (C, Hp, Wp, N) input ``xp``:
    row (c, p, q), column (i, j, n) holds xp[c, i*sh + p*dh, j*sw + q*dw, n]."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    c, n = xp.shape[0], xp.shape[3]
    view = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    view = view[:, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, :, ::dh, ::dw]
    cols = scratch((c, kh, kw, ho, wo, n), xp.dtype)
    np.copyto(cols, view.transpose(0, 4, 5, 1, 2, 3))  # the one copy of the forward pass
    return cols.reshape(c * kh * kw, ho * wo * n)


def col2im(g_cols, xp_shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """The adjoint of :func:`im2col`: the (C, Hp, Wp, N) sum of every column's entries at the
    padded-input positions they were copied from."""
    c, n = xp_shape[0], xp_shape[3]
    blocks = g_cols.reshape(c, *kernel, *out, n)
    gxp = scratch(xp_shape, g_cols.dtype)
    gxp.fill(0)
    for p, q, rows, cols in offsets(kernel, stride, dilation, out):
        gxp[:, rows, cols] += blocks[:, p, q]  # one (C, Ho, Wo, N) block per kernel offset
    return gxp


class Conv2d(Function):
    # Groups split the channels into independent convolutions: weight and windows are viewed
    # as (groups, ., .) stacks and every product is one batched matmul (a batch of one when
    # groups == 1, which costs nothing extra).

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        n, _, h, w = x.shape
        o, cg, kh, kw = weight.shape
        out = (
            output_size(h, kh, stride[0], padding[0], dilation[0]),
            output_size(w, kw, stride[1], padding[1], dilation[1]),
        )
        xp = to_chwn(x, padding)
        cols = im2col(xp, (kh, kw), stride, dilation, out)  # (C kh kw, Ho Wo N)
        m = cols.shape[1]
        y = scratch((o, m), np.result_type(weight, cols))
        w_g = weight.reshape(groups, o // groups, cg * kh * kw)
        np.matmul(w_g, cols.reshape(groups, -1, m), out=y.reshape(groups, -1, m))  # Y = W cols
        if bias is not None:
            y += bias[:, None]
        needs = ctx.needs_input_grad  # empty when nothing is recorded
        ctx.cols = cols if needs and needs[1] else None  # only dW needs the windows
        ctx.weight, ctx.groups, ctx.xp_shape, ctx.x_shape = weight, groups, xp.shape, x.shape
        ctx.geometry, ctx.padding = ((kh, kw), stride, dilation, out), padding
        return y.reshape(o, *out, n).transpose(3, 0, 1, 2)  # (N, O, Ho, Wo) view of (O, Ho, Wo, N)

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        weight, groups = ctx.weight, ctx.groups
        o, cg, kh, kw = weight.shape
        g2 = g.transpose(1, 2, 3, 0).reshape(o, -1)  # G: (O, Ho Wo N), free if g has our layout
        m = g2.shape[1]
        g_g = g2.reshape(groups, -1, m)
        # db = G 1 as a BLAS matrix-vector product: 3x faster than NumPy's sum along rows.
        g_b = g2 @ np.ones(m, dtype=g2.dtype) if need_b else None
        g_w = g_x = None
        if need_w:
            # dW = G cols^T, computed as (cols G^T)^T: OpenBLAS is faster (up to 2x here) with
            # the long Ho*Wo*N axis as the inner dimension of its second operand.
            cols_g = ctx.cols.reshape(groups, -1, m)
            g_w = np.matmul(cols_g, g_g.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(weight.shape)
        if need_x:
            w_g = weight.reshape(groups, o // groups, cg * kh * kw)
            g_cols = scratch((groups * cg * kh * kw, m), g2.dtype)
            np.matmul(w_g.transpose(0, 2, 1), g_g, out=g_cols.reshape(groups, -1, m))  # W^T G
            gxp = col2im(g_cols, ctx.xp_shape, *ctx.geometry)
            (ph, pw), (h, w) = ctx.padding, ctx.x_shape[2:]
            g_x = gxp[:, ph : ph + h, pw : pw + w].transpose(3, 0, 1, 2)
        return g_x, g_w, g_b, None, None, None, None


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) of x (N, C, H, W) with
    weight (O, C/groups, kh, kw); ``padding`` may be an int, a pair, "valid" or "same".

    The result has shape (N, O, Ho, Wo) and is stored as (O, Ho, Wo, N) (see the module
    docstring); ``np.ascontiguousarray(y.numpy())`` gives NCHW memory when something needs it.
    """
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
