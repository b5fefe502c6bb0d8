"""gradcheck: passes on correct gradients, and catches (and names) wrong ones."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nabla as nb


def leaf(shape, seed=0, dtype="float64") -> nb.Tensor:
    data = np.random.default_rng(seed).standard_normal(shape)
    return nb.tensor(data, dtype=dtype, requires_grad=True)


class Scaled(nb.Function):
    """y = x^2 with a backward that is off by a factor (2.0 by default): a deliberate bug."""

    factor = 2.0

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x

    @staticmethod
    def backward(ctx, grad):
        return grad * 2 * ctx.x * Scaled.factor


class WrongAt(nb.Function):
    """y = a * b, whose gradient for b is wrong at one index only."""

    index = (1, 2)

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        g_b = grad * ctx.a
        g_b[WrongAt.index] *= 1.5
        return grad * ctx.b, g_b


class TransposedVJP(nb.Function):
    """y = A x with backward A g instead of A^T g: right only when A is symmetric."""

    @staticmethod
    def forward(ctx, a, x):
        ctx.a = a
        return a @ x

    @staticmethod
    def backward(ctx, grad):
        return None, ctx.a @ grad


class Exact(nb.Function):
    """y = sin(x) with the correct derivative: the control for the buggy Functions."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * np.cos(ctx.x)


def parse(message: str):
    """The input number, index and both values from a GradcheckError message."""
    found = re.search(
        r"input (\d+) .*at index (\(.*?\)).*backward gives (\S+), "
        r"finite differences give (\S+) ",
        message,
    )
    assert found, message
    i, index, analytic, numeric = found.groups()
    return int(i), eval(index), float(analytic), float(numeric)


# --- passing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (lambda x: x.sin() * x, [(3, 4)]),
        (lambda x, y: x @ y, [(2, 3), (3, 4)]),
        (lambda x, y: (x * y).tanh().sum(axis=0), [(3, 4), (4,)]),
        (lambda x: x.softmax(axis=-1), [(2, 5)]),
        (lambda x: x.exp().mean(), [()]),
        (lambda x, y: x / (y * y + 1.0), [(2, 3), (1, 3)]),
        (lambda x: (x.sigmoid(), x.softplus()), [(4,)]),
    ],
    ids=["sin*x", "matmul", "broadcast-tanh", "softmax", "scalar", "div", "two-outputs"],
)
def test_passes_for_correct_ops(fn, shapes):
    inputs = [leaf(s, seed=i) for i, s in enumerate(shapes)]
    assert nb.gradcheck(fn, inputs) is True


def test_passes_for_correct_custom_function():
    assert nb.gradcheck(Exact.apply, leaf((2, 3))) is True


def test_accepts_a_single_tensor_or_a_list():
    x = leaf((3,))
    assert nb.gradcheck(lambda t: t * t, x)
    assert nb.gradcheck(lambda t: t * t, [x])
    assert nb.gradcheck(lambda t: t * t, (x,))


def test_constants_and_tensors_not_requiring_grad_are_passed_through():
    x = leaf((2, 3))
    w = nb.tensor(np.arange(6.0).reshape(2, 3))
    seen = []

    def fn(a, b, c):
        seen.append((type(b), b.requires_grad, c))
        return a * b + c

    assert nb.gradcheck(fn, [x, w, 2.5])
    assert all(s == (nb.Tensor, False, 2.5) for s in seen)


def test_unused_input_passes_with_zero_gradient():
    assert nb.gradcheck(lambda x, y: x.exp(), [leaf((2,)), leaf((3,), seed=1)])


# --- failing ------------------------------------------------------------------------------------


def test_fails_for_a_backward_off_by_a_factor():
    x = leaf((2, 3))
    with pytest.raises(nb.GradcheckError) as info:
        nb.gradcheck(Scaled.apply, x)
    i, index, analytic, numeric = parse(str(info.value))
    assert i == 0 and len(index) == 2
    assert analytic == pytest.approx(2.0 * numeric, rel=1e-6)


def test_fails_for_a_one_percent_error(monkeypatch):
    monkeypatch.setattr(Scaled, "factor", 1.01)
    with pytest.raises(nb.GradcheckError):
        nb.gradcheck(Scaled.apply, leaf((4,)))


