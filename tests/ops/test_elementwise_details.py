"""Details of the elementwise operations and Tensor operators that the op table in test_ops.py
does not reach: error messages (they name the operation and both shapes), gradients when only one
operand requires grad, conventions at ties and bounds, and dtype rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.ops import elementwise as ew

BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]


# --- error messages and names of the public binary functions ----------------------------------


@pytest.mark.parametrize("name", BINARY + COMPARE)
def test_broadcast_error_names_the_operation_and_both_shapes(name):
    """A shape mismatch is reported by the op the user called, with both shapes."""
    a, b = nb.ones((2, 3)), nb.ones((4,))
    with pytest.raises(ValueError, match=rf"^{name}: cannot broadcast shapes \(2, 3\) and \(4,\)"):
        getattr(nb, name)(a, b)


@pytest.mark.parametrize("name", BINARY + COMPARE)
def test_binary_functions_carry_their_name_and_a_docstring(name):
    fn = getattr(nb, name)
    assert fn.__name__ == name
    assert fn.__doc__ and len(fn.__doc__) > 10
    if name in COMPARE:
        assert f"``{name}``" in fn.__doc__


def test_add_doc_and_pow_doc_are_their_own():
    assert "broadcasting" in nb.add.__doc__
    assert "exponent" in nb.pow.__doc__
    assert "true division" in nb.div.__doc__
    assert "half the gradient" in nb.maximum.__doc__ and "half" in nb.minimum.__doc__


def test_binary_op_reraises_value_errors_that_are_not_about_broadcasting():
    class Refuse(nb.Function):
        @staticmethod
        def forward(ctx, a, b):
            raise ValueError("something else")

    op = ew._binary(Refuse, "refuse", "doc")
    with pytest.raises(ValueError, match=r"^something else$"):
        op(nb.ones(2), nb.ones(2))


def test_clip_without_bounds_and_where_with_a_non_boolean_condition_are_refused():
    with pytest.raises(ValueError, match=r"^clip: at least one of min and max must be given$"):
        nb.ones(2).clip()
    with pytest.raises(TypeError, match="where: condition must be boolean, got dtype int64"):
        nb.where(np.array([1, 0]), nb.ones(2), nb.zeros(2))


def test_where_broadcast_error_names_all_three_shapes():
    with pytest.raises(ValueError, match=r"where: .*condition \(3,\), a \(2,\) and b \(4,\)"):
        nb.where(np.ones(3, dtype=bool), nb.ones(2), nb.ones(4))


# --- gradients with one operand constant, at ties and at bounds (PyTorch as oracle) --------------


def _grads(nb_fn, torch_fn, a, b, need_a, need_b):
    x = nb.tensor(a, dtype="float64", requires_grad=need_a)
    y = nb.tensor(b, dtype="float64", requires_grad=need_b)
    nb_fn(x, y).sum().backward()
    tx = torch.tensor(a, requires_grad=need_a)
    ty = torch.tensor(b, requires_grad=need_b)
    torch_fn(tx, ty).sum().backward()
    for mine, theirs in ((x, tx), (y, ty)):
        if theirs.requires_grad:
            np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-12)
        else:
            assert mine.grad is None


@pytest.mark.parametrize("need", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize(
    "ops",
    [
        (nb.sub, torch.sub),
        (nb.mul, torch.mul),
        (nb.div, torch.div),
        (nb.pow, torch.pow),
        (nb.maximum, torch.maximum),
        (nb.minimum, torch.minimum),
    ],
)
def test_gradients_when_only_one_operand_requires_grad(ops, need):
    a = np.array([0.5, 2.0, 1.5, 3.0])
    b = np.array([1.5, 0.7, 1.5, -1.25])  # a tie at index 2
    _grads(*ops, a, b, *need)


def test_pow_gradients_at_zero_base_and_zero_exponent_follow_torch():
    """0^0 = 1: d/da is taken as 0 (not 0 * 0^-1 = NaN), d/db is 0 where a = 0 and b >= 0."""
    a = np.array([0.0, 0.0, 0.0, 2.0, 0.0])
    b = np.array([0.0, 2.0, 0.5, 0.0, -1.0])
    _grads(nb.pow, torch.pow, a[:4], b[:4], True, True)
    x = nb.tensor(a, dtype="float64", requires_grad=True)
    y = nb.tensor(b, dtype="float64", requires_grad=True)
    with np.errstate(divide="ignore"):  # 0^-1 = inf, as in torch
        (x**y).sum().backward()
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (tx**ty).sum().backward()
    np.testing.assert_array_equal(y.grad, ty.grad.numpy())  # -inf at a = 0, b = -1
    assert y.grad[4] == -np.inf and y.grad[0] == 0.0 and x.grad[0] == 0.0


def test_minimum_splits_ties_evenly_like_torch():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    _grads(nb.minimum, torch.minimum, a, b, True, True)


@pytest.mark.parametrize(
    "bounds", [{"min": 0.5}, {"max": 0.5}, {"min": -1.0, "max": 0.5}, {"min": 0.5, "max": 3.0}]
)
def test_clip_gradient_passes_inside_bounds_included_with_one_or_two_bounds(bounds):
    data = np.array([-1.0, 0.0, 0.5, 1.0, 3.0, 4.0])
    x = nb.tensor(data, dtype="float64", requires_grad=True)
    x.clip(**bounds).sum().backward()
    t = torch.tensor(data, requires_grad=True)
    t.clamp(**bounds).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())


def test_where_gradient_goes_to_the_chosen_operand():
    condition = np.array([True, False, True])
    for need_a, need_b in [(True, True), (True, False), (False, True)]:
        a = nb.tensor([1.0, 2.0, 3.0], requires_grad=need_a)
        b = nb.tensor([4.0, 5.0, 6.0], requires_grad=need_b)
        nb.where(condition, a, b).backward(nb.tensor([10.0, 20.0, 30.0]))
        assert (a.grad is None) != need_a and (b.grad is None) != need_b
        if need_a:
            np.testing.assert_array_equal(a.grad, [10.0, 0.0, 30.0])
        if need_b:
            np.testing.assert_array_equal(b.grad, [0.0, 20.0, 0.0])


def test_where_with_one_constant_operand_keeps_the_tensor_in_the_graph():
    a = nb.tensor([1.0, 2.0], requires_grad=True)
    nb.where(np.array([True, False]), a, 0.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 0.0])
    b = nb.tensor([1.0, 2.0], requires_grad=True)
    nb.where(np.array([True, False]), 5.0, b).sum().backward()
    np.testing.assert_array_equal(b.grad, [0.0, 1.0])


def test_where_accepts_two_constants_and_a_tensor_condition():
    out = nb.where(nb.tensor([True, False]), 1.0, np.array([5.0, 6.0]))
    np.testing.assert_array_equal(nb.where([False, True], nb.ones(2), 0.0).data, [0.0, 1.0])
    np.testing.assert_array_equal(out.data, [1.0, 6.0])
    assert isinstance(out, nb.Tensor)


# --- dtypes: clip bounds, astype, true division, comparisons -------------------------------------


def test_clip_dtypes_follow_torch_clamp():
    ints = nb.tensor([-2, 0, 3])
    assert ints.clip(0, 2).dtype == np.int64
    np.testing.assert_array_equal(ints.clip(0, 2).data, [0, 0, 2])
    for bounds in ({"min": 0.5}, {"max": 0.5}, {"min": 0, "max": 0.5}):
        out = ints.clip(**bounds)
        expected = torch.tensor([-2, 0, 3]).clamp(**bounds)
        assert out.dtype == np.float32 and expected.dtype == torch.float32
        np.testing.assert_array_equal(out.data, expected.numpy())
    # a float64 tensor bound is a weak constant: a float32 tensor stays float32
    x = nb.tensor([0.25, 2.0], dtype="float32")
    out = x.clip(nb.tensor(0.5, dtype="float64"), nb.tensor(1.5, dtype="float64"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.data, [0.5, 1.5])
    assert ints.clip(nb.tensor(0.5, dtype="float64")).dtype == np.float32
    out = ints.clip(nb.tensor(0), nb.tensor(2))
    assert out.dtype == np.int64 and out.data.tolist() == [0, 0, 2]


def test_astype_returns_the_tensor_itself_for_its_own_dtype_and_detaches_integers():
    x = nb.tensor([1.5, -2.5], requires_grad=True)
    assert x.astype("float32") is x
    ints = x.astype("int64")
    assert ints.dtype == np.int64 and not ints.requires_grad
    y = x.astype("float64")
    assert y.dtype == np.float64 and y.requires_grad
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    assert x.grad.dtype == np.float32


def test_true_division_of_integers_gives_float32_like_torch():
    a, b = nb.tensor([1, 2, 3]), nb.tensor([2, 4, 4])
    for out in (a / b, a / np.array([2, 4, 4]), np.array([1, 2, 3]) / b, a / 2, 3 / b):
        assert out.dtype == np.float32
    np.testing.assert_array_equal((a / b).data, [0.5, 0.5, 0.75])
    x = nb.tensor([1.0, 2.0], dtype="float64")
    assert (x / np.array([2, 4])).dtype == np.float64
    np.testing.assert_array_equal((x / np.array([0.1, 0.3])).data, [1.0 / 0.1, 2.0 / 0.3])
    np.testing.assert_array_equal((x + np.array([0.1, 0.3])).data, [1.0 + 0.1, 2.0 + 0.3])


def test_comparisons_return_boolean_tensors_outside_the_graph():
    x = nb.tensor([1, 2, 3])
    y = nb.tensor([1.5, 2.0, 2.5], requires_grad=True)
    expected = {"eq": [0, 1, 0], "ne": [1, 0, 1], "lt": [1, 0, 0], "le": [1, 1, 0]}
    expected |= {"gt": [0, 0, 1], "ge": [0, 1, 1]}
    for name, values in expected.items():
        out = getattr(nb, name)(x, y)
        assert out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.data, np.array(values, dtype=bool))
    assert (nb.eq(np.array([1, 2]), np.array([1, 3]))).data.tolist() == [True, False]
    assert (x == 2).data.tolist() == [False, True, False]


# --- Tensor operators and conversion methods -----------------------------------------------------


def test_reflected_operators_put_the_constant_first():
    x = nb.tensor([1.0, 2.0, 4.0])
    np.testing.assert_array_equal((1 - x).data, [0.0, -1.0, -3.0])
    np.testing.assert_array_equal((8 / x).data, [8.0, 4.0, 2.0])
    np.testing.assert_array_equal((2**x).data, [2.0, 4.0, 16.0])
    np.testing.assert_array_equal((np.ones((2, 3)) @ x).data, [7.0, 7.0])
    assert nb.Tensor.__rsub__.__name__ == "rsub" and nb.Tensor.__rtruediv__.__name__ == "rdiv"
    assert +x is x


def test_conversion_methods_give_torchs_dtypes():
    x = nb.tensor([1.7, -2.2])
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    assert x.long().dtype == np.int64 and x.long().data.tolist() == [1, -2]
    assert x.to("float64").dtype == np.float64
    np.testing.assert_array_equal(x.T.data, x.data)


def test_any_and_all_reduce_like_numpy_and_take_torch_names():
    data = np.array([[0, 1, 0], [0, 0, 0]])
    x = nb.tensor(data)
    assert x.any().data.item() is True and x.all().data.item() is False
    np.testing.assert_array_equal(x.any(axis=1).data, [True, False])
    np.testing.assert_array_equal(x.any(dim=0, keepdim=True).data, data.any(0, keepdims=True))
    np.testing.assert_array_equal(nb.tensor(data + 1).all(axis=0).data, [True, True, True])
    assert x.all(1, True).shape == (2, 1) and x.any(1, True).shape == (2, 1)
