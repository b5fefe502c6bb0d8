"""Reductions over axes: sum, mean, max, min, var, std, logsumexp (and argmax/argmin).

``axis`` is None (all axes), an int or a tuple; ``keepdims`` keeps reduced axes with length 1,
as in NumPy. PyTorch's names ``dim``, ``keepdim`` (and ``correction`` for var/std's ``ddof``)
are accepted too (:mod:`.axis_names`). Backward broadcasts the output gradient back over the
reduced axes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .axis_names import pytorch_names
from .elementwise import sqrt
from .promote import floating

_ALL_AXES = [tuple(range(n)) for n in range(64)]


def _axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return _ALL_AXES[ndim]
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    normalized = []
    for a in axes:
        if ndim == 0:  # a 0-d tensor has one element; axis 0 or -1 reduces nothing (as torch)
            if a not in (0, -1):
                raise np.exceptions.AxisError(f"axis {a} is out of range for a 0-d tensor")
            continue
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(f"axis {a} is out of range for a {ndim}-d tensor")
        normalized.append(int(a) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(normalized))  # () for a 0-d tensor


def _expand(
    g: np.ndarray, axes: tuple[int, ...], keepdims: bool, shape: tuple[int, ...]
) -> np.ndarray:
    """Broadcast the gradient of a reduction back to the input's shape (a view, no copy)."""
    if not keepdims and g.ndim:  # a 0-d gradient (a full reduction) broadcasts as it is
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return x.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return _expand(g, ctx.axes, ctx.keepdims, ctx.shape)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        ctx.count = int(np.prod([x.shape[a] for a in axes]))
        return x.mean(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return _expand(g / ctx.count, ctx.axes, ctx.keepdims, ctx.shape)


class _Extremum(Function):
    saves_output = True

    reduce: Callable[..., np.ndarray] = staticmethod(np.max)

    @classmethod
    def forward(cls, ctx, x, axes, keepdims):
        out = cls.reduce(x, axis=axes, keepdims=True)
        ctx.x, ctx.out, ctx.axes, ctx.keepdims = x, out, axes, keepdims
        return out if keepdims else np.squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, g):
        # The gradient goes to the extreme element; ties share it evenly (like torch.amax).
        hit = ctx.x == ctx.out
        share = hit / hit.sum(axis=ctx.axes, keepdims=True)
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return g * share


class Max(_Extremum):
    reduce = staticmethod(np.max)


class Min(_Extremum):
    reduce = staticmethod(np.min)


class Var(Function):
    @staticmethod
    def forward(ctx, x, axes, ddof, keepdims):
        n = int(np.prod([x.shape[a] for a in axes]))
        if n - ddof <= 0:
            raise ValueError(f"var: {n} elements with ddof={ddof} leave no degrees of freedom")
        centered = x - x.mean(axis=axes, keepdims=True)
        ctx.centered, ctx.denominator, ctx.axes, ctx.keepdims = centered, n - ddof, axes, keepdims
        return (centered * centered).sum(axis=axes, keepdims=keepdims) / (n - ddof)

    @staticmethod
    def backward(ctx, g):
        # d/dx_i sum_j (x_j - mean)^2 / (n - ddof) = 2 (x_i - mean) / (n - ddof)
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return g * ctx.centered * (2.0 / ctx.denominator)


class LogSumExp(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        m = x.max(axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)  # all -inf along an axis: log(0) = -inf, no NaN
        with np.errstate(divide="ignore"):  # that log(0) is the answer, not an accident
            out = m + np.log(np.exp(x - m).sum(axis=axes, keepdims=True))
        ctx.x, ctx.out, ctx.axes, ctx.keepdims = x, out, axes, keepdims
        return out if keepdims else np.squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return g * np.exp(ctx.x - ctx.out)  # d logsumexp / dx_i = softmax_i


@pytorch_names
def sum(x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes when None)."""
    return Sum.apply(x, _axes(axis, x.ndim), keepdims)


@pytorch_names
def mean(x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    return Mean.apply(floating(x), _axes(axis, x.ndim), keepdims)


@pytorch_names
def max(x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; tied maxima share the gradient evenly. The values only, also with
    ``dim=`` (NumPy's meaning, PyTorch's ``amax``): ``argmax`` gives the indices."""
    axes = _axes(axis, x.ndim)
    _check_nonempty(x, axes, "max")
    return Max.apply(x, axes, keepdims)


@pytorch_names
def min(x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis``; tied minima share the gradient evenly. The values only, also with
    ``dim=`` (NumPy's meaning, PyTorch's ``amin``): ``argmin`` gives the indices."""
    axes = _axes(axis, x.ndim)
    _check_nonempty(x, axes, "min")
    return Min.apply(x, axes, keepdims)


@pytorch_names
def var(
    x: Tensor, axis: int | Sequence[int] | None = None, ddof: int = 0, keepdims: bool = False
) -> Tensor:
    """Variance sum (x - mean)^2 / (n - ddof); ddof=0 (NumPy's default) or 1 (unbiased, torch's
    default: a port from PyTorch spells ``correction=1``)."""
    return Var.apply(floating(x), _axes(axis, x.ndim), ddof, keepdims)


@pytorch_names
def std(
    x: Tensor, axis: int | Sequence[int] | None = None, ddof: int = 0, keepdims: bool = False
) -> Tensor:
    """Standard deviation sqrt(var(x, axis, ddof))."""
    return sqrt(var(x, axis=axis, ddof=ddof, keepdims=keepdims))


@pytorch_names
def logsumexp(x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """log sum_i e^x_i over ``axis``, shifted by the maximum so it never overflows."""
    return LogSumExp.apply(floating(x), _axes(axis, x.ndim), keepdims)


@pytorch_names
def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum (int64, not differentiable)."""
    return Tensor._make(np.asarray(np.argmax(x.data, axis=axis, keepdims=keepdims), dtype=np.int64))


@pytorch_names
def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum (int64, not differentiable)."""
    return Tensor._make(np.asarray(np.argmin(x.data, axis=axis, keepdims=keepdims), dtype=np.int64))


def _check_nonempty(x: Tensor, axes: tuple[int, ...], name: str) -> None:
    """A maximum over no elements is undefined; other empty axes just give an empty result."""
    if any(x.shape[a] == 0 for a in axes) or (x.ndim == 0 and x.data.size == 0):
        raise ValueError(f"{name}() over an empty axis: tensor of shape {x.shape}, axes {axes}")
