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
* backward: G (the output gradient, same layout) gives dW = G cols^T (for stride-1 3x3 layers
  :func:`use_direct_weight_grad` computes it from the padded input instead), db = G 1 and
  dcols = W^T G, then col2im: each of the kh*kw kernel offsets adds its block of dcols into the
  padded input gradient (overlapping windows accumulate), again in runs of Wo*N.

A network's first layer gets ordinary (N, C, H, W)-contiguous images: it copies them once into
the (C, H, W, N) layout, which costs little next to the im2col matrix, kh*kw times larger.
Every large array of a step comes from :func:`nabla.ops.conv_buffers.scratch`, which reuses
the previous step's arrays once nothing refers to them (fresh ones would be page-faulted in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import DTypeLike

from .. import kernels
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .activations import relu_grad
from .conv_buffers import scratch


def pair(value: int | Sequence[int], name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    result = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(result) != 2 or not all(isinstance(v, (int, np.integer)) for v in result):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(result[0]), int(result[1])


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def offsets(
    kernel: tuple, stride: tuple, dilation: tuple, out: tuple
) -> Iterator[tuple[int, int, slice, slice]]:
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


def im2col(xp: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple) -> np.ndarray:
    """The (C kh kw, Ho Wo N) matrix of the windows of the padded (C, Hp, Wp, N) input ``xp``:
    row (c, p, q), column (i, j, n) holds xp[c, i*sh + p*dh, j*sw + q*dw, n]."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    c, n = xp.shape[0], xp.shape[3]
    view = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    view = view[:, ::sh, ::sw, :, ::dh, ::dw]  # every sh-th window start: ho (wo) of them
    cols = scratch((c, kh, kw, ho, wo, n), xp.dtype)
    np.copyto(cols, view.transpose(0, 4, 5, 1, 2, 3))  # the one copy of the forward pass
    return cols.reshape(c * kh * kw, ho * wo * n)


def col2im(
    g_cols: np.ndarray,
    xp_shape: tuple,
    kernel: tuple,
    stride: tuple,
    dilation: tuple,
    out: tuple,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: the (C, Hp, Wp, N) sum of every column's entries at the
    padded-input positions they were copied from."""
    c, n = xp_shape[0], xp_shape[3]
    blocks = g_cols.reshape(c, *kernel, *out, n)
    gxp = scratch(xp_shape, g_cols.dtype)
    gxp.fill(0)
    for p, q, rows, cols in offsets(kernel, stride, dilation, out):
        gxp[:, rows, cols] += blocks[:, p, q]  # one (C, Ho, Wo, N) block per kernel offset
    return gxp


def compiled_for(dtype: DTypeLike) -> bool:
    """Whether the compiled kernels handle arrays of ``dtype`` (floats, kernels on)."""
    return dtype in (np.float32, np.float64) and kernels.compiled()


def chwn(x: np.ndarray) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous (C, H, W, N) array: a view when x has that layout,
    else a copy (a network's first layer gets NCHW images)."""
    view = x.transpose(1, 2, 3, 0)
    if view.flags.c_contiguous:
        return view
    copy = scratch(view.shape, x.dtype)
    np.copyto(copy, view)
    return copy


# When the kernels of the convolution, pooling and normalization layers use every thread: from
# PARALLEL_MIN units of work, a unit being one value moved (a copy into the im2col matrix, a
# pooling window's element, a normalization pass over a value) or MACS_PER_UNIT multiply-adds
# (a convolution's inner loop does 16 float32 lanes at a time). A parallel kernel wakes the
# other thread, asleep (OMP_WAIT_POLICY=PASSIVE, kernels/runtime.py): about 40 us on the
# benchmark machine (a virtual machine), more while OpenBLAS's thread still spins on that core
# after a product; so only a kernel of well over 100 us on one thread is split. Measured on it
# (2 threads, batch 64, ms per SGD step, medians of 3 processes; 2^16 units, 2^20, 2^22):
# LeNet-5 4.87, 4.05, 4.38; the small convnet 24.1, 22.6, 25.3; ResNet-20 190, 178, 174.
PARALLEL_MIN = 1 << 20
MACS_PER_UNIT = 16


def launch(name: str, work: int) -> Callable[..., Any]:
    """The compiled kernel ``name`` for ``work`` units (see PARALLEL_MIN): its parallel copy
    for large work, else the one-thread one."""
    return kernels.kernel(name, work, PARALLEL_MIN)


#: When the direct convolution runs instead of im2col + GEMM: "auto" (the rule in use_direct),
#: "always" or "never" where it applies (stride 1, groups 1, compiled kernels); tests set it.
DIRECT = "auto"


def use_direct(
    out_channels: int,
    groups: int,
    stride: tuple[int, int],
    row: int,
    size: float = 1,
    out_size: float = 1,
) -> bool:
    """Whether to convolve directly (kernels.conv.direct) rather than by im2col + GEMM.

    Measured on the benchmark machine (AMD EPYC, AVX-512, OpenBLAS 0.3.31, one thread): OpenBLAS
    multiplies at 25-35 GFLOP/s when the weight matrix has 6 to 32 rows (the output channels)
    and at 75 when it has 64; the direct loop reaches 70-75 (3x3, 64-byte-aligned rows) and
    also skips the im2col matrix. 3x3, batch 64, im2col + GEMM against direct: 13.5 against
    4.7 ms (16 channels, 32x32), 10.3 against 8.3 (32 to 64 channels, 16x16), 4.2 against 4.9
    (64 channels, 8x8). So: direct for at most 64 output channels, with output rows of at least
    1024 values (Wo*N; shorter rows pay the loop set-up), and, for the input gradient, only when
    the padded G is not much larger than x (a 'same' convolution), since it then multiplies
    zeros."""
    if groups != 1 or stride != (1, 1) or DIRECT == "never":
        return False
    return DIRECT == "always" or (out_channels <= 64 and row >= 1024 and size <= 1.3 * out_size)


def use_direct_weight_grad(
    kernel: tuple[int, int], groups: int, stride: tuple[int, int], row: int
) -> bool:
    """Whether dW comes from kernels.conv.weight_grad (3x3, stride 1) rather than G cols^T.

    Measured as in :func:`use_direct` (one thread, batch 64, against the GEMM alone): 3.0
    against 6.5 ms (16 channels, 32x32), 6.4 against 7.8 (32 to 64 channels, 16x16), equal at 64
    channels, 8x8 (rows of 512 values). So: direct for output rows of at least 1024 values."""
    if groups != 1 or stride != (1, 1) or tuple(kernel) != (3, 3) or DIRECT == "never":
        return False
    return DIRECT == "always" or row >= 1024


class Conv2d(Function):
    # Groups split the channels into independent convolutions: weight and windows are viewed
    # as (groups, ., .) stacks and every product is one batched matmul (a batch of one when
    # groups == 1, which costs nothing extra).

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, relu=False):
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        out = (
            output_size(h, kh, stride[0], padding[0], dilation[0]),
            output_size(w, kw, stride[1], padding[1], dilation[1]),
        )
        geometry = (kh, kw, *stride, *padding, *dilation)
        fast = compiled_for(x.dtype) and x.dtype == weight.dtype
        needs = ctx.needs_input_grad  # empty when nothing is recorded
        ctx.cols = ctx.xp = None
        row = out[1] * n  # Wo*N: the length of the loops over an output row
        want_w = bool(fast and needs and needs[1])  # backward will compute dW (compiled)
        ctx.direct_w = want_w and use_direct_weight_grad((kh, kw), groups, stride, row)
        if fast and use_direct(o, groups, stride, row):
            xp = to_chwn(x, padding)
            y = scratch((o, *out, n), x.dtype)
            b = np.zeros(o, x.dtype) if bias is None else bias
            direct = launch("conv.direct", y.size * cg * kh * kw // MACS_PER_UNIT)
            direct(xp, weight, b, y, *dilation, bias is not None, relu)
            ctx.xp = xp if needs and needs[1] else None  # backward rebuilds the windows for dW
            y = y.reshape(o, -1)
        else:
            if fast:  # the windows straight from the unpadded input, zeros at the border
                cols = scratch((c, kh, kw, *out, n), x.dtype)
                launch("conv.im2col", cols.size)(chwn(x), cols, *geometry)
                cols = cols.reshape(c * kh * kw, -1)
            else:
                xp = to_chwn(x, padding)
                cols = im2col(xp, (kh, kw), stride, dilation, out)  # (C kh kw, Ho Wo N)
            m = cols.shape[1]
            y = scratch((o, m), np.result_type(weight, cols))
            w_g = weight.reshape(groups, o // groups, cg * kh * kw)
            np.matmul(w_g, cols.reshape(groups, -1, m), out=y.reshape(groups, -1, m))  # W cols
            if fast and (bias is not None or relu):  # one pass: y + b, rectified
                b = np.zeros(o, y.dtype) if bias is None else bias
                bias_relu = launch("conv.bias_relu", y.size)
                bias_relu(y, b, bias is not None, relu)
            else:
                if bias is not None:
                    y += bias[:, None]
                if relu:
                    np.maximum(y, 0, out=y)
            if ctx.direct_w:  # dW from the padded input: keep it rather than the 9x larger cols
                ctx.xp = to_chwn(x, padding)
            else:
                ctx.cols = cols if needs and needs[1] else None  # only dW needs the windows
        ctx.weight, ctx.groups, ctx.x_shape, ctx.fast = weight, groups, x.shape, fast
        ctx.geometry, ctx.out_size = geometry, out
        y = y.reshape(o, *out, n).transpose(3, 0, 1, 2)  # (N, O, Ho, Wo) view of (O, Ho, Wo, N)
        if relu:
            ctx.out = y
        return y

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        weight, groups = ctx.weight, ctx.groups
        o, _, kh, kw = weight.shape
        g2 = g.transpose(1, 2, 3, 0).reshape(o, -1)  # G: (O, Ho Wo N), free if g has our layout
        m = g2.shape[1]
        g_g = g2.reshape(groups, -1, m)
        # db = G 1 as a BLAS matrix-vector product: 3x faster than NumPy's sum along rows.
        g_b = g2 @ np.ones(m, dtype=g2.dtype) if need_b else None
        g_w = g_x = None
        if need_w and ctx.direct_w and g.dtype == weight.dtype:
            g_w = np.empty(weight.shape, g2.dtype)
            g_rows = np.ascontiguousarray(g2).reshape(o, *ctx.out_size, -1)  # (O, Ho, Wo, N)
            direct = launch("conv.weight_grad", g_w.size * g2.shape[1] // MACS_PER_UNIT)
            direct(ctx.xp, g_rows, g_w, *ctx.geometry[6:])
        elif need_w:
            cols = ctx.cols
            if cols is None:  # the windows of the padded input kept by the forward pass
                n, c, _, _ = ctx.x_shape
                cols = scratch((c, kh, kw, *ctx.out_size, n), ctx.xp.dtype)
                unpadded = (kh, kw, *ctx.geometry[2:4], 0, 0, *ctx.geometry[6:])
                launch("conv.im2col", cols.size)(ctx.xp, cols, *unpadded)
            # dW = G cols^T, computed as (cols G^T)^T: OpenBLAS is faster (up to 2x here) with
            # the long Ho*Wo*N axis as the inner dimension of its second operand.
            cols_g = cols.reshape(groups, -1, m)
            g_w = np.matmul(cols_g, g_g.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(weight.shape)
        if need_x:
            g_x = _input_grad(ctx, g, g_g)
        return g_x, g_w, g_b, None, None, None, None


def _input_grad(ctx, g, g_g):
    """dL/dx: the transposed convolution of G, as dcols = W^T G and col2im, or (stride 1, few
    channels) as a direct convolution of the padded G with the flipped, transposed kernel:
    dx[c, h, w] = sum_{o, p, q} W[o, c, p, q] G[o, h + ph - p dh, w + pw - q dw]."""
    weight, groups = ctx.weight, ctx.groups
    o, cg, kh, kw = weight.shape
    n, c, h, w = ctx.x_shape
    _, _, sh, sw, ph, pw, dh, dw = ctx.geometry
    out, m = ctx.out_size, g_g.shape[2]
    fast = ctx.fast and g.dtype == weight.dtype
    border = ((kh - 1) * dh - ph, (kw - 1) * dw - pw)  # G's padding: the output is x's size
    if fast and min(border) >= 0 and use_direct(c, groups, (sh, sw), w * n, h * w, out[0] * out[1]):
        gp = to_chwn(g, border)
        flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        gx = scratch((c, h, w, n), g.dtype)
        direct = launch("conv.direct", gx.size * o * kh * kw // MACS_PER_UNIT)
        direct(gp, flipped, np.zeros(c, g.dtype), gx, dh, dw, False, False)
        return gx.transpose(3, 0, 1, 2)
    w_g = weight.reshape(groups, o // groups, cg * kh * kw)
    g_cols = scratch((groups * cg * kh * kw, m), g_g.dtype)
    np.matmul(w_g.transpose(0, 2, 1), g_g, out=g_cols.reshape(groups, -1, m))  # W^T G
    if fast:
        gx = scratch((c, h, w, n), g_cols.dtype)
        blocks = g_cols.reshape(c, kh, kw, *out, n)
        launch("conv.col2im", g_cols.size)(blocks, gx, *ctx.geometry)
        return gx.transpose(3, 0, 1, 2)
    gxp = col2im(g_cols, (c, h + 2 * ph, w + 2 * pw, n), (kh, kw), (sh, sw), (dh, dw), out)
    return gxp[:, ph : ph + h, pw : pw + w].transpose(3, 0, 1, 2)


class Conv2dReLU(Function):
    """relu(conv2d(x, W, b)), fused: the rectifier in the bias pass over the product (no second
    array, no second graph node); backward masks G once (``relu_grad``), then takes Conv2d's
    products. The same numbers as ``relu(conv2d(x, W, b))``, bit for bit."""

    saves_output = True

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        return Conv2d.forward(ctx, x, weight, bias, stride, padding, dilation, groups, relu=True)

    @staticmethod
    def backward(ctx, g):
        return Conv2d.backward(ctx, relu_grad(g, ctx.out))


def conv2d(
    x: Tensor | np.ndarray,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    relu: bool = False,
) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) of x (N, C, H, W) with
    weight (O, C/groups, kh, kw); ``padding`` may be an int, a pair, "valid" or "same".

    The result has shape (N, O, Ho, Wo) and is stored as (O, Ho, Wo, N) (see the module
    docstring); ``np.ascontiguousarray(y.numpy())`` gives NCHW memory when something needs it.
    ``relu=True`` returns ``relu(conv2d(...))`` as one operation (what ``Sequential`` runs for a
    Conv2d followed by a ReLU).
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
    if x.dtype != weight.dtype:  # a Tensor or an array: convolved in the weight's dtype
        x = x.astype(weight.dtype)
    return (Conv2dReLU if relu else Conv2d).apply(
        x, weight, bias, stride, padding, dilation, groups
    )
