"""Basic layers: Linear, Identity, Flatten, Dropout."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .. import random
from ..autograd.dtypes import DEFAULT_FLOAT, as_dtype
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..ops.linalg import linear, linear_relu
from ..ops.shape import flatten
from .module import Module, Parameter

if TYPE_CHECKING:
    from typing import TypeVar

    from numpy.typing import DTypeLike

    _T = TypeVar("_T")


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), as ``torch.nn.Linear``.

    Default initialization (PyTorch's): W and b uniform in [-1/sqrt(in), 1/sqrt(in)], which is
    Kaiming-uniform with a = sqrt(5). Use ``nabla.nn.init`` for other schemes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: DTypeLike | None = None,
        generator: np.random.Generator | None = None,
    ):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: sizes must be positive, got ({in_features}, {out_features})")
        self.in_features, self.out_features = in_features, out_features
        rng = random.resolve(generator)
        dtype = DEFAULT_FLOAT if dtype is None else as_dtype(dtype)
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(
            rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        )
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): expected input (..., "
                f"{self.in_features}), got shape {x.shape}"
            )
        return linear(x, self.weight, self.bias)

    def forward_relu(self, x: Tensor) -> Tensor:
        """``relu(self(x))`` as one fused operation (see ``Sequential``)."""
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            return self.forward(x)  # raises the shape error
        return linear_relu(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


class Identity(Module):
    """Returns its input; a placeholder (e.g. a removed head in transfer learning)."""

    def forward(self, x: _T) -> _T:
        return x


class Flatten(Module):
    """Merge axes start_dim..end_dim (by default all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class _DropoutFunction(Function):
    """y = x * mask. The mask is drawn inside forward, so that a compiled step (``nb.compile``),
    which replays forward, draws fresh numbers from the same generator in the same order."""

    @staticmethod
    def forward(ctx, x, p, generator):
        if p == 1.0:
            mask = np.zeros(x.shape, dtype=x.dtype)
        else:
            keep = random.resolve(generator).random(x.shape, dtype=np.float32) >= p
            mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask, None, None


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by
    1/(1-p), so the expected value is unchanged and evaluation is the identity.
    """

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return _DropoutFunction.apply(x, self.p, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace=False"  # as torch prints it; nabla never drops in place
