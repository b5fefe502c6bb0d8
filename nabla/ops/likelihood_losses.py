"""The other losses of ``torch.nn.functional``, each the negative log-likelihood of a model.

Minimising a loss is maximum likelihood under the distribution it is the NLL of (constants that
do not depend on the prediction dropped):

* ``mse_loss``: Gaussian with fixed variance, (y - x)^2 = 2 sigma^2 (-log N(y; x, sigma^2)) + c;
* ``gaussian_nll_loss``: Gaussian with a predicted variance, 0.5 (log var + (y - x)^2 / var);
* ``l1_loss``: Laplace with fixed scale, |y - x| = b (-log Laplace(y; x, b)) + c;
* ``huber_loss``: Gaussian near the prediction and Laplace in the tails (robust to outliers);
* ``binary_cross_entropy`` (``_with_logits``): Bernoulli, -(y log p + (1 - y) log(1 - p));
* ``nll_loss`` (and ``cross_entropy``, fused with log-softmax): categorical, -log p_target.

Each loss is one fused Function: forward computes the elementwise loss and its local derivatives,
the reduction (``mean`` over every element, ``sum`` or ``none``) is applied last, and backward is
the reduction's VJP times those derivatives. Targets and ``var`` get the gradients torch gives
them; class indices and ``pos_weight`` are constants, as in torch. Unlike torch, which warns, a
target whose shape differs from the input's is an error: broadcasting (N, 1) against (N,)
silently builds an (N, N) loss.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .elementwise import astype
from .losses import REDUCTIONS
from .promote import floating


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _like(x: Tensor | ArrayLike, input: Tensor) -> Tensor | np.ndarray:
    """``x`` (a Tensor or array-like) in the input's float dtype; Tensors stay differentiable."""
    if isinstance(x, Tensor):
        return astype(x, input.dtype)
    return np.asarray(x, dtype=input.dtype)


def _operands(
    name: str, input: Tensor, target: Tensor | ArrayLike, reduction: str
) -> tuple[Tensor, Tensor | np.ndarray]:
    _check_reduction(name, reduction)
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    input = floating(input)
    target = _like(target, input)
    if target.shape != input.shape:
        raise ValueError(
            f"{name}: target shape {target.shape} must equal input shape {input.shape} "
            "(broadcasting between them is refused; reshape one explicitly)"
        )
    return input, target


def _reduce(ctx, loss: np.ndarray, reduction: str) -> np.ndarray:
    ctx.reduction, ctx.count = reduction, loss.size
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _upstream(ctx, g: np.ndarray) -> np.ndarray:
    """dL/dloss_i for every element: the VJP of the reduction (broadcasts against the loss)."""
    return g / ctx.count if ctx.reduction == "mean" else g


def _grads(ctx, g, *local):
    """One gradient per input: upstream times each local derivative, None where not needed."""
    up = _upstream(ctx, g)
    needs = ctx.needs_input_grad
    return tuple(None if d is None or not needs[i] else up * d for i, d in enumerate(local))


class MSELoss(Function):
    @staticmethod
    def forward(ctx, x, y, reduction):
        ctx.diff = x - y
        return _reduce(ctx, ctx.diff**2, reduction)

    @staticmethod
    def backward(ctx, g):
        d = 2 * ctx.diff
        return (*_grads(ctx, g, d, -d), None)


class L1Loss(Function):
    @staticmethod
    def forward(ctx, x, y, reduction):
        diff = x - y
        ctx.sign = np.sign(diff)  # 0 at a tie, as torch
        return _reduce(ctx, np.abs(diff), reduction)

    @staticmethod
    def backward(ctx, g):
        return (*_grads(ctx, g, ctx.sign, -ctx.sign), None)


