"""Optimizer updates as compiled kernels: one pass over the flat buffers per step.

Each function updates theta and the algorithm's state in place, element by element, computing
exactly what the NumPy reference in ``nabla/optim/<algorithm>.py`` computes, in the same order and
in the buffers' dtype (every scalar argument is passed in that dtype), so the two agree bit for
bit (tests/kernels/test_updates.py). Written with ``prange``: :mod:`runtime` compiles each one
twice, for one thread and for several.

Conventions shared by all of them:

* ``decay`` multiplies theta first: 1 - lr * weight_decay for decoupled weight decay, else 1
  (multiplying by 1 changes no bit). ``weight_decay`` adds weight_decay * theta to the gradient
  (coupled L2), 0 when decoupled.
* State values with magnitude below ``tiny`` (the dtype's smallest normal number) are flushed to
  zero: a subnormal state costs every later pass over it several times the time
  (docs/optimizers.md).
"""

import numpy as np
from numba import prange


def sgd(theta, g, v, lr, momentum, dampened_lr, weight_decay, decay, nesterov, use_velocity, tiny):
    """v <- momentum v - dampened_lr g;  theta <- theta + v  (Nesterov: + momentum v - lr g)."""
    zero = tiny - tiny
    for i in prange(theta.size):
        th = theta[i] * decay
        gi = g[i]
        if weight_decay != zero:
            gi = th * weight_decay + gi
        step = gi * lr
        if use_velocity:
            vi = v[i] * momentum - gi * dampened_lr
            if abs(vi) < tiny:
                vi = zero
            v[i] = vi
            if nesterov:
                theta[i] = th + (vi * momentum - step)
            else:
                theta[i] = th + vi
        else:
            theta[i] = th - step


def adagrad(theta, g, r, lr, eps, weight_decay, decay, eps_inside_sqrt, tiny):
    """r <- r + g^2;  theta <- theta - lr g / (sqrt(r) + eps)  (or sqrt(r + eps))."""
    zero = tiny - tiny
    for i in prange(theta.size):
        th = theta[i] * decay
        gi = g[i]
        if weight_decay != zero:
            gi = th * weight_decay + gi
        ri = r[i] + gi * gi
        if abs(ri) < tiny:
            ri = zero
        r[i] = ri
        d = np.sqrt(ri + eps) if eps_inside_sqrt else np.sqrt(ri) + eps
        theta[i] = th - (gi / d) * lr


def rmsprop(
    theta,
    g,
    r,
    gbar,
    v,
    lr,
    beta,
    one_minus_beta,
    eps,
    momentum,
    weight_decay,
    decay,
    centered,
    use_momentum,
    eps_inside_sqrt,
    tiny,
):
    """r <- beta r + (1 - beta) g^2;  d = sqrt(r [- gbar^2]) + eps;  theta <- theta - lr g / d
    (with momentum: v <- momentum v + g / d;  theta <- theta - lr v)."""
    zero = tiny - tiny
    for i in prange(theta.size):
        th = theta[i] * decay
        gi = g[i]
        if weight_decay != zero:
            gi = th * weight_decay + gi
        ri = r[i] * beta + (gi * gi) * one_minus_beta
        if abs(ri) < tiny:
            ri = zero
        r[i] = ri
        if centered:
            bi = gbar[i] * beta + gi * one_minus_beta
            if abs(bi) < tiny:
                bi = zero
            gbar[i] = bi
            var = ri - bi * bi
            if var < zero:  # rounding can dip below 0; NaN stays NaN, as np.maximum keeps it
                var = zero
        else:
            var = ri
        d = np.sqrt(var + eps) if eps_inside_sqrt else np.sqrt(var) + eps
        step = gi / d
        if use_momentum:
            vi = v[i] * momentum + step
            if abs(vi) < tiny:
                vi = zero
            v[i] = vi
            theta[i] = th - vi * lr
        else:
            theta[i] = th - step * lr


def adam(
    theta,
    g,
    s,
    r,
    r_max,
    step_size,
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    eps,
    weight_decay,
    decay,
    amsgrad,
    tiny,
):
    """s <- beta1 s + (1 - beta1) g;  r <- beta2 r + (1 - beta2) g^2;
    theta <- theta - step_size s / (sqrt(r) + eps)  (AMSGrad: max(r_max, r) in place of r)."""
    zero = tiny - tiny
    for i in prange(theta.size):
        th = theta[i] * decay
        gi = g[i]
        if weight_decay != zero:
            gi = th * weight_decay + gi
        si = s[i] * beta1 + gi * one_minus_beta1
        ri = r[i] * beta2 + (gi * gi) * one_minus_beta2
        if abs(si) < tiny:
            si = zero
        if abs(ri) < tiny:
            ri = zero
        s[i] = si
        r[i] = ri
        if amsgrad:
            rm = r_max[i]
            if ri > rm or ri != ri:  # np.maximum: the larger, NaN if either is NaN
                rm = ri
            r_max[i] = rm
            ri = rm
        theta[i] = th - (si / (np.sqrt(ri) + eps)) * step_size
