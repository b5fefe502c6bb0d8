"""Batch and layer normalization as operations: the fused Functions behind nn.BatchNorm1d/2d,
nn.LayerNorm and nn.SyncBatchNorm, and the functional ``batch_norm`` and ``layer_norm``.

Both normalizations standardize x over some axes and then apply a learned affine map
(weight w, bias b),

    x̂ = (x - μ) / sqrt(σ² + ε),    y = w x̂ + b,

with μ and the *biased* variance σ² = mean((x - μ)²) computed over the normalized axes. They differ
in which axes: batch norm (Ioffe & Szegedy 2015) averages each channel over the batch and the
spatial axes (every axis but 1); layer norm (Ba, Kiros & Hinton 2016) averages each example over
its trailing ``normalized_shape`` axes.

Because μ and σ² depend on every x in their group, the gradient of x̂ is not just 1/sqrt(σ² + ε).
Differentiating through them gives, per group of n elements and with dx̂ = g w,

    dx = (1/sqrt(σ² + ε)) (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)),    dw = Σ g x̂,    db = Σ g,

which each fused Function below computes in one pass instead of a graph of a dozen small ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .activations import relu_grad
from .conv import compiled_for, launch
from .conv_buffers import scratch


def _normalize_backward(dxhat, xhat, inv_std, axes, means=None):
    """The input gradient of x̂ = (x - μ) inv_std, μ and σ² taken over ``axes`` (see module doc).
    ``means`` turns this batch's per-channel sums of dx̂ and dx̂ x̂ (a (2, C) array) into the two
    means (batch norm: divided by the count; SyncBatchNorm: summed over all ranks first); without
    it the means are taken over ``axes`` (layer norm)."""
    if means is None:
        mean_dxhat = dxhat.mean(axis=axes, keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
    else:
        shape = (1, -1) + (1,) * (dxhat.ndim - 2)
        totals = means(np.stack([dxhat.sum(axis=axes), (dxhat * xhat).sum(axis=axes)]))
        mean_dxhat, mean_dxhat_xhat = totals[0].reshape(shape), totals[1].reshape(shape)
    return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _channel_rows(a: np.ndarray | None) -> np.ndarray | None:
    """An (N, C, H, W) view of a (C, H, W, N) array (a convolution's output) as its (C, N H W)
    rows, without a copy; None for any other layout (those take the NumPy reference)."""
    if a is None or a.ndim != 4:
        return None
    view = a.transpose(1, 2, 3, 0)
    return view.reshape(a.shape[1], -1) if view.flags.c_contiguous else None


class _BatchNormTrain(Function):
    """Batch normalization with the batch's own statistics; every axis but 1 is reduced.
    Optionally fused with what follows it in a residual block: y = relu(bn(x) + residual)
    (``residual`` may be None, the ReLU is the subclass below)."""

    relu = False

    @staticmethod
    def forward(
        ctx,
        x,
        weight,
        bias,
        residual,
        running_mean,
        running_var,
        counter,
        momentum,
        eps,
        statistics,
    ):
        # ``statistics(x)`` gives the batch mean, biased variance, count, and ``means``, which
        # computes backward's two batch means (over all ranks for SyncBatchNorm). The running
        # statistics (and a module's batch counter) are updated here, inside the operation, so
        # that a compiled step, which replays operations, replays the update too.
        if counter is not None:  # momentum None: m = 1/t, the plain mean over all batches
            counter += 1
            momentum = 1.0 / int(counter) if momentum is None else momentum
        mean, var, n, means = statistics(x)
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += (momentum * n / (n - 1)) * var
        relu = ctx.relu
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv_std = 1.0 / np.sqrt(var + eps)
        ctx.weight, ctx.shape, ctx.means, ctx.residual = weight, shape, means, residual is not None
        rows = _channel_rows(x)
        fast = (
            rows is not None
            and compiled_for(x.dtype)
            and (
                residual is None
                or (residual.dtype == x.dtype and _channel_rows(residual) is not None)
            )
        )
        if fast:  # one pass (kernels/normalization.py); backward recomputes x̂ from x
            c = x.shape[1]
            y = scratch((c, *x.shape[2:], x.shape[0]), x.dtype)
            w = np.ones(c, x.dtype) if weight is None else weight
            b = np.zeros(c, x.dtype) if bias is None else bias
            r = rows if residual is None else _channel_rows(residual)
            forward = launch("normalization.batch_norm_forward", x.size)
            forward(rows, mean, inv_std, w, b, r, y.reshape(c, -1), residual is not None, relu)
            ctx.rows, ctx.mean, ctx.inv_std, ctx.xhat = rows, mean, inv_std, None
            y = y.transpose(3, 0, 1, 2)
        else:
            xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
            ctx.xhat, ctx.inv_std = xhat, inv_std.reshape(shape)
            y = xhat if weight is None else xhat * weight.reshape(shape)
            y = y if bias is None else y + bias.reshape(shape)
            if residual is not None:
                y = y + residual
            if relu:  # in place, unless y is the saved x̂ itself
                y = np.maximum(y, 0, out=None if y is xhat else y)
        if relu:
            ctx.out = y
        return y

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b, need_r = ctx.needs_input_grad[:4]
        if ctx.xhat is None:
            dx, dweight, dbias, dres = _backward_kernels(ctx, g, need_x, need_r)
            return dx, dweight if need_w else None, dbias if need_b else None, dres, *(None,) * 6
        xhat, weight, shape = ctx.xhat, ctx.weight, ctx.shape
        if ctx.relu:
            g = relu_grad(g, ctx.out)
        axes = (0, *range(2, g.ndim))
        dx = dweight = dbias = None
        if need_x:
            dxhat = g if weight is None else g * weight.reshape(shape)
            dx = _normalize_backward(dxhat, xhat, ctx.inv_std, axes, ctx.means)
        if need_w:
            dweight = (g * xhat).sum(axis=axes)
        if need_b:
            dbias = g.sum(axis=axes)
        return dx, dweight, dbias, g if need_r else None, *(None,) * 6


class _BatchNormTrainReLU(_BatchNormTrain):
    """relu(batch_norm(x) [+ residual]) as one operation: backward masks G by the saved output."""

    relu = True
    saves_output = True


def _backward_kernels(ctx, g, need_x, need_r):
    """_BatchNormTrain's backward on the compiled kernels: the two per-channel sums in one pass,
    the input (and residual) gradient in a second."""
    rows, mean, inv_std, weight = ctx.rows, ctx.mean, ctx.inv_std, ctx.weight
    c, dtype = rows.shape[0], g.dtype
    g_rows = _channel_rows(g)
    if g_rows is None or dtype != rows.dtype:
        g_rows = np.ascontiguousarray(g.transpose(1, 2, 3, 0), dtype=rows.dtype).reshape(c, -1)
    y_rows = _channel_rows(ctx.out) if ctx.relu else g_rows
    sums = np.empty((2, c))
    launch("normalization.batch_norm_backward_sums", g.size)(
        g_rows, rows, y_rows, mean, inv_std, ctx.relu, sums
    )
    dbias, dweight = sums.astype(rows.dtype)
    dx = dres = None
    if need_x or need_r:
        w = np.ones(c, rows.dtype) if weight is None else weight
        totals = ctx.means((sums * w).astype(rows.dtype))  # sums of dx̂ = g w and of dx̂ x̂
        n = g.shape[0]
        dx = scratch((c, *g.shape[2:], n), rows.dtype)
        dres = scratch(dx.shape, rows.dtype) if need_r else dx
        backward = launch("normalization.batch_norm_backward", g.size)
        backward(
            g_rows,
            rows,
            y_rows,
            mean,
            inv_std,
            w,
            totals[0],
            totals[1],
            dx.reshape(c, -1),
            dres.reshape(c, -1),
            ctx.relu,
            need_r,
        )
        dx = dx.transpose(3, 0, 1, 2) if need_x else None
        dres = dres.transpose(3, 0, 1, 2) if need_r else None
    return dx, dweight, dbias, dres


class _BatchNormEval(Function):
    """Batch normalization with fixed statistics: the affine map y = x scale + shift per channel."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, eps):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = np.array(mean)  # a copy: the running buffers may be updated before backward
        inv_std = 1.0 / np.sqrt(var + eps)
        scale = inv_std if weight is None else weight * inv_std
        shift = -mean * scale if bias is None else bias - mean * scale
        ctx.x, ctx.mean, ctx.inv_std, ctx.scale, ctx.shape = x, mean, inv_std, scale, shape
        return x * scale.reshape(shape) + shift.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        shape = ctx.shape
        axes = (0, *range(2, g.ndim))
        dx = g * ctx.scale.reshape(shape) if ctx.needs_input_grad[0] else None
        dweight = dbias = None
        if ctx.needs_input_grad[1]:
            xhat = (ctx.x - ctx.mean.reshape(shape)) * ctx.inv_std.reshape(shape)
            dweight = (g * xhat).sum(axis=axes)
        if ctx.needs_input_grad[2]:
            dbias = g.sum(axis=axes)
        return dx, dweight, dbias, None, None, None


def _check_batch_size(x: Tensor, who: str) -> None:
    if x.size // x.shape[1] <= 1:
        raise ValueError(
            f"{who}: expected more than 1 value per channel when training, got input of shape "
            f"{x.shape}"
        )


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    *,
    residual: Tensor | None = None,
    relu: bool = False,
    num_batches_tracked: Tensor | None = None,
) -> Tensor:
    """Batch normalization over every axis but 1, as ``torch.nn.functional.batch_norm``.

    In training the batch mean and biased variance normalize ``input``, and the running buffers
    (when given) are updated in place, outside the graph, with the *unbiased* variance:
    ``r <- (1 - momentum) r + momentum * stat``. Otherwise the running statistics normalize.
    ``residual`` and ``relu`` give ``relu(batch_norm(...) + residual)`` as one operation (the
    end of a ResNet block), the same numbers as the three operations. ``num_batches_tracked``
    (a module's counter) is incremented in training; with it, ``momentum=None`` means 1/count.
    """
    if not training:
        y = _BatchNormEval.apply(input, weight, bias, running_mean, running_var, eps)
        y = y if residual is None else y + residual
        return y.relu() if relu else y
    _check_batch_size(input, "batch_norm")
    return _batch_norm_train(
        input,
        running_mean,
        running_var,
        weight,
        bias,
        momentum,
        eps,
        _local_statistics,
        residual,
        relu,
        num_batches_tracked,
    )


