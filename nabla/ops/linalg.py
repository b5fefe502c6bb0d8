"""Matrix multiplication for 1-D, 2-D and batched operands (NumPy's ``matmul`` rules).

For C = A B:  dL/dA = G B^T  and  dL/dB = A^T G. A 1-D operand is treated as a row (left) or
column (right) vector and the added axis removed again; batch axes broadcast, and the engine sums
the gradient of a broadcast operand back over them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..autograd.engine import grad_slot
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .activations import relu_grad
from .promote import promote


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:  # inner product: d(a.b)/da = b
            return (g * b if need_a else None), (g * a if need_b else None)
        # Lift vectors to matrices so one pair of formulas covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        g_a = g_b = None
        if need_a:
            g_a = np.matmul(g, np.swapaxes(b2, -1, -2))
            if a.ndim == 1:
                g_a = g_a[..., 0, :]  # batch axes, if any, are summed by the engine
        if need_b:
            g_b = np.matmul(np.swapaxes(a2, -1, -2), g)
            if b.ndim == 1:
                g_b = g_b[..., 0]
        return g_a, g_b


def matmul(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Matrix product ``a @ b`` (vectors, matrices and stacks of matrices)."""
    a, b = promote(a, b)
    shape_a, shape_b = np.shape(a), np.shape(b)  # a Tensor, an array or a number
    if not shape_a or not shape_b:
        raise ValueError(
            f"matmul: operands must be at least 1-D, got shapes {shape_a} and {shape_b}"
        )
    inner_a = shape_a[-1]
    inner_b = shape_b[-2 if len(shape_b) > 1 else 0]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul: shapes {shape_a} and {shape_b} do not align "
            f"(inner dimensions {inner_a} != {inner_b})"
        )
    try:
        return MatMul.apply(a, b)
    except ValueError:
        raise ValueError(
            f"matmul: batch dimensions of {shape_a} and {shape_b} do not broadcast"
        ) from None


class Linear(Function):
    """y = x W^T + b, fused: one matmul forward, two matmuls and a sum backward."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.x, ctx.weight = x, weight
        y = np.matmul(x, weight.T)  # W^T is a view: BLAS reads it transposed, no copy
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.x, ctx.weight
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])  # batch axes flattened: (M, out)
        g_x = np.matmul(g, weight) if need_x else None  # dL/dx = G W
        g_w = None
        if need_w:  # dL/dW = G^T x, written into the optimizer's gradient buffer when it can be
            out = grad_slot(ctx.inputs[1], weight.shape, np.result_type(g2, x))
            g_w = np.matmul(g2.T, x.reshape(-1, x.shape[-1]), out=out)
        g_b = None
        if need_b:  # dL/db = sum over the batch of G
            g_b = g2.sum(axis=0, out=grad_slot(ctx.inputs[2], (g2.shape[1],), g2.dtype))
        return g_x, g_w, g_b


class LinearReLU(Function):
    """y = relu(x W^T + b), fused: the bias and the rectifier in one in-place pass over the
    product (no second array, no second graph node); backward masks G once (``relu_grad``),
    then takes Linear's products. The same numbers as ``relu(linear(x, W, b))``, bit for bit."""

    saves_output = True

    @staticmethod
    def forward(ctx, x, weight, bias):
        y = Linear.forward(ctx, x, weight, bias)
        np.maximum(y, 0, out=y)
        ctx.out = y
        return y

    @staticmethod
    def backward(ctx, g):
        return Linear.backward(ctx, relu_grad(g, ctx.out))


def linear_relu(x: Tensor | np.ndarray, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(linear(x, weight, bias))`` as one operation (what ``Sequential`` runs for a Linear
    followed by a ReLU)."""
    if isinstance(x, Tensor) and x.data.dtype != weight.data.dtype:
        x = x.astype(weight.data.dtype)
    return LinearReLU.apply(x, weight, bias)


def linear(x: Tensor | np.ndarray, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``x @ weight.T + bias`` with weight of shape (out, in), as
    ``torch.nn.functional.linear``.

    x has shape (..., in); the result has shape (..., out).
    """
    w_shape = weight.shape
    if len(w_shape) != 2:
        raise ValueError(
            f"linear: weight must be 2-D (out_features, in_features), got shape {w_shape}"
        )
    if x.ndim == 0 or x.shape[-1] != w_shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not fit weight of shape {w_shape}: "
            f"expected last dimension {w_shape[1]}, got {x.shape[-1] if x.ndim else 'a scalar'}"
        )
    if bias is not None and tuple(bias.shape) != (w_shape[0],):
        raise ValueError(f"linear: bias must have shape ({w_shape[0]},), got {tuple(bias.shape)}")
    if isinstance(x, Tensor) and x.data.dtype != weight.data.dtype:
        x = x.astype(weight.data.dtype)
    return Linear.apply(x, weight, bias)
