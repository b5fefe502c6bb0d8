"""Cross-entropy, fused: log-softmax and the negative log-likelihood in one operation.

With logits z (classes along axis 1), p = softmax(z) and a target distribution q (one-hot for a
class index, optionally smoothed: q = (1 - eps) q + eps / C),

    loss = -sum_c q_c log p_c,        dloss/dz = p * sum_c q_c - q  ( = p - q when q sums to 1).

Computing log p as z - max z - log sum e^(z - max z) keeps the loss finite for any logits, and the
fused gradient needs neither the softmax Jacobian nor a division by p.

The NumPy code below is the reference. For the common case (2-D logits in float32 or float64,
C-contiguous, class-index targets, a mean or a sum) the compiled kernels of
:mod:`nabla.kernels.losses` do the same arithmetic in one call each way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import kernels
from ..autograd.function import Function
from ..autograd.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, logits, target, reduction, smoothing):
        ctx.kernel = kernel_applies(
            logits.shape, logits.dtype, logits.flags.c_contiguous, target.dtype, reduction
        )
        if ctx.kernel:
            return _forward_kernel(ctx, logits, target, reduction, smoothing)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        classes = logits.shape[1]
        if target.dtype.kind == "f":  # a probability per class
            q = target if smoothing == 0 else (1 - smoothing) * target + smoothing / classes
            loss = -(q * log_p).sum(axis=1)
            ctx.q = q
        elif logits.ndim == 2:  # a class index per sample: pick log p[i, target_i]
            loss = -log_p[np.arange(len(target)), target]
            if smoothing:
                loss = (1 - smoothing) * loss - smoothing * log_p.mean(axis=1)
            ctx.q = None
        else:  # a class index per sample and position
            picked = np.take_along_axis(log_p, np.expand_dims(target, 1), axis=1)
            loss = -np.squeeze(picked, axis=1)
            if smoothing:
                loss = (1 - smoothing) * loss - smoothing * log_p.mean(axis=1)
            ctx.q = None
        ctx.log_p, ctx.target, ctx.reduction, ctx.smoothing = log_p, target, reduction, smoothing
        if reduction == "mean":
            return loss.sum() / loss.size  # np.mean's Python wrapper costs more than the sum here
        return loss.sum() if reduction == "sum" else loss

    @staticmethod
    def backward(ctx, g):
        if ctx.kernel:
            return _backward_kernel(ctx, g), None, None, None
        p = np.exp(ctx.log_p)
        if ctx.q is not None:
            grad = p * ctx.q.sum(axis=1, keepdims=True) - ctx.q
        elif p.ndim == 2:  # p - onehot(target), the onehot written in place (no (N, C) mask)
            grad = p
            grad[np.arange(len(ctx.target)), ctx.target] -= 1 - ctx.smoothing
            if ctx.smoothing:
                grad -= ctx.smoothing / p.shape[1]
        else:
            grad = p
            target = np.expand_dims(ctx.target, 1)
            hit = np.take_along_axis(grad, target, axis=1)
            np.put_along_axis(grad, target, hit - (1 - ctx.smoothing), axis=1)
            if ctx.smoothing:
                grad -= ctx.smoothing / p.shape[1]
        if ctx.reduction == "none":
            grad *= np.expand_dims(g, 1)
        elif ctx.reduction == "mean":
            grad *= g / (p.size // p.shape[1])  # mean over every sample (and position)
        else:
            grad *= g
        return grad, None, None, None


def kernel_applies(
    shape: tuple[int, ...],
    dtype: DTypeLike,
    c_contiguous: bool,
    target_dtype: DTypeLike,
    reduction: str,
) -> bool:
    """Whether the compiled kernels compute this cross-entropy (else the NumPy reference):
    non-empty 2-D float32/float64 logits, C-contiguous, class indices, a mean or a sum.
    ``nabla.compile``'s lowering asks the same question, to take the path eager mode took."""
    return (
        reduction != "none"
        and len(shape) == 2
        and 0 not in shape
        and dtype in (np.float32, np.float64)
        and c_contiguous
        and np.dtype(target_dtype).kind in "iu"
        and kernels.compiled()
    )


def _forward_kernel(ctx, logits, target, reduction, smoothing):
    f = logits.dtype.type
    log_p, loss = np.empty_like(logits), np.empty(len(logits), logits.dtype)
    kernels.kernel("losses.cross_entropy_forward", logits.size)(
        logits, target, f(1 - smoothing), f(smoothing), log_p, loss
    )
    ctx.log_p, ctx.target, ctx.reduction, ctx.smoothing = log_p, target, reduction, smoothing
    return loss.sum() / loss.size if reduction == "mean" else loss.sum()


def _backward_kernel(ctx, g):
    log_p, smoothing = ctx.log_p, ctx.smoothing
    f = log_p.dtype.type
    scale = g / len(log_p) if ctx.reduction == "mean" else g
    grad = np.empty_like(log_p)
    kernels.kernel("losses.cross_entropy_backward", log_p.size)(
        log_p, ctx.target, f(1 - smoothing), f(smoothing / log_p.shape[1]), f(scale), grad
    )
    return grad


def cross_entropy(
    logits: Tensor,
    target: Tensor | ArrayLike,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between softmax(logits) and the target, as
    ``torch.nn.functional.cross_entropy``.

    logits: (N, C) or (N, C, d1, ...), or (C,) for one sample.
    target: class indices (integers, shape (N,) or (N, d1, ...), values in [0, C)) or class
    probabilities (floats, the logits' shape).
    reduction: "mean" (over samples), "sum" or "none" (one loss per sample).
    label_smoothing: eps in [0, 1]; the target becomes (1 - eps) target + eps / C.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    target_array = np.asarray(target.data if isinstance(target, Tensor) else target)
    unbatched = logits.ndim == 1
    if unbatched:
        logits = logits.reshape(1, -1)
        target_array = target_array[None]
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: logits must be (N, C, ...), got shape {logits.shape}")
    classes = logits.shape[1]
    if target_array.dtype.kind == "f":
        if target_array.shape != logits.shape:
            raise ValueError(
                f"cross_entropy: probability targets must have the logits' shape {logits.shape}, "
                f"got {target_array.shape}"
            )
        target_array = target_array.astype(logits.dtype, copy=False)
    elif target_array.dtype.kind in "iu":
        expected = logits.shape[:1] + logits.shape[2:]
        if target_array.shape != expected:
            raise ValueError(
                f"cross_entropy: class-index targets for logits {logits.shape} must have shape "
                f"{expected}, got {target_array.shape}"
            )
        if target_array.size and (target_array.min() < 0 or target_array.max() >= classes):
            bad = target_array[(target_array < 0) | (target_array >= classes)].flat[0]
            raise IndexError(
                f"cross_entropy: target class {bad} is out of range for {classes} classes"
            )
    else:
        raise TypeError(
            "cross_entropy: target must hold class indices or probabilities, got "
            f"{target_array.dtype}"
        )
    loss = CrossEntropy.apply(logits, target_array, reduction, label_smoothing)
    if unbatched and reduction == "none":
        loss = loss.reshape(())
    return loss
