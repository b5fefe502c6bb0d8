"""Lowerings of the elementwise arithmetic (+, -, *, unary -, ** a constant) and of indexing by
integers: what small problems (the lab's 2-D test functions) are made of, where eager mode's
bookkeeping is most of a step.

Each applies only where no broadcasting happens (operands of one shape, or Python numbers), so
that a gradient needs no ``sum_to``; it computes exactly eager's expression, in eager's order
(``g * (b * a ** (b - 1))`` for a power), into buffers. Elsewhere the plan runs the operation's
own code.
"""

from __future__ import annotations

import numbers

from ..ops.elementwise import Add, Mul, Neg, Pow, Sub
from ..ops.shape import GetItem
from .recorder import OpEvent, Value
from .scalars import lower_scalar, scatter

UFUNCS = {Add: "np.add", Sub: "np.subtract", Mul: "np.multiply"}


class Arithmetic:
    """a + b, a - b, a * b, -a and a ** c (c a number >= 1): a buffer for the result, one for
    each gradient that is not g itself."""

    def __init__(self, b, event: OpEvent):
        self.b, self.event = b, event

    def operand(self, x) -> str:
        return self.b.expr[x] if isinstance(x, Value) else repr(x)

    def forward(self) -> str:
        b, e = self.b, self.event
        args = [self.operand(x) for x in e.inputs]
        y = b.buffer(e.out.shape, e.out.dtype)
        if e.cls is Neg:
            line = f"np.negative({args[0]}, out={y})"
        elif e.cls is Pow:
            line = f"np.power({args[0]}, {args[1]}, out={y})"
        else:
            line = f"{UFUNCS[e.cls]}({args[0]}, {args[1]}, out={y})"
        reads = b.reads_of(*(a for a, x in zip(args, e.inputs) if isinstance(x, Value)))
        b.emit("forward", e.cls.__name__, [line], reads, {y})
        return y

    def backward(self, g: str) -> None:
        b, e = self.b, self.event
        values = e.inputs
        need = e.needs
        if e.cls is Add:  # d(a + b) = (g, g): eager hands g itself to both
            for x, n in zip(values, need):
                if n:
                    b.contribute(x, g)
            return
        if e.cls is Sub:
            if need[0]:
                b.contribute(values[0], g)
            if need[1]:
                self._product(values[1], f"np.negative({g}, out=%OUT%)", g)
            return
        if e.cls is Neg:
            self._product(values[0], f"np.negative({g}, out=%OUT%)", g)
            return
        if e.cls is Mul:  # (g b, g a)
            a, c = (self.operand(x) for x in values)
            if need[0]:
                self._product(values[0], f"np.multiply({g}, {c}, out=%OUT%)", g, c)
            if need[1]:
                self._product(values[1], f"np.multiply({g}, {a}, out=%OUT%)", g, a)
            return
        # Pow with a constant exponent c: g * (c * a ** (c - 1)), as eager computes it
        a, c = self.operand(values[0]), values[1]
        lines = [f"np.power({a}, {c - 1!r}, out=%OUT%)", f"np.multiply({c!r}, %OUT%, out=%OUT%)"]
        lines.append(f"np.multiply({g}, %OUT%, out=%OUT%)")
        self._product(values[0], lines, g, a)

    def _product(self, value: Value, lines, *reads) -> None:
        b = self.b
        out = b.buffer(value.shape, value.dtype)
        lines = [
            line.replace("%OUT%", out) for line in ([lines] if isinstance(lines, str) else lines)
        ]
        label = f"{self.event.cls.__name__} backward"
        b.emit("backward", label, lines, b.reads_of(*(r for r in reads if r)), {out})
        b.contribute(value, out)


def lower_arithmetic(b, event: OpEvent):
    scalar = lower_scalar(b, event)
    if scalar is not None:
        return scalar
    out = event.out
    if out.dtype.kind != "f":
        return None
    operands = event.inputs
    if event.cls is Pow:
        c = operands[1]
        if not isinstance(c, numbers.Real) or isinstance(c, bool) or c < 1 or event.needs[1]:
            return None  # a tensor exponent, or a^(c-1) that may divide by zero: eager's code
        operands = operands[:1]
    for x in operands:
        if isinstance(x, Value):
            if x.shape != out.shape or x.dtype != out.dtype:
                return None  # broadcasting or promotion: the engine would reshape the gradient
        elif not isinstance(x, numbers.Real) or isinstance(x, bool):
            return None
    return Arithmetic(b, event)


class Index:
    """x[i] for integers i (one element): forward a copy into a 0-d buffer; backward the
    gradient scattered into zeros of x's shape, as eager's GetItem."""

    def __init__(self, b, event: OpEvent):
        self.b, self.event = b, event

    def forward(self) -> str:
        b, e = self.b, self.event
        x = b.expr[e.inputs[0]]
        y = b.buffer(e.out.shape, e.out.dtype)
        b.emit("forward", "GetItem", [f"{y}[()] = {x}[{e.inputs[1]!r}]"], b.reads_of(x), {y})
        return y

    def backward(self, g: str) -> None:
        scatter(self.b, self.event, g)


def lower_index(b, event: OpEvent):
    scalar = lower_scalar(b, event)
    if scalar is not None:
        return scalar
    x, index = event.inputs[:2]
    if not isinstance(x, Value) or x.dtype.kind != "f" or event.out.shape != ():
        return None
    indices = index if isinstance(index, tuple) else (index,)
    if len(indices) != len(x.shape) or not all(type(i) is int for i in indices):
        return None
    return Index(b, event)


LOWERINGS = {Add: lower_arithmetic, Sub: lower_arithmetic, Mul: lower_arithmetic,
             Neg: lower_arithmetic, Pow: lower_arithmetic, GetItem: lower_index}  # fmt: skip
