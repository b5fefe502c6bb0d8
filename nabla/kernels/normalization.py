"""Batch-norm kernels: per-channel statistics, the normalization (with the residual add and the
ReLU that follow it in a ResNet block), and the backward pass, each a pass or two over memory.

The math is in :mod:`nabla.ops.normalization`. Every array is viewed as (C, M): channel c's
M = N H W values are contiguous in the (C, H, W, N) layout of a convolution's output, so one
channel is one task of the parallel loop and each pass streams its block (a few hundred KB:
cache-resident for the second pass).

Sums run in float64 over 64 interleaved partial sums (lane l adds the elements l, l + 64, ...):
a single running sum would be one long chain of dependent additions that LLVM may not reorder
(0.75 ms for a 16 x 65536 block), 64 of them vectorize (0.11 ms, the speed of memory). The NumPy
reference sums pairwise in the input's dtype, so the two agree
to rounding, not bit for bit.

The element-wise passes compute what the reference computes, in the same order and dtype:
x̂ = (x - μ) s with s = 1/sqrt(σ² + ε), y = x̂ w + b [+ r] [then max(y, 0)], and
dx = s ((g w - mean(dx̂)) - x̂ mean(dx̂ x̂)) with g masked where the ReLU output is not positive.
"""

import numpy as np
from numba import prange

LANES = 64


def batch_norm_statistics(x, mean, var):
    """mean[c] and the biased variance var[c] of row c of x (C, M), in float64: two passes."""
    channels, size = x.shape
    blocks = size // LANES
    for c in prange(channels):
        row = x[c]
        acc = np.zeros(LANES)
        for b in range(blocks):
            chunk = row[b * LANES : b * LANES + LANES]
            for lane in range(LANES):
                acc[lane] += chunk[lane]
        total = acc.sum()
        for m in range(blocks * LANES, size):
            total += row[m]
        mu = total / size
        acc[:] = 0
        for b in range(blocks):
            chunk = row[b * LANES : b * LANES + LANES]
            for lane in range(LANES):
                d = chunk[lane] - mu
                acc[lane] += d * d
        squares = acc.sum()
        for m in range(blocks * LANES, size):
            d = row[m] - mu
            squares += d * d
        mean[c] = mu
        var[c] = squares / size


def batch_norm_forward(x, mean, inv_std, weight, bias, residual, y, add_residual, relu):
    """y = (x - μ) s w + b [+ residual], then max(y, 0) when ``relu``; all (C, M) but the
    per-channel vectors."""
    channels, size = x.shape
    zero = np.zeros(1, y.dtype)[0]
    for c in prange(channels):
        mu, s, w, b = mean[c], inv_std[c], weight[c], bias[c]
        for m in range(size):
            v = (x[c, m] - mu) * s * w + b
            if add_residual:
                v = v + residual[c, m]
            if relu and v < zero:
                v = zero
            y[c, m] = v


def batch_norm_backward_sums(g, x, y, mean, inv_std, relu, sums):
    """sums[0, c] = sum of g', sums[1, c] = sum of g' x̂ over row c (float64), where g' is g,
    or 0 where y <= 0 when the forward pass ended in a ReLU."""
    channels, size = g.shape
    blocks = size // LANES
    zero = np.zeros(1, g.dtype)[0]
    for c in prange(channels):
        mu, s = mean[c], inv_std[c]
        g_row, x_row, y_row = g[c], x[c], y[c]
        acc_g = np.zeros(LANES)
        acc_gx = np.zeros(LANES)
        for b in range(blocks):
            g_chunk = g_row[b * LANES : b * LANES + LANES]
            x_chunk = x_row[b * LANES : b * LANES + LANES]
            y_chunk = y_row[b * LANES : b * LANES + LANES]
            for lane in range(LANES):
                gi = g_chunk[lane]
                if relu:
                    gi = gi if y_chunk[lane] > zero else zero
                acc_g[lane] += gi
                acc_gx[lane] += gi * ((x_chunk[lane] - mu) * s)
        total_g, total_gx = acc_g.sum(), acc_gx.sum()
        for m in range(blocks * LANES, size):
            gi = g_row[m]
            if relu:
                gi = gi if y_row[m] > zero else zero
            total_g += gi
            total_gx += gi * ((x_row[m] - mu) * s)
        sums[0, c] = total_g
        sums[1, c] = total_gx


def batch_norm_backward(
    g, x, y, mean, inv_std, weight, mean_dxhat, mean_dxhat_xhat, dx, dresidual, relu, residual
):
    """dx = s ((g' w - mean(dx̂)) - x̂ mean(dx̂ x̂)), and dresidual = g' when ``residual``."""
    channels, size = g.shape
    zero = np.zeros(1, g.dtype)[0]
    for c in prange(channels):
        mu, s, w = mean[c], inv_std[c], weight[c]
        md, mdx = mean_dxhat[c], mean_dxhat_xhat[c]
        for m in range(size):
            gi = g[c, m]
            if relu and not y[c, m] > zero:
                gi = zero
            if residual:
                dresidual[c, m] = gi
            dx[c, m] = s * ((gi * w - md) - ((x[c, m] - mu) * s) * mdx)
