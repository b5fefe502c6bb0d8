"""Cross-entropy over class indices as compiled kernels: one pass per row where NumPy makes a
dozen calls over the whole (N, C) array.

The math is in :mod:`nabla.ops.losses`. For the MNIST MLP's (64, 10) logits the NumPy forward
and backward are ~20 calls of a microsecond or two each, several times the arithmetic; the kernels
do the same arithmetic in two calls. They compute what the reference computes, in the same order
and dtype, except two things that change the last bits: ``exp`` and ``log`` are the C library's
(NumPy has its own SIMD versions), and a row's sum of exponentials runs left to right in float64
(NumPy sums pairwise in the logits' dtype). The tests hold the two to rounding
(tests/kernels/test_loss_kernels.py).
"""

import numpy as np
from numba import prange


def cross_entropy_forward(logits, target, keep, smoothing, log_p, losses):
    """For each row i of the (N, C) logits z, with class index t_i:

    log p_i = (z_i - max z_i) - log sum_c exp(z_ic - max z_i);   loss_i = -log p_i[t_i]
    (with smoothing eps: (1 - eps) loss_i - eps mean_c log p_ic).

    ``keep`` = 1 - eps and ``smoothing`` = eps have the logits' dtype (computed by the caller, as
    the reference's Python floats are); the targets must be in [0, C) (checked by the caller)."""
    rows, classes = logits.shape
    for i in prange(rows):
        top = logits[i, 0]
        for j in range(1, classes):
            z = logits[i, j]
            if z > top or z != z:  # np.max: a NaN anywhere makes the row's maximum NaN
                top = z
        total = 0.0  # float64: a long row summed left to right stays as accurate as pairwise
        for j in range(classes):
            total += np.exp(logits[i, j] - top)
        losses[i] = np.log(total)  # rounded to the logits' dtype, as the reference's log is
        log_total = losses[i]
        row_sum = 0.0
        for j in range(classes):
            value = (logits[i, j] - top) - log_total
            log_p[i, j] = value
            row_sum += value
        loss = -log_p[i, target[i]]
        if smoothing != 0:
            loss = keep * loss - smoothing * (row_sum / classes)
        losses[i] = loss


def cross_entropy_backward(log_p, target, hit, spread, scale, grad):
    """grad_ic = (p_ic - q_ic) scale with p = exp(log p) and q = (1 - eps) onehot(t_i) + eps / C:
    p first, then ``hit`` = 1 - eps taken off at the target, ``spread`` = eps / C off everywhere,
    and the product by ``scale`` (g / N for the mean) last, as the reference does."""
    rows, classes = log_p.shape
    for i in prange(rows):
        t = target[i]
        for j in range(classes):
            value = np.exp(log_p[i, j])
            if j == t:
                value = value - hit
            if spread != 0:
                value = value - spread
            grad[i, j] = value * scale