class HuberLoss(Function):
    @staticmethod
    def forward(ctx, x, y, reduction, delta):
        diff = x - y
        size = np.abs(diff)
        quadratic = size < delta
        loss = np.where(quadratic, 0.5 * diff**2, delta * (size - 0.5 * delta))
        ctx.slope = np.clip(diff, -delta, delta)  # diff inside, +-delta in the linear tails
        return _reduce(ctx, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        return (*_grads(ctx, g, ctx.slope, -ctx.slope), None, None)


class GaussianNLLLoss(Function):
    @staticmethod
    def forward(ctx, x, y, var, reduction, full, eps):
        # torch clamps var in place under no_grad: the clamped value is used, but the gradient
        # passes straight through to var as if it had not been clamped.
        var = np.maximum(var, eps).astype(x.dtype, copy=False)
        diff = x - y
        loss = 0.5 * (np.log(var) + diff**2 / var)
        if full:
            loss = loss + 0.5 * math.log(2 * math.pi)
        ctx.diff, ctx.var = diff, var
        return _reduce(ctx, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        d = ctx.diff / ctx.var
        dvar = 0.5 * (1 / ctx.var - d**2)
        return (*_grads(ctx, g, d, -d, dvar), None, None, None)


_TORCH_EPSILON = float(np.float32(1e-12))  # torch's floor is a float32 constant, in any dtype


class BinaryCrossEntropy(Function):
    @staticmethod
    def forward(ctx, p, y, reduction):
        with np.errstate(divide="ignore"):
            log_p, log_q = np.log(p), np.log1p(-p)
        # torch clamps each log at -100, so p = 0 or 1 gives a large finite loss, not inf or nan
        loss = -(y * np.maximum(log_p, -100) + (1 - y) * np.maximum(log_q, -100))
        ctx.p, ctx.y, ctx.logit = p, y, log_p - log_q
        return _reduce(ctx, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        p = ctx.p
        # torch's formulas: p(1 - p) floored at 1e-12 for p; the unclamped -logit(p) for y
        dp = (p - ctx.y) / np.maximum(p * (1 - p), _TORCH_EPSILON)
        return (*_grads(ctx, g, dp, -ctx.logit), None)


class BCEWithLogits(Function):
    @staticmethod
    def forward(ctx, x, y, pos_weight, reduction):
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        softplus_neg = np.log1p(e) + np.maximum(-x, 0)  # log(1 + e^-x) = -log sigmoid(x)
        sigmoid = np.where(x >= 0, 1, e) / (1 + e)
        if pos_weight is None:
            loss = (1 - y) * x + softplus_neg  # = max(x, 0) - x y + log(1 + e^-|x|)
        else:
            weight = 1 + (pos_weight - 1) * y  # positives count pos_weight times
            loss = (1 - y) * x + weight * softplus_neg
        ctx.x, ctx.y, ctx.pos_weight = x, y, pos_weight
        ctx.sigmoid, ctx.softplus_neg = sigmoid, softplus_neg
        return _reduce(ctx, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        x, y, pw = ctx.x, ctx.y, ctx.pos_weight
        if pw is None:
            return (*_grads(ctx, g, ctx.sigmoid - y, -x), None, None)
        weight = 1 + (pw - 1) * y
        dx = (1 - y) - weight * (1 - ctx.sigmoid)
        dy = (pw - 1) * ctx.softplus_neg - x
        return (*_grads(ctx, g, dx, dy), None, None)


class NLLLoss(Function):
    @staticmethod
    def forward(ctx, log_p, target, reduction):
        picked = np.take_along_axis(log_p, np.expand_dims(target, 1), axis=1)
        ctx.target, ctx.shape = target, log_p.shape
        return _reduce(ctx, -np.squeeze(picked, axis=1), reduction)

    @staticmethod
    def backward(ctx, g):
        up = np.broadcast_to(_upstream(ctx, g), ctx.target.shape)
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        np.put_along_axis(grad, np.expand_dims(ctx.target, 1), -np.expand_dims(up, 1), axis=1)
        return grad, None, None


def mse_loss(input: Tensor, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Mean squared error (y - x)^2, as ``torch.nn.functional.mse_loss``.

    >>> import nabla as nb
    >>> mse_loss(nb.tensor([1.0, 2.0]), nb.tensor([1.0, 4.0])).item()
    2.0
    """
    input, target = _operands("mse_loss", input, target, reduction)
    return MSELoss.apply(input, target, reduction)


def l1_loss(input: Tensor, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Mean absolute error |y - x| (gradient 0 where x = y), as ``torch.nn.functional.l1_loss``.

    >>> import nabla as nb
    >>> l1_loss(nb.tensor([1.0, 2.0]), nb.tensor([1.0, 4.0]), reduction="sum").item()
    2.0
    """
    input, target = _operands("l1_loss", input, target, reduction)
    return L1Loss.apply(input, target, reduction)


def huber_loss(
    input: Tensor, target: Tensor | ArrayLike, reduction: str = "mean", delta: float = 1.0
) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - delta / 2), with d = x - y; as torch's.

    >>> import nabla as nb
    >>> huber_loss(nb.tensor([0.5, 3.0]), nb.tensor([0.0, 0.0]), reduction="none")
    tensor([0.125, 2.5  ])
    """
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    input, target = _operands("huber_loss", input, target, reduction)
    return HuberLoss.apply(input, target, reduction, float(delta))


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor | ArrayLike,
    var: Tensor | ArrayLike,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """Gaussian NLL 0.5 (log v + (y - x)^2 / v) with v = max(var, eps), as torch's.

    ``full`` adds the constant 0.5 log(2 pi). ``var`` is a number, or has the input's shape, or
    that shape with the last dimension 1 or dropped (one variance per sample); it must be
    non-negative. The eps clamp passes gradients straight through, as in torch.

    >>> import nabla as nb
    >>> gaussian_nll_loss(nb.tensor([0.0]), nb.tensor([2.0]), nb.tensor([1.0])).item()
    2.0
    """
    input, target = _operands("gaussian_nll_loss", input, target, reduction)
    if isinstance(var, (int, float)):  # one variance for every element, as torch allows
        var = np.full(input.shape, var, dtype=input.dtype)
    var = _like(var, input)
    if var.shape != input.shape and input.ndim and var.shape == input.shape[:-1]:
        var = var.reshape(*var.shape, 1)  # one variance per sample
    if var.shape != input.shape and (var.shape[:-1] != input.shape[:-1] or var.shape[-1:] != (1,)):
        raise ValueError(
            f"gaussian_nll_loss: var shape {var.shape} does not fit input shape {input.shape} "
            "(the same shape, the last dimension 1, or the last dimension dropped)"
        )
    if np.any(np.asarray(var.data if isinstance(var, Tensor) else var) < 0):
        raise ValueError("gaussian_nll_loss: var has a negative entry")
    return GaussianNLLLoss.apply(input, target, var, reduction, bool(full), float(eps))


def binary_cross_entropy(
    probs: Tensor, target: Tensor | ArrayLike, reduction: str = "mean"
) -> Tensor:
    """Bernoulli NLL -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as in torch.

    Prefer ``binary_cross_entropy_with_logits``: it is stable where p rounds to 0 or 1.

    >>> import nabla as nb
    >>> loss = binary_cross_entropy(nb.tensor([0.5, 0.0]), nb.tensor([1.0, 1.0]), "none")
    >>> [round(v, 4) for v in loss.tolist()]  # log 2, and -log 0 clamped at 100
    [0.6931, 100.0]
    """
    probs, target = _operands("binary_cross_entropy", probs, target, reduction)
    if probs.size and (probs.data.min() < 0 or probs.data.max() > 1):
        raise ValueError("binary_cross_entropy: probs must lie in [0, 1]")
    return BinaryCrossEntropy.apply(probs, target, reduction)


def binary_cross_entropy_with_logits(
    logits: Tensor,
    target: Tensor | ArrayLike,
    reduction: str = "mean",
    pos_weight: Tensor | ArrayLike | None = None,
) -> Tensor:
    """Binary cross-entropy of sigmoid(logits), fused: max(x, 0) - x y + log(1 + e^-|x|).

    Finite for any logits. ``pos_weight`` (broadcast against the logits, e.g. one per class along
    the last axis) multiplies the positive term: (1 - y) x + (1 + (w - 1) y) log(1 + e^-x).

    >>> import nabla as nb
    >>> binary_cross_entropy_with_logits(nb.tensor([1e4, -1e4]), nb.tensor([0.0, 1.0]), "sum")
    tensor(20000.)
    """
    name = "binary_cross_entropy_with_logits"
    logits, target = _operands(name, logits, target, reduction)
    if pos_weight is not None:
        # a constant, as in torch (which refuses to differentiate with respect to it)
        pos_weight = np.asarray(getattr(pos_weight, "data", pos_weight), dtype=logits.dtype)
        try:
            np.broadcast_shapes(pos_weight.shape, logits.shape)
        except ValueError:
            raise ValueError(
                f"{name}: pos_weight shape {pos_weight.shape} does not broadcast against "
                f"logits shape {logits.shape}"
            ) from None
    return BCEWithLogits.apply(logits, target, pos_weight, reduction)


def nll_loss(log_probs: Tensor, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Categorical NLL -log_probs[n, target[n]], as ``torch.nn.functional.nll_loss``.

    log_probs: (N, C) or (N, C, d1, ...) (classes along axis 1), or (C,) for one sample; usually
    ``log_softmax(z, axis=1)`` (``cross_entropy`` fuses the two). target: integer class indices
    of shape (N,) or (N, d1, ...). No ``weight`` or ``ignore_index``.

    >>> import nabla as nb
    >>> nll_loss(nb.tensor([[-0.5, -1.0], [-2.0, -0.1]]), [1, 0]).item()
    1.5
    """
    _check_reduction("nll_loss", reduction)
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got {target.dtype}")
    unbatched = log_probs.ndim == 1
    if unbatched:
        log_probs, target = log_probs.reshape(1, -1), target[None]
    if log_probs.ndim < 2:
        raise ValueError(f"nll_loss: log_probs must be (N, C, ...), got shape {log_probs.shape}")
    expected = log_probs.shape[:1] + log_probs.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"nll_loss: target for log_probs {log_probs.shape} must have shape {expected}, "
            f"got {target.shape}"
        )
    classes = log_probs.shape[1]
    if target.size and (target.min() < 0 or target.max() >= classes):
        bad = target[(target < 0) | (target >= classes)].flat[0]
        raise IndexError(f"nll_loss: target class {bad} is out of range for {classes} classes")
    loss = NLLLoss.apply(floating(log_probs), target, reduction)
    return loss.reshape(()) if unbatched and reduction == "none" else loss
