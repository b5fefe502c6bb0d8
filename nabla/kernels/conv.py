"""Convolution kernels on the (C, H, W, N) layout: im2col and col2im with the padding folded in,
and the bias (+ ReLU) pass over a convolution's output.

The layout and the math are in :mod:`nabla.ops.conv`. Both copies move runs of N contiguous
values (the batch is innermost), so every inner loop is a vectorized copy or add:

* ``im2col`` reads the *unpadded* input and writes zeros where a window hangs over the border.
  NumPy must first build the zero-padded input (one more full copy) and then copy a 6-axis
  strided view; here each row (c, p, q) of the matrix is one task of the parallel loop.
* ``col2im`` accumulates each channel's kh*kw blocks straight into the unpadded input gradient:
  one channel is one task (no two tasks write the same element), and the channel's gradient,
  H*W*N values, stays in cache while its blocks stream past. Every position receives its
  contributions in the reference's order (offset by offset), so the sums agree bit for bit.
* ``bias_relu`` adds the bias and, when fused with a following ReLU, rectifies in the same pass
  (NumPy: two passes over the output). ``max(v, 0)`` follows ``np.maximum``: NaN stays NaN.
* ``direct`` and ``weight_grad`` convolve without the im2col matrix (stride 1): the output, and
  the weight gradient as nine dot products per (output, input) channel pair.
"""

import numba
import numpy as np
from numba import prange