def _divide(totals: np.ndarray, count: int) -> np.ndarray:
    return totals / count


def _local_statistics(x: np.ndarray) -> tuple:
    """(mean, biased variance, values per channel, backward's means) of this process's batch."""
    count = x.size // x.shape[1]
    rows = _channel_rows(x)
    if rows is not None and compiled_for(x.dtype):  # two passes per channel, float64 sums
        mean, var = np.empty(x.shape[1]), np.empty(x.shape[1])
        statistics = launch("normalization.batch_norm_statistics", x.size)
        statistics(rows, mean, var)
        return mean.astype(x.dtype), var.astype(x.dtype), count, partial(_divide, count=count)
    axes = (0, *range(2, x.ndim))
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape((1, -1) + (1,) * (x.ndim - 2))) ** 2).mean(axis=axes)
    return mean, var, count, partial(_divide, count=count)


def _batch_norm_train(
    input,
    running_mean,
    running_var,
    weight,
    bias,
    momentum,
    eps,
    statistics,
    residual,
    relu,
    counter=None,
):
    """Training-mode batch norm with the batch statistics ``statistics(x)`` gives (local, or
    over all ranks for SyncBatchNorm); updates the running buffers as :func:`batch_norm` says,
    and a module's batch counter ``counter`` (then ``momentum=None`` means 1/count)."""
    if residual is not None and tuple(residual.shape) != tuple(input.shape):
        raise ValueError(
            f"batch_norm: residual of shape {tuple(residual.shape)} does not match the input "
            f"of shape {tuple(input.shape)}"
        )
    function = _BatchNormTrainReLU if relu else _BatchNormTrain
    return function.apply(
        input, weight, bias, residual, running_mean, running_var, counter, momentum, eps, statistics
    )


