"""Operations that move elements without changing them: reshape, transpose, indexing, joining.

Their backward moves the gradient back to where each element came from: the inverse reshape or
permutation, a slice of the padded gradient, or a scatter-add for indexing (an element picked
twice by an advanced index receives both gradients).

``squeeze``, ``unsqueeze``, ``concatenate`` (``cat``) and ``stack`` also take PyTorch's name
``dim`` for ``axis`` (:mod:`.axis_names`). ``split`` does not: it is ``numpy.split`` (a number of
sections), where ``torch.split`` takes a section size, so a PyTorch call must not run unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .axis_names import pytorch_names


class Reshape(Function):
    may_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot view {x.shape} ({x.size} elements) as shape {shape}"
            ) from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Transpose(Function):
    may_view = True

    @staticmethod
    def forward(ctx, x, axes):
        ctx.inverse = None if axes is None else tuple(np.argsort(axes))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse)


class BroadcastTo(Function):
    may_view = True

    @staticmethod
    def forward(ctx, x, shape):
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None

    @staticmethod
    def backward(ctx, g):
        return g  # the engine sums it back to the input's shape


class GetItem(Function):
    may_view = True

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, g):
        out = np.zeros(ctx.shape, dtype=g.dtype)
        if _is_basic(ctx.index):
            out[ctx.index] = g  # basic indices never pick an element twice
        else:
            np.add.at(out, ctx.index, g)  # scatter-add: repeated indices accumulate
        return out, None


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        ctx.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.split(g, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.moveaxis(g, ctx.axis, 0))


class Pad(Function):
    @staticmethod
    def forward(ctx, x, pad_width, value):
        ctx.inner = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
        return np.pad(x, pad_width, constant_values=value)  # mode "constant", the default

    @staticmethod
    def backward(ctx, g):
        return g[ctx.inner], None, None


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items)


def _shape_arg(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(n) for n in shape)


def reshape(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """The same elements in a new shape (one dimension may be -1): ``x.reshape(2, 3)``."""
    return Reshape.apply(x, _shape_arg(shape))


def transpose(x: Tensor, *axes: int | Sequence[int]) -> Tensor:
    """Permute the axes (reverse them when none are given), as ``numpy.transpose``."""
    axes = _shape_arg(axes) if axes else None  # type: ignore[assignment]
    if x.ndim == 0:
        if axes not in (None, (), (0,), (-1,)):
            raise ValueError(f"transpose: axes {axes} for a 0-d tensor")
        return x
    # (axes holds ints now: type checkers keep the parameter's type, ints or one sequence)
    if axes is not None and sorted(a % x.ndim for a in axes) != list(range(x.ndim)):  # type: ignore[operator]
        raise ValueError(f"transpose: axes {axes} are not a permutation of {x.ndim} axes")
    return Transpose.apply(x, None if axes is None else tuple(a % x.ndim for a in axes))  # type: ignore[operator]


def permute(x: Tensor, *axes: int | Sequence[int]) -> Tensor:
    """PyTorch's name for ``transpose`` with explicit axes."""
    return transpose(x, *axes)


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes."""
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, *axes)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim into one (all axes by default), as ``torch.flatten``."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
    return reshape(x, shape)


@pytorch_names
def squeeze(x: Tensor, axis: int | Sequence[int] | None = None) -> Tensor:
    """Drop axes of length 1 (all of them, or those named by ``axis``)."""
    if x.ndim == 0:
        if axis not in (None, 0, -1):
            raise ValueError(f"squeeze: axis {axis} for a 0-d tensor")
        return x
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        axes = {a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)}
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(
                    f"squeeze: axis {a} has length {x.shape[a]}, not 1 (shape {x.shape})"
                )
        shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    return reshape(x, shape)


@pytorch_names
def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of length 1 at ``axis`` (NumPy's ``expand_dims``)."""
    return reshape(x, np.expand_dims(x.data, axis).shape)


expand_dims = unsqueeze


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """A read-only broadcast view of x with ``shape``; its gradient is summed back."""
    return BroadcastTo.apply(x, tuple(shape))


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with basic (ints, slices, None, ...) or advanced (int/bool arrays) indices."""
    return GetItem.apply(x, _plain_index(index))


def _plain_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


@pytorch_names
def concatenate(tensors: Iterable[Tensor | ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = _tensors(tensors, "concatenate")
    try:
        return Concatenate.apply(*tensors, axis=axis)
    except ValueError:
        shapes = [t.shape for t in tensors]
        raise ValueError(f"concatenate: shapes {shapes} differ outside axis {axis}") from None


cat = concatenate


@pytorch_names
def stack(tensors: Iterable[Tensor | ArrayLike], axis: int = 0) -> Tensor:
    """Join equally shaped tensors along a new axis."""
    tensors = _tensors(tensors, "stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(
            f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}"
        )
    return Stack.apply(*tensors, axis=axis)


def split(x: Tensor, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split into pieces along ``axis``, as ``numpy.split`` (a count of equal parts, or indices)."""
    n = x.shape[axis]
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(
                f"split: axis {axis} of length {n} does not divide into {indices_or_sections}"
            )
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0, *indices_or_sections, n]
    lead = (slice(None),) * (axis % x.ndim)
    return [getitem(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def pad(
    x: Tensor, pad_width: int | Sequence[int] | Sequence[Sequence[int]], value: float = 0.0
) -> Tensor:
    """Pad with a constant, ``pad_width`` as in ``numpy.pad`` (int, (before, after) or per axis)."""
    widths = np.asarray(pad_width)
    if not np.issubdtype(widths.dtype, np.integer):  # numpy.pad and torch refuse 1.5 too
        raise TypeError(f"pad: pad widths must be integers, got {pad_width}")
    widths = np.broadcast_to(widths, (x.ndim, 2))
    if (widths < 0).any():
        raise ValueError(f"pad: negative pad width {pad_width}")
    return Pad.apply(x, tuple(map(tuple, widths.tolist())), value)


def _tensors(tensors: Iterable[Tensor | ArrayLike], name: str) -> list[Tensor]:
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{name}: needs at least one tensor")
    return tensors
