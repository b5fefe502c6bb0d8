"""Pooling kernels on the (C, H, W, N) layout (see :mod:`nabla.ops.pool` for the math).

Each channel is one task of the parallel loop, and the inner loops run over the batch, the
contiguous axis, so they vectorize (the choices below are selects, not branches).

* ``max_pool_forward`` keeps, per window, the running maximum over the kernel offsets
  k = 0, 1, ... (row-major) and the last offset that was *strictly* larger than all before it:
  the first maximum on ties, PyTorch's rule; a NaN makes the maximum NaN and wins nothing, as in
  the NumPy reference. Padding is -inf: it never wins, so it is skipped. The winning offset is
  stored, one byte per output when the window has at most 256 elements, for the backward pass.
* ``max_pool_backward`` routes each output gradient to its window's winning offset, in one
  pass over the offsets (from the last to the first, the reference's order, so overlapping
  windows add up in the same order), instead of the reference's kh*kw masked products.
* ``avg_pool_forward`` / ``avg_pool_backward``: the window sum in offset order, then one
  division; backward spreads g / count over the window. Padded positions count as zeros.
"""

import numpy as np
from numba import prange


def max_pool_forward(x, y, arg, kh, kw, sh, sw, ph, pw, record):
    """y[c, i, j, n] = max over the window (i, j) of x (C, H, W, N); arg: the winning offset
    p kw + q (written when ``record``)."""
    channels, height, width, batch = x.shape
    ho, wo = y.shape[1], y.shape[2]
    lowest = np.full(1, -np.inf, y.dtype)[0]
    for c in prange(channels):
        for i in range(ho):
            for j in range(wo):
                for k in range(kh * kw):
                    h = i * sh - ph + k // kw
                    w = j * sw - pw + k % kw
                    inside = 0 <= h < height and 0 <= w < width
                    if k == 0:
                        for n in range(batch):
                            y[c, i, j, n] = lowest
                            if record:
                                arg[c, i, j, n] = 0
                        if inside:
                            for n in range(batch):
                                y[c, i, j, n] = x[c, h, w, n]
                    elif inside:  # a padded -inf never beats the running maximum
                        for n in range(batch):
                            v = x[c, h, w, n]
                            m = y[c, i, j, n]
                            wins = v > m
                            y[c, i, j, n] = v if wins or v != v else m
                            if record:
                                arg[c, i, j, n] = k if wins else arg[c, i, j, n]


def max_pool_backward(g, arg, gx, kh, kw, sh, sw, ph, pw, overlapping, covered):
    """gx[c, h, w, n] = the sum of g[c, i, j, n] over the windows (i, j) whose winning offset
    lies at (h, w). Windows that do not overlap write their slices (no zeroing needed where the
    windows cover the input); overlapping ones add."""
    channels, height, width, batch = gx.shape
    ho, wo = g.shape[1], g.shape[2]
    zero = np.zeros(1, gx.dtype)[0]
    for c in prange(channels):
        if not covered:
            for h in range(height):
                for w in range(width):
                    for n in range(batch):
                        gx[c, h, w, n] = zero
        for k in range(kh * kw - 1, -1, -1):
            for i in range(ho):
                h = i * sh - ph + k // kw
                if h < 0 or h >= height:
                    continue
                for j in range(wo):
                    w = j * sw - pw + k % kw
                    if w < 0 or w >= width:
                        continue
                    if overlapping:
                        for n in range(batch):
                            if arg[c, i, j, n] == k:
                                gx[c, h, w, n] += g[c, i, j, n]
                    else:
                        for n in range(batch):
                            gx[c, h, w, n] = g[c, i, j, n] if arg[c, i, j, n] == k else zero


def avg_pool_forward(x, y, divisor, kh, kw, sh, sw, ph, pw):
    """y[c, i, j, n] = (sum of the window (i, j) of x) / divisor[i, j]."""
    channels, height, width, batch = x.shape
    ho, wo = y.shape[1], y.shape[2]
    zero = np.zeros(1, y.dtype)[0]
    for c in prange(channels):
        for i in range(ho):
            for j in range(wo):
                for k in range(kh * kw):
                    h = i * sh - ph + k // kw
                    w = j * sw - pw + k % kw
                    inside = 0 <= h < height and 0 <= w < width
                    if k == 0 and inside:
                        for n in range(batch):
                            y[c, i, j, n] = x[c, h, w, n]
                    elif k == 0:
                        for n in range(batch):
                            y[c, i, j, n] = zero
                    elif inside:
                        for n in range(batch):
                            y[c, i, j, n] += x[c, h, w, n]
                    else:  # the reference adds the padded zero (it turns -0 into +0)
                        for n in range(batch):
                            y[c, i, j, n] += zero
                d = divisor[i, j]
                for n in range(batch):
                    y[c, i, j, n] /= d


def avg_pool_backward(g, gx, divisor, kh, kw, sh, sw, ph, pw):
    """gx[c, h, w, n] = the sum of g[c, i, j, n] / divisor[i, j] over the windows (i, j) holding
    (h, w), added offset by offset as the reference does."""
    channels, height, width, batch = gx.shape
    ho, wo = g.shape[1], g.shape[2]
    for c in prange(channels):
        for h in range(height):
            for w in range(width):
                for n in range(batch):
                    gx[c, h, w, n] = 0
        for k in range(kh * kw):
            for i in range(ho):
                h = i * sh - ph + k // kw
                if h < 0 or h >= height:
                    continue
                for j in range(wo):
                    w = j * sw - pw + k % kw
                    if 0 <= w < width:
                        d = divisor[i, j]
                        for n in range(batch):
                            gx[c, h, w, n] += g[c, i, j, n] / d
