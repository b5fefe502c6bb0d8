"""Operand promotion (``nabla.ops.promote``), held to PyTorch's rules: two tensors, a tensor and a
weak constant, booleans, refusals, and ``floating``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.ops.promote import floating, promote

BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]


# --- operand promotion (PyTorch's rules) ---------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, dtype",
    [
        ("bool", "int64", np.int64),
        ("float32", "float64", np.float64),
        ("float64", "float32", np.float64),
        ("float32", "int64", np.float32),
        ("int64", "float32", np.float32),
        ("int64", "float64", np.float64),
        ("bool", "float32", np.float32),
    ],
)
def test_two_tensors_promote_like_torch(a, b, dtype):
    x, y = nb.ones(2, dtype=a), nb.ones(2, dtype=b)
    tx, ty = torch.ones(2, dtype=getattr(torch, a)), torch.ones(2, dtype=getattr(torch, b))
    assert torch.result_type(tx, ty) == getattr(torch, np.dtype(dtype).name)
    for out in ((x + y), (y + x)):
        assert out.dtype == dtype
    p, q = promote(x, y)
    assert p.dtype == dtype and q.dtype == dtype


@pytest.mark.parametrize(
    "tensor_dtype, constant, dtype",
    [
        ("float32", 2.0, np.float32),
        ("float32", np.float64(2.0), np.float32),
        ("float32", np.array([2.0, 2.0]), np.float32),
        ("float32", 2, np.float32),
        ("float32", np.int64(2), np.float32),
        ("float64", np.array([2, 2]), np.float64),
        ("float32", np.array([2, 2]), np.float32),
        ("float64", 2.0, np.float64),
        ("float64", np.float64(2.0), np.float64),
        ("float64", np.float32(2.0), np.float64),
        ("float64", np.array([2.0, 2.0], dtype=np.float32), np.float64),
        ("int64", 2, np.int64),
        ("int64", np.int64(2), np.int64),
        ("int64", 2.0, np.float32),
        ("int64", np.float64(2.0), np.float32),
        ("int64", np.float32(2.0), np.float32),
        ("int64", np.array([2.0, 2.0]), np.float32),
        ("int64", np.array([2, 2]), np.int64),
    ],
)
def test_a_constant_is_a_weak_operand(tensor_dtype, constant, dtype):
    x = nb.tensor([3, 4], dtype=tensor_dtype)
    for out in (x * constant, constant * x, x - constant, constant - x):
        assert out.dtype == dtype
    np.testing.assert_array_equal((x - constant).data, [1, 2])
    np.testing.assert_array_equal((constant - x).data, [-1, -2])


def test_a_bool_tensor_meets_numbers_like_torch():
    flags = nb.tensor([True, False])
    assert (
        (flags + 2).dtype == np.int64
        and (nb.tensor([3, 4]) * True).dtype == np.int64
        and (flags * 2.5).dtype == np.float32
    )
    np.testing.assert_array_equal((flags * 2.5).data, [2.5, 0.0])


def test_promote_refuses_two_constants_and_non_numbers():
    with pytest.raises(TypeError, match=r"^a binary operation needs at least one Tensor$"):
        promote(1.0, np.ones(2))
    with pytest.raises(TypeError, match="cannot combine a tensor with str"):
        nb.ones(2) + "a"
    with pytest.raises(TypeError, match="cannot combine a tensor with list"):
        nb.ones(2) * ["a"]


def test_floating_keeps_floats_converts_integers_to_float32_and_wraps_arrays():
    x = nb.tensor([1.0], dtype="float64")
    assert floating(x) is x
    assert floating(nb.tensor([1, 2])).dtype == np.float32
    wrapped = floating(np.array([1.0, 2.0]))
    assert isinstance(wrapped, nb.Tensor)
    np.testing.assert_array_equal(wrapped.data, [1.0, 2.0])
