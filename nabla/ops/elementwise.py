"""Elementwise operations: arithmetic, math functions, comparisons, clip, maximum, where.

Every binary operation broadcasts like NumPy; the engine sums gradients back to each input's
shape, so the backward formulas below are the scalar derivatives applied elementwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..autograd.dtypes import as_dtype
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .promote import floating, promote


def _real(x: Tensor | ArrayLike) -> Tensor | ArrayLike:
    if isinstance(x, Tensor):
        return floating(x)
    if isinstance(x, np.ndarray) and x.dtype.kind != "f":
        return x.astype(np.float32)
    return x


def _broadcast_error(name: str, a: Any, b: Any) -> ValueError:
    return ValueError(
        f"{name}: cannot broadcast shapes {np.shape(a)} and {np.shape(b)} "
        "(trailing dimensions must be equal or 1)"
    )


def _binary(
    function: type[Function], name: str, doc: str, real: bool = False
) -> Callable[[Tensor | ArrayLike, Tensor | ArrayLike], Tensor]:
    """The public function for a binary op: promote the operands, apply, explain shape errors.

    ``real``: the result is real-valued even for integers (true division), so integer tensors
    become float32 first.
    """

    def op(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
        a, b = promote(a, b)
        if real:
            a, b = _real(a), _real(b)
        try:
            return function.apply(a, b)
        except ValueError as err:
            if "broadcast" in str(err):
                raise _broadcast_error(name, a, b) from None
            raise

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad
        return (g * ctx.b if need_a else None), (g * ctx.a if need_b else None)


class Div(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.b, ctx.out = b, out
        return out

    @staticmethod
    def backward(ctx, g):
        # d(a/b)/da = 1/b;  d(a/b)/db = -a/b^2 = -out/b
        g_a = g / ctx.b
        return g_a, (-g_a * ctx.out if ctx.needs_input_grad[1] else None)


class Pow(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.a, ctx.b, ctx.out
        need_a, need_b = ctx.needs_input_grad
        g_a = None
        if need_a:  # b a^(b-1), taken as 0 where b = 0 (a^0 is constant; 0 * 0^-1 would be NaN)
            with np.errstate(divide="ignore", invalid="ignore"):
                g_a = g * np.where(np.equal(b, 0), 0, b * a ** (b - 1))
        g_b = None
        if need_b:
            # d(a^b)/db = a^b ln a; at a = 0 with b >= 0 the limit is 0 (PyTorch's convention).
            with np.errstate(divide="ignore", invalid="ignore"):
                g_b = g * np.where((a == 0) & (b >= 0), 0.0, out * np.log(a))
        return g_a, g_b


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        # Where a == b the gradient is split evenly, as in PyTorch.
        share = (ctx.a > ctx.b) + 0.5 * (ctx.a == ctx.b)
        return g * share, g * (1 - share)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        share = (ctx.a < ctx.b) + 0.5 * (ctx.a == ctx.b)
        return g * share, g * (1 - share)


add = _binary(Add, "add", "a + b with broadcasting.")
sub = _binary(Sub, "sub", "a - b with broadcasting.")
mul = _binary(Mul, "mul", "a * b with broadcasting.")
div = _binary(Div, "div", "a / b with broadcasting (true division).", real=True)
pow = _binary(Pow, "pow", "a ** b; differentiable in the base and in a tensor exponent.")
maximum = _binary(
    Maximum, "maximum", "Elementwise maximum; at ties each input gets half the gradient."
)
minimum = _binary(
    Minimum, "minimum", "Elementwise minimum; at ties each input gets half the gradient."
)


# --- unary ------------------------------------------------------------------------------------


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, a):
        ctx.out = np.exp(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.a


class Sqrt(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, a):
        ctx.out = np.sqrt(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g / (2 * ctx.out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        return g * np.sign(ctx.a)  # sign(0) = 0: the subgradient PyTorch uses


class Sin(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.sin(a)

    @staticmethod
    def backward(ctx, g):
        return g * np.cos(ctx.a)


class Cos(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.cos(a)

    @staticmethod
    def backward(ctx, g):
        return -g * np.sin(ctx.a)


class Clip(Function):
    @staticmethod
    def forward(ctx, a, low, high):
        ctx.a, ctx.low, ctx.high = a, low, high
        return np.clip(a, low, high)

    @staticmethod
    def backward(ctx, g):
        # Gradient passes where low <= a <= high (bounds included, as in torch.clamp).
        if ctx.low is not None:
            inside = ctx.a >= ctx.low
        else:
            inside = np.ones(ctx.a.shape, dtype=bool)
        if ctx.high is not None:
            inside &= ctx.a <= ctx.high
        return g * inside, None, None


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.condition = condition
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad[1:]
        zero = np.zeros((), dtype=g.dtype)
        return (
            None,
            np.where(ctx.condition, g, zero) if need_a else None,
            np.where(ctx.condition, zero, g) if need_b else None,
        )


class AsType(Function):
    may_view = False  # astype always copies

    @staticmethod
    def forward(ctx, a, dtype):
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g, None  # the engine casts it back to the input's dtype


def neg(x: Tensor) -> Tensor:
    """-x."""
    return Neg.apply(x)


def exp(x: Tensor) -> Tensor:
    """e^x; derivative e^x."""
    return Exp.apply(floating(x))


def log(x: Tensor) -> Tensor:
    """Natural logarithm; derivative 1/x."""
    return Log.apply(floating(x))


def sqrt(x: Tensor) -> Tensor:
    """Square root; derivative 1/(2 sqrt(x))."""
    return Sqrt.apply(floating(x))


def abs(x: Tensor) -> Tensor:
    """|x|; derivative sign(x), taken as 0 at 0."""
    return Abs.apply(x)


def sin(x: Tensor) -> Tensor:
    """Sine; derivative cos(x)."""
    return Sin.apply(floating(x))


def cos(x: Tensor) -> Tensor:
    """Cosine; derivative -sin(x)."""
    return Cos.apply(floating(x))


def clip(
    x: Tensor, min: Tensor | ArrayLike | None = None, max: Tensor | ArrayLike | None = None
) -> Tensor:
    """Limit x to [min, max] (either may be None); the gradient is 1 inside, bounds included."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if any(np.asarray(b).dtype.kind == "f" for b in (min, max) if b is not None):
        x = floating(x)  # an integer tensor clipped to float bounds becomes float32, as in torch
    return Clip.apply(x, _bound(min, x.dtype), _bound(max, x.dtype))


