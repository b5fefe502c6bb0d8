"""Random compositions of smooth operations, checked by finite differences and against PyTorch.

Hypothesis draws a small program: 1-3 float64 inputs of random 2-D shapes and 1-6 steps, each an
elementwise function, a reduction with keepdims, a transpose or reshape, a matmul with an extra
input, a broadcast against a (1, n) extra input, or a binary op with another input (or with the
current value itself, which makes shared subexpressions). The same program runs on nabla and on
torch tensors, so one interpreter serves both checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import nabla as nb

UNARY = ["tanh", "sigmoid", "sin", "softplus", "exp_tanh", "square", "log_softplus"]
BINARY = ["add", "sub", "mul"]
KINDS = ["unary", "unary", "reduce", "transpose", "reshape", "matmul", "row", "binary", "self"]
LIMIT = 1e3  # programs whose values grow past this are skipped: see ``run``


def softplus(t):
    return t.softplus() if isinstance(t, nb.Tensor) else torch.nn.functional.softplus(t)


def unary(name: str, t):
    if name == "tanh":
        return t.tanh()
    if name == "sigmoid":
        return t.sigmoid()
    if name == "sin":
        return t.sin()
    if name == "softplus":
        return softplus(t)
    if name == "exp_tanh":
        return t.tanh().exp()
    if name == "square":
        return t**2
    if name == "log_softplus":
        return (softplus(t) + 0.5).log()
    raise AssertionError(name)


def _binary(op: str, a, b):
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    return a * b


def fit(t, shape: tuple):
    """Bring another input to something that broadcasts against ``shape`` (r, c)."""
    if tuple(t.shape) == shape:
        return t
    if tuple(t.shape) == shape[::-1]:
        return t.T
    if t.shape[1] == shape[1]:
        return t.sum(axis=0, keepdims=True)  # (1, c)
    if t.shape[0] == shape[0]:
        return t.mean(axis=1, keepdims=True)  # (r, 1)
    return t.mean()  # a 0-d scalar broadcasts against anything


@dataclass
class Program:
    shapes: list  # one per input: the base inputs first, then the extras that steps ask for
    n_base: int
    steps: list
    seed: int

    def arrays(self) -> list:
        rng = np.random.default_rng(self.seed)
        return [rng.uniform(-1.5, 1.5, s) for s in self.shapes]

    def __call__(self, *inputs):
        """Run the program on nabla or torch tensors; returns the output."""
        x = inputs[0]
        for step in self.steps:
            kind = step[0]
            if kind == "unary":
                x = unary(step[1], x)
            elif kind == "reduce":
                _, how, axis = step
                x = (
                    x.sum(axis=axis, keepdims=True)
                    if how == "sum"
                    else x.mean(axis=axis, keepdims=True)
                )
            elif kind == "transpose":
                x = x.T
            elif kind == "reshape":
                x = x.reshape(x.shape[1], x.shape[0])
            elif kind == "matmul":
                x = x @ inputs[step[1]]
            elif kind == "row":
                x = _binary(step[2], x, inputs[step[1]])
            elif kind == "binary":
                x = _binary(step[2], x, fit(inputs[step[1]], tuple(x.shape)))
            elif kind == "self":
                x = _binary(step[1], x, x)
        return x


@st.composite
def programs(draw) -> Program:
    n_base = draw(st.integers(1, 3))
    dims = st.integers(1, 3)
    shapes = [(draw(dims), draw(st.integers(1, 4))) for _ in range(n_base)]
    r, c = shapes[0]
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(KINDS))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(UNARY))))
        elif kind == "reduce":
            axis = draw(st.integers(0, 1))
            steps.append(("reduce", draw(st.sampled_from(["sum", "mean"])), axis))
            r, c = (1, c) if axis == 0 else (r, 1)
        elif kind in ("transpose", "reshape"):
            steps.append((kind,))
            r, c = c, r
        elif kind == "matmul":
            k = draw(dims)
            shapes.append((c, k))
            steps.append(("matmul", len(shapes) - 1))
            c = k
        elif kind == "row":
            shapes.append((1, c))
            steps.append(("row", len(shapes) - 1, draw(st.sampled_from(["add", "mul"]))))
        elif kind == "binary":
            steps.append(
                ("binary", draw(st.integers(0, n_base - 1)), draw(st.sampled_from(BINARY)))
            )
        else:
            steps.append(("self", draw(st.sampled_from(BINARY))))
    return Program(shapes, n_base, steps, draw(st.integers(0, 2**32 - 1)))


def bounded(program: Program, arrays: list) -> bool:
    """Whether every intermediate value stays below LIMIT (finite differences need that)."""
    inputs = [nb.tensor(a, dtype="float64") for a in arrays]
    for n in range(1, len(program.steps) + 1):
        partial = Program(program.shapes, program.n_base, program.steps[:n], program.seed)
        if not np.all(np.abs(partial(*inputs).data) < LIMIT):
            return False
    return True


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@SETTINGS
@given(programs())
def test_random_compositions_pass_gradcheck(program):
    arrays = program.arrays()
    # x**2 and sums can compound; past LIMIT the finite differences of small entries drown in
    # the rounding error of large ones, which says nothing about the gradients.
    assume(bounded(program, arrays))
    inputs = [nb.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    assert nb.gradcheck(program, inputs)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(programs())
def test_random_compositions_match_torch(program):
    arrays = program.arrays()
    assume(bounded(program, arrays))
    inputs = [nb.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    t_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = program(*inputs)
    t_out = program(*t_inputs)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)

    v = np.random.default_rng(program.seed).standard_normal(out.shape)
    out.backward(v)
    t_out.backward(torch.tensor(v))
    for x, tx in zip(inputs, t_inputs, strict=True):
        expected = np.zeros(x.shape) if tx.grad is None else tx.grad.numpy()
        actual = np.zeros(x.shape) if x.grad is None else x.grad
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


def test_the_generator_covers_every_kind_of_step():
    # A guard on the strategy itself: the property tests above are only as good as their inputs.
    seen_kinds, seen_unary = set(), set()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(programs())
    def collect(program):
        for step in program.steps:
            seen_kinds.add(step[0])
            if step[0] == "unary":
                seen_unary.add(step[1])

    collect()
    assert seen_kinds == set(KINDS)
    assert seen_unary == set(UNARY)
