"""Activation functions, each with its derivative written in terms of what forward computed.

All are numerically stable for large |x|: sigmoid via tanh, softplus via log1p(exp(-|x|)),
softmax and log-softmax after subtracting the maximum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .axis_names import pytorch_names
from .promote import floating


class Sigmoid(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x):
        # sigma(x) = (1 + tanh(x/2)) / 2 never overflows, unlike 1 / (1 + e^-x).
        out = np.tanh(x * 0.5)
        out += 1
        out *= 0.5
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        s = ctx.out
        return g * s * (1 - s)  # sigma' = sigma (1 - sigma)


class Tanh(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x):
        ctx.out = np.tanh(x)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g * (1 - ctx.out * ctx.out)  # tanh' = 1 - tanh^2


class ReLU(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        return relu_grad(g, ctx.out)


def relu_grad(g: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dL/dx of out = relu(x), from dL/dout: g where out > 0, else 0 (relu'(0) = 0, as PyTorch).
    One compiled pass when the kernels are on and g and out lie alike in memory (contiguous, or
    both (N, C, H, W) views of (C, H, W, N) arrays, as a convolution's output); the reference is
    ``g * (out > 0)``."""
    if g.dtype == out.dtype and g.strides == out.strides and kernels.compiled():
        flat_g = dense(g)  # if g is dense, so are out (laid out alike) and result (order "K")
        if flat_g is not None:
            result = np.empty_like(g)
            kernels.kernel("activations.relu_backward", g.size)(flat_g, dense(out), dense(result))
            return result
    return g * (out > 0)


def dense(a: np.ndarray) -> np.ndarray | None:
    """a's memory as a flat view when a fills one block with its axes in some order (C-contiguous,
    or a transposed view of a C-contiguous array), else None. Element-wise kernels run on it."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    view = a.transpose(np.argsort(a.strides)[::-1])  # outermost axis first (ties: length-1 axes)
    return view.reshape(-1) if view.flags.c_contiguous else None


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.positive, ctx.slope = x > 0, slope
        return np.where(ctx.positive, x, x * slope)

    @staticmethod
    def backward(ctx, g):
        return np.where(ctx.positive, g, g * ctx.slope), None


class ELU(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        negative_part = alpha * np.expm1(np.minimum(x, 0))
        ctx.positive, ctx.negative_part, ctx.alpha = x > 0, negative_part, alpha
        return np.where(ctx.positive, x, negative_part)

    @staticmethod
    def backward(ctx, g):
        # elu'(x) = 1 for x > 0, alpha e^x = elu(x) + alpha for x <= 0
        return np.where(ctx.positive, g, g * (ctx.negative_part + ctx.alpha)), None


_scipy_erf: Any = None  # SciPy's erf, False where SciPy is missing, None before the first look


def _erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise. NumPy has none: SciPy's vectorized one is used when SciPy is installed
    (looked up once, lazily: importing SciPy costs time), else math.erf element by element,
    exact to double precision but ~30x slower than the rest of a GELU layer."""
    global _scipy_erf
    x = np.asarray(x)
    if _scipy_erf is None:
        try:
            from scipy.special import erf as _scipy_erf
        except ImportError:
            _scipy_erf = False
    if _scipy_erf:
        return _scipy_erf(x).astype(x.dtype, copy=False)
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=x.dtype)


class GELU(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        if approximate == "tanh":
            # 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
            k = math.sqrt(2 / math.pi)
            t = np.tanh(k * (x + 0.044715 * x**3))
            ctx.x, ctx.t, ctx.k = x, t, k
            return 0.5 * x * (1 + t)
        cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))  # Phi(x)
        ctx.x, ctx.cdf = x, cdf
        return x * cdf

    @staticmethod
    def backward(ctx, g):
        x = ctx.x
        if hasattr(ctx, "t"):
            t, k = ctx.t, ctx.k
            du = k * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du), None
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # phi(x)
        return g * (ctx.cdf + x * pdf), None  # d/dx [x Phi(x)] = Phi(x) + x phi(x)


class Softplus(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        # softplus(x) = log(1 + e^(beta x)) / beta = max(x, 0) + log1p(e^-|beta x|) / beta,
        # and x itself where beta x > threshold (PyTorch's linear regime)
        bx = beta * x
        ctx.bx, ctx.linear = bx, bx > threshold
        out = np.maximum(x, 0) + np.log1p(np.exp(-np.abs(bx))) / beta
        return np.where(ctx.linear, x, out)

    @staticmethod
    def backward(ctx, g):
        s = np.tanh(ctx.bx * 0.5)
        s += 1
        s *= 0.5
        return np.where(ctx.linear, g, g * s), None, None  # softplus' = sigmoid(beta x)


class Softmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.out, ctx.axis = out, axis
        return out

    @staticmethod
    def backward(ctx, g):
        # J = diag(s) - s s^T, so g J = s * (g - <g, s>)
        s = ctx.out
        return s * (g - (g * s).sum(axis=ctx.axis, keepdims=True)), None


class LogSoftmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.out, ctx.axis = out, axis
        return out

    @staticmethod
    def backward(ctx, g):
        # d log_softmax_i / dx_j = delta_ij - softmax_j
        return g - np.exp(ctx.out) * g.sum(axis=ctx.axis, keepdims=True), None


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x); derivative sigma(x)(1 - sigma(x))."""
    return Sigmoid.apply(floating(x))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent; derivative 1 - tanh(x)^2."""
    return Tanh.apply(floating(x))


def relu(x: Tensor) -> Tensor:
    """max(x, 0); the derivative is taken as 0 at x = 0 (PyTorch's convention)."""
    return ReLU.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return LeakyReLU.apply(floating(x), negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise."""
    return ELU.apply(floating(x), alpha)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x Phi(x) with Phi the standard normal CDF; ``approximate="tanh"`` for the tanh formula."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(floating(x), approximate)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, a smooth ReLU; derivative sigmoid(beta x).

    Where beta x > threshold the result is x itself, as in PyTorch (the difference is below
    e^-threshold).
    """
    return Softplus.apply(floating(x), beta, threshold)


@pytorch_names
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^x_i / sum_j e^x_j along ``axis`` (or PyTorch's ``dim``)."""
    return Softmax.apply(floating(x), axis)


@pytorch_names
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x_i - logsumexp(x) along ``axis`` (or PyTorch's ``dim``), computed without overflow."""
    return LogSoftmax.apply(floating(x), axis)