def _bound(v: Tensor | ArrayLike | None, dtype: np.dtype) -> Any:
    """A clip bound as a constant of the tensor's dtype (weak, like any constant operand)."""
    if v is None:
        return None
    v = v.data if isinstance(v, Tensor) else v
    return np.asarray(v, dtype=dtype) if dtype.kind == "f" else v


def where(condition: Tensor | ArrayLike, a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Elements of ``a`` where ``condition`` holds, else of ``b``; differentiable in a and b."""
    condition = np.asarray(condition)  # a Tensor converts through __array__
    if condition.dtype != bool:
        raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    a, b = promote(a, b)
    try:
        return Where.apply(condition, a, b)
    except ValueError as err:
        raise ValueError(
            f"where: cannot broadcast condition {condition.shape}, a {np.shape(a)} "
            f"and b {np.shape(b)}"
        ) from err


def astype(x: Tensor, dtype: DTypeLike) -> Tensor:
    """x converted to ``dtype``; differentiable between float dtypes."""
    dtype = as_dtype(dtype)
    if x.data.dtype == dtype:
        return x
    if dtype.kind != "f":  # integers and booleans carry no gradient
        return Tensor._make(x.data.astype(dtype))
    return AsType.apply(x, dtype)


# --- comparisons: boolean results, outside the graph ------------------------------------------


def _compare(
    ufunc: np.ufunc, name: str
) -> Callable[[Tensor | ArrayLike, Tensor | ArrayLike], Tensor]:
    def compare(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
        a, b = promote(a, b) if isinstance(a, Tensor) or isinstance(b, Tensor) else (a, b)
        a = a.data if isinstance(a, Tensor) else a
        b = b.data if isinstance(b, Tensor) else b
        try:
            return Tensor._make(np.asarray(ufunc(a, b)))
        except ValueError:
            raise _broadcast_error(name, a, b) from None

    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{name}``: a boolean tensor, not differentiable."
    return compare


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")