def test_error_names_the_input_and_the_index():
    a, b = leaf((2, 3)), leaf((2, 3), seed=1)
    with pytest.raises(nb.GradcheckError) as info:
        nb.gradcheck(WrongAt.apply, [a, b])
    message = str(info.value)
    assert "input 1" in message and "(2, 3)" in message
    i, index, analytic, numeric = parse(message)
    assert (i, index) == (1, WrongAt.index)
    # the values reported are the real ones: dL/db = v * a with gradcheck's cotangent v
    assert analytic == pytest.approx(1.5 * numeric, rel=1e-6)


def test_catches_a_transposed_vector_jacobian_product():
    a = np.random.default_rng(3).standard_normal((3, 3))
    x = leaf((3,))
    with pytest.raises(nb.GradcheckError):
        nb.gradcheck(lambda t: TransposedVJP.apply(a, t), x)
    symmetric = a + a.T  # here A^T g = A g, so the same code is right
    assert nb.gradcheck(lambda t: TransposedVJP.apply(symmetric, t), x)


def test_catches_a_wrong_gradient_in_the_second_output_only():
    x = leaf((3,))
    with pytest.raises(nb.GradcheckError):
        nb.gradcheck(lambda t: (t.sin(), Scaled.apply(t)), x)


def test_raise_exception_false_returns_false():
    assert nb.gradcheck(Scaled.apply, leaf((3,)), raise_exception=False) is False
    assert nb.gradcheck(Exact.apply, leaf((3,)), raise_exception=False) is True


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(nb.GradcheckError, AssertionError)


def test_tolerances_are_honoured(monkeypatch):
    monkeypatch.setattr(Scaled, "factor", 1.01)
    x = leaf((3,))
    assert nb.gradcheck(Scaled.apply, x, rtol=0.05)
    with pytest.raises(nb.GradcheckError, match=r"rtol 0\.001"):
        nb.gradcheck(Scaled.apply, x, rtol=1e-3)


# --- float64, and the caller's tensors left alone -----------------------------------------------


def test_float32_inputs_are_checked_in_float64():
    x = leaf((3, 4), dtype="float32")
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return (t * t).sin()

    # eps = 1e-6 is below float32 resolution near 1: in float32 this check could not pass.
    assert nb.gradcheck(fn, x, eps=1e-6, atol=1e-7, rtol=1e-6)
    assert seen and all(d == np.float64 for d in seen)


def test_does_not_modify_the_callers_inputs():
    x = leaf((2, 3), dtype="float32")
    y = leaf((2, 3), seed=1)
    (x * 1.0).sum().backward()
    x_grad = x.grad
    x_grad_values = x_grad.copy()
    x_data, y_data = x.data.copy(), y.data.copy()
    x_array = x.data

    nb.gradcheck(lambda a, b: (a * b).exp(), [x, y])
    assert nb.gradcheck(lambda a, b: (a * b).exp(), [x, y], raise_exception=False)
    with pytest.raises(nb.GradcheckError):
        nb.gradcheck(lambda a, b: Scaled.apply(a) * b, [x, y])

    assert x.data is x_array and x.dtype == np.float32
    np.testing.assert_array_equal(x.data, x_data)
    np.testing.assert_array_equal(y.data, y_data)
    assert x.grad is x_grad
    np.testing.assert_array_equal(x.grad, x_grad_values)
    assert y.grad is None
    assert x.requires_grad and y.requires_grad and x.is_leaf


def test_fn_sees_inputs_of_their_own_shapes():
    shapes = [(), (1,), (2, 3), (1, 1, 2)]
    seen = []

    def fn(*ts):
        seen.append(tuple(t.shape for t in ts))
        return tuple(t.exp() for t in ts)

    assert nb.gradcheck(fn, [leaf(s, seed=i) for i, s in enumerate(shapes)])
    assert seen and all(s == tuple(shapes) for s in seen)


def test_zero_dimensional_input():
    assert nb.gradcheck(lambda t: t.exp() * t, leaf(()))
    with pytest.raises(nb.GradcheckError, match=r"shape \(\)\) at index \(\)"):
        nb.gradcheck(Scaled.apply, leaf(()))


# --- misuse ---------------------------------------------------------------------------------------


def test_no_input_requiring_grad():
    with pytest.raises(ValueError, match="requires grad"):
        nb.gradcheck(lambda t: t * 2.0, nb.tensor([1.0, 2.0]))


def test_fn_returning_a_non_tensor():
    with pytest.raises(TypeError, match="Tensor"):
        nb.gradcheck(lambda t: t.data * 2.0, leaf((2,)))


def test_output_not_depending_on_inputs():
    with pytest.raises(ValueError, match="depends"):
        nb.gradcheck(lambda t: nb.tensor([1.0]) * 2.0, leaf((2,)))
