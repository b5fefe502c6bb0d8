"""Scalar lowerings: one-element float64 values as Python floats.

A NumPy call on a 0-d array costs about half a microsecond, whatever the arithmetic; a Python
float operation costs a few dozen nanoseconds. Both are IEEE 754 binary64 arithmetic, rounded
the same way, so for +, -, * and negation the results are the same bits. Powers are kept to what
is a product too (NumPy computes x ** 2 as x * x, x ** 1 as x, x ** 0 as 1): eager's
``g * (c * a ** (c - 1))`` for c = 2 is ``g * (2 * a)``. So a 2-D test function, whose step is
a dozen operations on single numbers, runs as plain Python arithmetic.

A value is kept as a float when it is a float64 number made by +, -, *, unary -, ** 1 or ** 2,
or by indexing one element, and every operation that reads it is one of those too (the others
want arrays). Its gradient is a float as well; one sent to an array value goes through a 0-d
buffer.
"""

from __future__ import annotations

import numpy as np

from ..ops.elementwise import Add, Mul, Neg, Pow, Sub
from ..ops.shape import GetItem
from .recorder import OpEvent, Value

SYMBOLS = {Add: "+", Sub: "-", Mul: "*"}
POWERS = (1, 2)  # exponents computed as products, as NumPy computes them


def is_scalar(value) -> bool:
    return isinstance(value, Value) and value.shape == () and value.dtype == np.float64


def readers_take_floats(b, value: Value) -> bool:
    """Whether every operation that reads ``value`` is lowered as arithmetic on numbers of its
    own shape (as floats, or into a 0-d buffer: a NumPy ufunc takes a float operand)."""
    for event in b.recorder.events:
        if isinstance(event, OpEvent) and any(x is value for x in event.inputs):
            if event.cls not in SYMBOLS and event.cls not in (Neg, Pow):
                return False
            operands = event.inputs[:1] if event.cls is Pow else event.inputs
            if event.cls is Pow and (event.inputs[0] is not value or event.needs[1]):
                return False
            if event.cls is Pow and not (
                type(event.inputs[1]) in (int, float) and event.inputs[1] >= 1
            ):
                return False
            if not is_scalar(event.out) or not all(
                is_scalar(x) or type(x) in (int, float) for x in operands
            ):
                return False
    return True


class Scalar:
    """Shared by the scalar lowerings: operands and gradients as float expressions."""

    def __init__(self, b, event: OpEvent):
        self.b, self.event = b, event
        b.scalars.add(event.out)

    def operand(self, x) -> str:
        if not isinstance(x, Value):
            return repr(x)
        expr = self.b.expr[x]
        return expr if x in self.b.scalars else f"{expr}.item()"  # a 0-d array, read as a float

    def send(self, value: Value, expr: str, label: str) -> None:
        """Contribute the float ``expr`` to ``value``'s gradient: as a float to a scalar value or
        a parameter (engine.leaf accepts it), through a 0-d buffer to an array value."""
        b = self.b
        if value in b.scalars or value.kind == "external":
            name = f"d{self.event.index}_{len(b.namespace)}"
            b.namespace[name] = None  # reserve the name
            b.emit("backward", label, [f"{name} = {expr}"])
            b.aliases[name] = set()
            b.contribute(value, name)
            return
        out = b.buffer((), value.dtype)
        b.emit("backward", label, [f"{out}[()] = {expr}"], writes={out})
        b.contribute(value, out)


class ScalarArithmetic(Scalar):
    def forward(self) -> str:
        e = self.event
        name = f"s{e.index}"
        args = [self.operand(x) for x in e.inputs]
        if e.cls is Neg:
            expr = f"-{args[0]}"
        elif e.cls is Pow:
            expr = args[0] if e.inputs[1] == 1 else f"{args[0]} * {args[0]}"
        else:
            expr = f"{args[0]} {SYMBOLS[e.cls]} {args[1]}"
        self.b.emit("forward", f"{e.cls.__name__} (floats)", [f"{name} = {expr}"])
        self.b.aliases[name] = set()
        return name

    def backward(self, g: str) -> None:
        e = self.event
        values, need = e.inputs, e.needs
        label = f"{e.cls.__name__} backward (floats)"
        if e.cls is Add:
            for x, n in zip(values, need):
                if n:
                    self.send(x, g, label)
        elif e.cls is Sub:
            if need[0]:
                self.send(values[0], g, label)
            if need[1]:
                self.send(values[1], f"-{g}", label)
        elif e.cls is Neg:
            self.send(values[0], f"-{g}", label)
        elif e.cls is Mul:  # (g b, g a)
            a, c = (self.operand(x) for x in values)
            if need[0]:
                self.send(values[0], f"{g} * {c}", label)
            if need[1]:
                self.send(values[1], f"{g} * {a}", label)
        else:  # g * (c * a ** (c - 1)); a ** 0 = 1.0 and a ** 1 = a
            c = values[1]
            a = self.operand(values[0])
            self.send(values[0], f"{g} * ({c!r} * {a if c == 2 else '1.0'})", label)


class ScalarIndex(Scalar):
    """x[i, ...] of one float64 element: a float; backward scatters g into zeros of x's shape."""

    def forward(self) -> str:
        e = self.event
        name = f"s{e.index}"
        index = e.inputs[1] if isinstance(e.inputs[1], tuple) else (e.inputs[1],)
        args = ", ".join(map(repr, index))
        array = self.b.expr[e.inputs[0]]
        line = f"{name} = {array}.item({args})"
        self.b.emit("forward", "GetItem (floats)", [line], self.b.reads_of(array))
        self.b.aliases[name] = set()
        return name

    def backward(self, g: str) -> None:
        scatter(self.b, self.event, g)


def scatter(b, event: OpEvent, g: str) -> None:
    """GetItem's backward for one element, as eager's: g into zeros of x's shape (g a float or a
    0-d array)."""
    xv = event.inputs[0]
    out = b.buffer(xv.shape, xv.dtype)
    lines = [f"{out}.fill(0)", f"{out}[{event.inputs[1]!r}] = {g}"]
    b.emit("backward", "GetItem backward", lines, b.reads_of(g), {out})
    b.contribute(xv, out)


def lower_scalar(b, event: OpEvent):
    """The scalar lowering of ``event``, or None where it does not apply."""
    if not is_scalar(event.out) or not readers_take_floats(b, event.out):
        return None
    if event.cls is GetItem:
        x = event.inputs[0]
        return ScalarIndex(b, event) if isinstance(x, Value) and x.dtype == np.float64 else None
    operands = event.inputs
    if event.cls is Pow:
        if event.inputs[1] not in POWERS or type(event.inputs[1]) is bool or event.needs[1]:
            return None
        operands = operands[:1]
    for x in operands:
        if isinstance(x, Value):
            if not is_scalar(x):
                return None
        elif type(x) not in (int, float):
            return None
    return ScalarArithmetic(b, event)
