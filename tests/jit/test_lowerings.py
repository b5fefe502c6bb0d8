"""The elementwise and indexing lowerings against eager, bit for bit, for every gradient they
write; and where they do not apply (broadcasting, a tensor exponent), the operation's own code."""

from __future__ import annotations

import numpy as np
import pytest
from jit_twins import same_bits

import nabla as nb
from nabla import optim


def training_step(f, a, b, opt):
    def step():
        loss = f(a, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def run_both(f, shape, dtype, steps=5):
    """Train two copies of parameters (a, b) on ``f(a, b)`` with SGD, eagerly and compiled."""
    results = []
    for compiled in (False, True):
        rng = np.random.default_rng(0)
        a = nb.tensor(rng.uniform(0.5, 2.0, shape), dtype=dtype, requires_grad=True)
        b = nb.tensor(rng.uniform(0.5, 2.0, shape), dtype=dtype, requires_grad=True)
        opt = optim.SGD([a, b], lr=0.01, momentum=0.5)
        step = training_step(f, a, b, opt)
        fn = nb.compile(step) if compiled else step
        losses = [fn() for _ in range(steps)]
        results.append((losses, a, b, fn))
    (la, a1, b1, _), (lb, a2, b2, fn) = results
    assert all(same_bits(x, y) for x, y in zip(la, lb))
    assert same_bits(a1, a2) and same_bits(b1, b2)
    assert same_bits(a1.grad, a2.grad) and same_bits(b1.grad, b2.grad)
    return str(fn.plan)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_arithmetic_is_lowered_and_bit_identical(shape, dtype):
    def f(a, b):
        return ((a - b) * a + (-b) ** 3 + a**1.5 * 2.0 - 1.5 * b + (a * b) ** 2).sum()

    plan = run_both(f, shape, dtype)
    forward = plan.split("# --- call")[0]
    for op in ("Sub", "Mul", "Neg", "Pow", "Add"):
        assert f"] {op}\n" in forward or f"] {op} (floats)\n" in forward, op
        assert f"] {op}  (the operation's own code" not in forward, op
    # float64 numbers run as Python floats, but not the last sum's input: Sum wants an array
    assert ("(floats)" in forward) == (shape == () and dtype == "float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_indexing_one_element_is_lowered_and_bit_identical(dtype):
    def f(a, b):
        return a[0, 1] * b[1, 2] + a[1, 0] ** 2 + a[0, 1]  # a[0, 1] read twice

    plan = run_both(f, (2, 3), dtype)
    label = "] GetItem (floats)\n" if dtype == "float64" else "] GetItem\n"
    assert label in plan and "GetItem  (the operation's own code" not in plan


def test_broadcasting_and_tensor_exponents_run_the_operations_own_code():
    def f(a, b):
        return (a * b[0] + a**b).sum()  # b[0] broadcasts over a; b is a tensor exponent

    plan = run_both(f, (3,), "float64")
    head = plan.split("def replay")[0]
    assert "runs its own code (allocates): " in head
    assert "Mul" in head.split("allocates): ")[1] and "Pow" in head.split("allocates): ")[1]


def test_rosenbrock_is_allocation_free_apart_from_python_objects():
    """Every operation of the 2-D Rosenbrock function is lowered."""
    from nabla.lab.functions import FUNCTIONS

    point = nb.tensor([-1.2, 1.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([point], lr=1e-3)

    def step():
        loss = FUNCTIONS["rosenbrock"](point)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    compiled = nb.compile(step)
    compiled()
    text = str(compiled.plan)
    assert "\nallocation-free\n" in text
    forward = text.split("# --- forward")[1].split("# --- call")[0]
    assert forward.count("(floats)") == 9  # two indexings, seven arithmetic operations
    assert "    s8 = s3 + s7\n" in forward  # (1 - x)^2 + 100 (y - x^2)^2, in plain floats


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_floats_meet_arrays_and_zero_d_parameters_as_eager(dtype):
    """Float values feeding an operation that wants arrays (exp), gradients coming back from it
    as arrays, a 0-d parameter taking float gradients, a value read three times."""

    def f(a, w):
        u = a[0] * w  # floats: read by +, -, * below
        return (w * w + u).exp() + (w - a[1]) ** 2 + u * 3.0 - (-u)

    runs = []
    for compiled in (False, True):
        a = nb.tensor([0.3, -0.7, 1.1], dtype=dtype, requires_grad=True)
        w = nb.tensor(0.5, dtype=dtype, requires_grad=True)
        opt = optim.Adam([a, w], lr=0.05)
        step = training_step(f, a, w, opt)
        fn = nb.compile(step) if compiled else step
        runs.append(([fn() for _ in range(6)], a, w, fn))
    (la, a1, w1, _), (lb, a2, w2, fn) = runs
    assert all(same_bits(x, y) for x, y in zip(la, lb))
    assert same_bits(a1, a2) and same_bits(w1, w2) and same_bits(w1.grad, w2.grad)
    assert fn.replays == 5
    assert ("(floats)" in str(fn.plan)) == (dtype == "float64")
