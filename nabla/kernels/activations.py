"""Activation derivatives as compiled kernels: one pass where NumPy makes two.

``relu_backward``: NumPy's ``g * (out > 0)`` writes a boolean mask, then reads it back with g for
the product; the kernel reads g and out once and writes the result once. Same values, bit for bit
(a blocked gradient is g * 0, so its sign and NaNs are NumPy's).
"""

from numba import prange


def relu_backward(g, out, result):
    """result = g where out > 0, else g * 0 (flat, C-contiguous arrays of one size)."""
    for i in prange(g.size):
        gi = g[i]
        result[i] = gi if out[i] > 0 else gi * 0


def bias_relu(y, bias, relu):
    """y += bias (broadcast over the rows of a 2-D, C-contiguous y), then, when ``relu``,
    y = max(y, 0) with NumPy's conventions (NaN kept, -0 becomes +0): the same values as
    ``y += bias; np.maximum(y, 0, out=y)``, in one pass and without NumPy's broadcasting buffer."""
    rows, cols = y.shape
    for i in prange(rows):
        for j in range(cols):
            v = y[i, j] + bias[j]
            if relu and not (v > 0 or v != v):
                v = 0.0
            y[i, j] = v
