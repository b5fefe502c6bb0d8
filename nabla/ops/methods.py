"""Bind the operations to Tensor as operators and methods (``x + y``, ``x.sum()``, ``x.T``).

The functions are attached directly, not wrapped, so ``x + y`` costs one Python call less than a
method that forwards to ``add``; this matters for the per-operation overhead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..autograd.tensor import Tensor
from . import activations as act
from . import elementwise as ew
from . import linalg, reduce, shape
from .axis_names import pytorch_names


def _reflected(
    op: Callable[[Tensor | ArrayLike, Tensor | ArrayLike], Tensor],
) -> Callable[[Tensor, Tensor | ArrayLike], Tensor]:
    def reflected(self: Tensor, other: Tensor | ArrayLike) -> Tensor:
        return op(other, self)

    reflected.__name__ = f"r{op.__name__}"
    return reflected


_OPERATORS = {
    "__add__": ew.add,
    "__radd__": ew.add,  # addition commutes
    "__sub__": ew.sub,
    "__rsub__": _reflected(ew.sub),
    "__mul__": ew.mul,
    "__rmul__": ew.mul,
    "__truediv__": ew.div,
    "__rtruediv__": _reflected(ew.div),
    "__pow__": ew.pow,
    "__rpow__": _reflected(ew.pow),
    "__matmul__": linalg.matmul,
    "__rmatmul__": _reflected(linalg.matmul),
    "__neg__": ew.neg,
    "__pos__": lambda self: self,
    "__abs__": ew.abs,
    "__eq__": ew.eq,
    "__ne__": ew.ne,
    "__lt__": ew.lt,
    "__le__": ew.le,
    "__gt__": ew.gt,
    "__ge__": ew.ge,
    "__getitem__": shape.getitem,
}

_METHODS = {
    # elementwise
    "exp": ew.exp, "log": ew.log, "sqrt": ew.sqrt, "abs": ew.abs, "sin": ew.sin, "cos": ew.cos,
    "clip": ew.clip, "clamp": ew.clip, "maximum": ew.maximum, "minimum": ew.minimum,
    "astype": ew.astype, "pow": ew.pow, "neg": ew.neg, "matmul": linalg.matmul,
    # activations
    "sigmoid": act.sigmoid, "tanh": act.tanh, "relu": act.relu, "leaky_relu": act.leaky_relu,
    "elu": act.elu, "gelu": act.gelu, "softplus": act.softplus, "softmax": act.softmax,
    "log_softmax": act.log_softmax,
    # reductions
    "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max, "min": reduce.min,
    "var": reduce.var, "std": reduce.std, "logsumexp": reduce.logsumexp,
    "argmax": reduce.argmax, "argmin": reduce.argmin,
    # shape
    "reshape": shape.reshape, "view": shape.reshape, "transpose": shape.transpose,
    "permute": shape.permute, "swapaxes": shape.swapaxes, "flatten": shape.flatten,
    "squeeze": shape.squeeze, "unsqueeze": shape.unsqueeze, "expand_dims": shape.expand_dims,
    "broadcast_to": shape.broadcast_to, "split": shape.split, "pad": shape.pad,
}  # fmt: skip

for _name, _fn in {**_OPERATORS, **_METHODS}.items():
    setattr(Tensor, _name, _fn)

# (the attributes the stub, nabla/autograd/tensor.pyi, declares: type checkers read them there)
Tensor.T = property(lambda self: shape.transpose(self), doc="The tensor with its axes reversed.")  # type: ignore[misc]


def _float(self: Tensor) -> Tensor:
    return ew.astype(self, "float32")


def _double(self: Tensor) -> Tensor:
    return ew.astype(self, "float64")


def _long(self: Tensor) -> Tensor:
    return ew.astype(self, "int64")


def _to(self: Tensor, dtype: DTypeLike) -> Tensor:
    return ew.astype(self, dtype)


Tensor.float, Tensor.double, Tensor.long, Tensor.to = _float, _double, _long, _to


@pytorch_names
def any(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Whether any element along ``axis`` is nonzero (bool, not differentiable)."""
    return Tensor._make(np.asarray(x.data.any(axis=axis, keepdims=keepdims)))


@pytorch_names
def all(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Whether every element along ``axis`` is nonzero (bool, not differentiable)."""
    return Tensor._make(np.asarray(x.data.all(axis=axis, keepdims=keepdims)))


Tensor.any, Tensor.all = any, all  # type: ignore[assignment]
