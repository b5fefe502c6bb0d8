"""The factories that build the public binary functions, comparisons and reflected operators
(``elementwise._binary``, ``elementwise._compare``, ``methods._reflected``) run at import time.
These tests build fresh functions through them at test time and hold each to NumPy / PyTorch:
the name and docstring given, operand promotion, the values, and the broadcast error message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.ops import elementwise as ew
from nabla.ops import linalg
from nabla.ops.methods import _reflected

SHAPE_ERROR = r"\(trailing dimensions must be equal or 1\)$"


def test_a_fresh_binary_function_carries_its_name_and_doc_and_matches_torch():
    op = ew._binary(ew.Sub, "difference", "The difference a - b.")
    assert op.__name__ == op.__qualname__ == "difference"
    assert op.__doc__ == "The difference a - b."
    a, b = np.array([[1.5, -2.0, 3.0]]), np.array([[0.5], [4.0]])
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (ta - tb).sum().backward()
    xa, xb = (nb.tensor(v, dtype="float64", requires_grad=True) for v in (a, b))
    out = op(xa, xb)
    np.testing.assert_array_equal(out.numpy(), (ta - tb).detach().numpy())
    out.sum().backward()
    np.testing.assert_array_equal(xa.grad, ta.grad.numpy())
    np.testing.assert_array_equal(xb.grad, tb.grad.numpy())


def test_a_fresh_binary_function_keeps_integers_unless_it_is_real_valued():
    a, b = nb.tensor([7, -3, 4]), nb.tensor([2, 2, 8])
    plain = ew._binary(ew.Sub, "sub", "")(a, b)
    assert plain.dtype == np.int64 and plain.tolist() == [5, -5, -4]
    real = ew._binary(ew.Div, "div", "", real=True)
    for x, y in ((a, b), (a, 2), (7, b)):
        expected = torch.true_divide(
            torch.as_tensor(getattr(x, "data", x)), torch.as_tensor(getattr(y, "data", y))
        )
        got = real(x, y)
        assert got.dtype == np.float32 and expected.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("first_constant", [False, True])
def test_a_fresh_binary_function_names_itself_and_both_shapes_when_shapes_clash(first_constant):
    op = ew._binary(ew.Mul, "product", "")
    a = np.ones((2, 3)) if first_constant else nb.ones((2, 3))
    with pytest.raises(
        ValueError, match=r"^product: cannot broadcast shapes \(2, 3\) and \(4,\) " + SHAPE_ERROR
    ):
        op(a, nb.ones(4))


def test_a_fresh_binary_function_passes_other_value_errors_on_unchanged():
    class Refuses(ew.Function):
        @staticmethod
        def forward(ctx, a, b):
            raise ValueError("an unrelated value problem")

    with pytest.raises(ValueError, match=r"^an unrelated value problem$"):
        ew._binary(Refuses, "refuses", "")(nb.ones(2), nb.ones(2))


def test_a_fresh_comparison_carries_its_name_and_doc():
    compare = ew._compare(np.less_equal, "at_most")
    assert compare.__name__ == "at_most"
    assert compare.__doc__ == "Elementwise ``at_most``: a boolean tensor, not differentiable."


@pytest.mark.parametrize(
    "a, b",
    [
        (np.array([1.0, 2.5, -3.0]), np.array([2.0, 2.5, -4.0])),  # two tensors
        (np.array([1, 5, 9]), 5.5),  # tensor and a Python number
        (4, np.array([3, 4, 5])),  # a Python number first
    ],
)
def test_a_fresh_comparison_matches_torch_with_tensors_and_numbers(a, b):
    compare = ew._compare(np.less, "less")
    torch_a = torch.as_tensor(a) if isinstance(a, np.ndarray) else a
    torch_b = torch.as_tensor(b) if isinstance(b, np.ndarray) else b
    expected = (
        torch.lt(torch_a, torch_b) if isinstance(a, np.ndarray) else torch.gt(torch_b, torch_a)
    )
    nb_a = nb.tensor(a) if isinstance(a, np.ndarray) else a
    nb_b = nb.tensor(b) if isinstance(b, np.ndarray) else b
    got = compare(nb_a, nb_b)
    assert isinstance(got, nb.Tensor) and got.dtype == np.bool_ and not got.requires_grad
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_a_fresh_comparison_promotes_a_numpy_scalar_like_a_python_number():
    """torch compares a float32 tensor with a number in float32: 0.1 equals float32(0.1)."""
    equal = ew._compare(np.equal, "eq")
    x = nb.tensor(np.array([0.1, 0.2], dtype=np.float32))
    expected = (torch.tensor([0.1, 0.2], dtype=torch.float32) == 0.1).numpy()
    np.testing.assert_array_equal(equal(x, np.float64(0.1)).numpy(), expected)
    np.testing.assert_array_equal(equal(np.float64(0.1), x).numpy(), expected)
    assert expected.tolist() == [True, False]


def test_a_fresh_comparison_of_two_arrays_needs_no_tensor():
    got = ew._compare(np.greater, "gt")(np.array([1, 4]), np.array([2, 3]))
    assert isinstance(got, nb.Tensor) and got.tolist() == [False, True]


def test_a_fresh_comparison_names_itself_and_both_shapes_when_shapes_clash():
    compare = ew._compare(np.not_equal, "differs")
    with pytest.raises(
        ValueError, match=r"^differs: cannot broadcast shapes \(2, 3\) and \(2,\) " + SHAPE_ERROR
    ):
        compare(nb.ones((2, 3)), np.ones(2))


@pytest.mark.parametrize(
    "op, torch_op", [(ew.sub, torch.sub), (ew.div, torch.div), (ew.pow, torch.pow)]
)
def test_a_fresh_reflected_operator_puts_the_other_operand_first(op, torch_op):
    reflected = _reflected(op)
    assert reflected.__name__ == "r" + op.__name__
    x = np.array([0.5, 2.0, 3.0])
    got = reflected(nb.tensor(x, dtype="float64"), 2.0)
    np.testing.assert_allclose(got.numpy(), torch_op(2.0, torch.tensor(x)).numpy(), rtol=1e-15)


def test_a_fresh_reflected_matmul_multiplies_in_the_other_order():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    got = _reflected(linalg.matmul)(nb.tensor(b, dtype="float64"), a)
    assert _reflected(linalg.matmul).__name__ == "rmatmul"
    np.testing.assert_array_equal(got.numpy(), (torch.tensor(a) @ torch.tensor(b)).numpy())