def im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw):
    """cols[c, p, q, i, j, n] = x[c, i sh + p dh - ph, j sw + q dw - pw, n], 0 outside x.

    x: (C, H, W, N) and cols: (C, kh, kw, Ho, Wo, N), both C-contiguous."""
    channels, height, width, batch = x.shape
    ho, wo = cols.shape[3], cols.shape[4]
    for row in prange(channels * kh * kw):
        c = row // (kh * kw)
        p = (row // kw) % kh
        q = row % kw
        for i in range(ho):
            h = i * sh + p * dh - ph
            inside_h = 0 <= h < height
            for j in range(wo):
                w = j * sw + q * dw - pw
                if inside_h and 0 <= w < width:
                    for n in range(batch):
                        cols[c, p, q, i, j, n] = x[c, h, w, n]
                else:
                    for n in range(batch):
                        cols[c, p, q, i, j, n] = 0


def col2im(cols, gx, kh, kw, sh, sw, ph, pw, dh, dw):
    """The adjoint of :func:`im2col`: gx[c, h, w, n] = the sum of cols[c, p, q, i, j, n] over
    every (p, q, i, j) that im2col copied from (h, w), taken offset by offset (p, q)."""
    channels, height, width, batch = gx.shape
    ho, wo = cols.shape[3], cols.shape[4]
    for c in prange(channels):
        for h in range(height):
            for w in range(width):
                for n in range(batch):
                    gx[c, h, w, n] = 0
        for p in range(kh):
            for q in range(kw):
                for i in range(ho):
                    h = i * sh + p * dh - ph
                    if h < 0 or h >= height:
                        continue
                    for j in range(wo):
                        w = j * sw + q * dw - pw
                        if 0 <= w < width:
                            for n in range(batch):
                                gx[c, h, w, n] += cols[c, p, q, i, j, n]


def bias_relu(y, bias, add_bias, relu):
    """y[o, m] <- y[o, m] + bias[o] (when ``add_bias``), then max(y, 0) (when ``relu``), in place;
    y is (O, M), C-contiguous."""
    channels, size = y.shape
    zero = np.zeros(1, y.dtype)[0]  # a literal 0 would make v a float64
    for o in prange(channels):
        b = bias[o]
        for m in range(size):
            v = y[o, m]
            if add_bias:
                v = v + b
            if relu and v < 0:
                v = zero
            y[o, m] = v


def direct(xp, weight, bias, y, dh, dw, add_bias, relu):
    """y[o, i, j, n] = b[o] + sum_{c, p, q} W[o, c, p, q] xp[c, i + p dh, j + q dw, n] (stride 1),
    then max(y, 0) when ``relu``: the convolution without the im2col matrix.

    xp: the zero-padded input (C, Hp, Wp, N); y: (O, Ho, Wo, N). One task per output row (o, i):
    the row, Wo*N values, stays in the L1 cache while every (c, p) adds its kw shifted input rows,
    each a contiguous run of the padded row. The 3x3 kernel adds all nine taps in one pass, 5-wide
    kernels five per pass: one load and store of the output per 9 (or 5) multiply-adds, not per
    one. The slices start at non-negative offsets, which lets LLVM vectorize the loops."""
    out_channels, channels, kh, kw = weight.shape
    hp, wp, batch = xp.shape[1], xp.shape[2], xp.shape[3]
    ho, wo = y.shape[1], y.shape[2]
    length = wo * batch
    x_rows = xp.reshape(channels, hp, wp * batch)
    y_rows = y.reshape(out_channels, ho, length)
    zero = np.zeros(1, y.dtype)[0]
    s1, s2, s3, s4 = dw * batch, 2 * dw * batch, 3 * dw * batch, 4 * dw * batch
    for task in prange(out_channels * ho):
        o = task // ho
        i = task % ho
        row = y_rows[o, i]
        start = bias[o] if add_bias else zero
        for k in range(length):
            row[k] = start
        for c in range(channels):
            if kh == 3 and kw == 3:
                r0, r1, r2 = x_rows[c, i], x_rows[c, i + dh], x_rows[c, i + 2 * dh]
                a0, a1, a2 = r0[:length], r0[s1 : s1 + length], r0[s2 : s2 + length]
                b0, b1, b2 = r1[:length], r1[s1 : s1 + length], r1[s2 : s2 + length]
                c0, c1, c2 = r2[:length], r2[s1 : s1 + length], r2[s2 : s2 + length]
                u0, u1, u2 = weight[o, c, 0, 0], weight[o, c, 0, 1], weight[o, c, 0, 2]
                v0, v1, v2 = weight[o, c, 1, 0], weight[o, c, 1, 1], weight[o, c, 1, 2]
                w0, w1, w2 = weight[o, c, 2, 0], weight[o, c, 2, 1], weight[o, c, 2, 2]
                for k in range(length):
                    row[k] = (
                        row[k]
                        + u0 * a0[k]
                        + u1 * a1[k]
                        + u2 * a2[k]
                        + v0 * b0[k]
                        + v1 * b1[k]
                        + v2 * b2[k]
                        + w0 * c0[k]
                        + w1 * c1[k]
                        + w2 * c2[k]
                    )
                continue
            for p in range(kh):
                r = x_rows[c, i + p * dh]
                if kw == 5:
                    a0, a1, a2 = r[:length], r[s1 : s1 + length], r[s2 : s2 + length]
                    a3, a4 = r[s3 : s3 + length], r[s4 : s4 + length]
                    u0, u1, u2 = weight[o, c, p, 0], weight[o, c, p, 1], weight[o, c, p, 2]
                    u3, u4 = weight[o, c, p, 3], weight[o, c, p, 4]
                    for k in range(length):
                        row[k] = (
                            row[k] + u0 * a0[k] + u1 * a1[k] + u2 * a2[k] + u3 * a3[k] + u4 * a4[k]
                        )
                else:
                    for q in range(kw):
                        a = r[q * s1 : q * s1 + length]
                        u = weight[o, c, p, q]
                        for k in range(length):
                            row[k] = row[k] + u * a[k]
        if relu:
            for k in range(length):
                if row[k] < zero:
                    row[k] = zero


def weight_grad(xp, g, gw, dh, dw):
    """gw[o, c, p, q] = sum_{i, j, n} G[o, i, j, n] xp[c, i + p dh, j + q dw, n]: the weight
    gradient of a stride-1 3x3 convolution, without rebuilding the im2col matrix.

    xp: the zero-padded input (C, Hp, Wp, N); G: (O, Ho, Wo, N); gw: (O, C, 3, 3). One task per
    pair of output channels and one input channel: for each output row i, :func:`_taps_3x3`
    takes the 18 dot products of the two G rows with the nine shifted input rows in one pass
    (11 loads per 18 multiply-adds; im2col + GEMM reached half this speed on these shapes, where
    OpenBLAS has only O rows to block over). With an odd O the last pair is (O-1, O-1)."""
    out_channels, channels = gw.shape[0], gw.shape[1]
    hp, wp, batch = xp.shape[1], xp.shape[2], xp.shape[3]
    ho, wo = g.shape[1], g.shape[2]
    length = wo * batch
    x_rows = xp.reshape(channels, hp, wp * batch)
    g_rows = g.reshape(out_channels, ho, length)
    pairs = (out_channels + 1) // 2
    for task in prange(pairs * channels):
        o = 2 * (task // channels)
        o2 = min(o + 1, out_channels - 1)
        c = task % channels
        sums = np.zeros((2, 9), gw.dtype)
        for i in range(ho):
            r0, r1, r2 = x_rows[c, i], x_rows[c, i + dh], x_rows[c, i + 2 * dh]
            _taps_3x3(g_rows[o, i], g_rows[o2, i], r0, r1, r2, length, dw * batch, sums)
        for k in range(9):
            gw[o, c, k // 3, k % 3] = sums[0, k]
            gw[o2, c, k // 3, k % 3] = sums[1, k]


# Reassociation lets LLVM split each dot product over vector lanes (a plain ``s += a * b`` loop
# must add in order, one element at a time); no other fast-math liberty (NaN and inf stay).
# A separate function, because numba's fast-math flags are per function.
@numba.njit(fastmath={"reassoc", "contract"}, cache=True, nogil=True, boundscheck=False)
def _taps_3x3(g0, g1, r0, r1, r2, length, shift, sums):
    """sums[0, 3p + q] += g0 . r_p[q shift:], sums[1, 3p + q] += g1 . r_p[q shift:] over
    ``length`` elements (r_p: r0, r1, r2)."""
    zero = g0[0] - g0[0]  # of the arrays' dtype (a literal 0 would make the sums float64)
    a0 = a1 = a2 = b0 = b1 = b2 = c0 = c1 = c2 = zero
    d0 = d1 = d2 = e0 = e1 = e2 = f0 = f1 = f2 = zero
    u, v = g0[:length], g1[:length]
    x0, x1, x2 = r0[:length], r0[shift : shift + length], r0[2 * shift : 2 * shift + length]
    y0, y1, y2 = r1[:length], r1[shift : shift + length], r1[2 * shift : 2 * shift + length]
    z0, z1, z2 = r2[:length], r2[shift : shift + length], r2[2 * shift : 2 * shift + length]
    for k in range(length):
        p0, p1, p2, q0, q1, q2 = x0[k], x1[k], x2[k], y0[k], y1[k], y2[k]
        t0, t1, t2, s, t = z0[k], z1[k], z2[k], u[k], v[k]
        a0, a1, a2 = a0 + s * p0, a1 + s * p1, a2 + s * p2
        b0, b1, b2 = b0 + s * q0, b1 + s * q1, b2 + s * q2
        c0, c1, c2 = c0 + s * t0, c1 + s * t1, c2 + s * t2
        d0, d1, d2 = d0 + t * p0, d1 + t * p1, d2 + t * p2
        e0, e1, e2 = e0 + t * q0, e1 + t * q1, e2 + t * q2
        f0, f1, f2 = f0 + t * t0, f1 + t * t1, f2 + t * t2
    for k, value in enumerate((a0, a1, a2, b0, b1, b2, c0, c1, c2)):
        sums[0, k] += value
    for k, value in enumerate((d0, d1, d2, e0, e1, e2, f0, f1, f2)):
        sums[1, k] += value