class _LayerNormFunction(Function):
    """Layer normalization over the last ``k`` axes; weight and bias have those axes' shape."""

    @staticmethod
    def forward(ctx, x, weight, bias, k, eps):
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        inv_std = 1.0 / np.sqrt((centered * centered).mean(axis=axes, keepdims=True) + eps)
        xhat = centered * inv_std
        ctx.xhat, ctx.inv_std, ctx.weight, ctx.axes = xhat, inv_std, weight, axes
        y = xhat if weight is None else xhat * weight
        return y if bias is None else y + bias

    @staticmethod
    def backward(ctx, g):
        xhat, weight, axes = ctx.xhat, ctx.weight, ctx.axes
        lead = tuple(range(g.ndim - len(axes)))
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            dx = _normalize_backward(g if weight is None else g * weight, xhat, ctx.inv_std, axes)
        if ctx.needs_input_grad[1]:
            dweight = (g * xhat).sum(axis=lead)
        if ctx.needs_input_grad[2]:
            dbias = g.sum(axis=lead)
        return dx, dweight, dbias, None, None


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes, as torch's functional."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k :]) != shape:
        raise ValueError(
            f"LayerNorm({shape}): expected input (*, {', '.join(map(str, shape))}), "
            f"got shape {input.shape}"
        )
    return _LayerNormFunction.apply(input, weight, bias, k, eps)
