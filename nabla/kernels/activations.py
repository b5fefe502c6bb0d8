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
