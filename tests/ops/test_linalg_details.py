"""Details of matmul and linear: gradients for vectors, matrices and batches, error messages, the
fused linear_relu, and gradients written into the optimizer's slots, against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import check, data

import nabla as nb
import nabla.nn.functional as F
from nabla.ops import linalg

# --- matmul and linear ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((3,), (3,)),
        ((3,), (3, 4)),
        ((2, 3), (3,)),
        ((2, 3), (3, 4)),
        ((5, 2, 3), (3,)),
        ((3,), (5, 3, 4)),
        ((5, 2, 3), (1, 3, 4)),
        ((2, 3), (5, 3, 4)),
    ],
)
def test_matmul_gradients_match_torch_for_vectors_matrices_and_batches(shape_a, shape_b):
    a, b = data(shape_a, 1), data(shape_b, 2)
    check(nb.matmul, torch.matmul, a, b)
    for need_a in (True, False):
        x, y = nb.tensor(a, dtype="float64", requires_grad=need_a), nb.tensor(b, dtype="float64")
        y.requires_grad = not need_a
        (x @ y).sum().backward()
        assert (x.grad is None) != need_a and (y.grad is None) == need_a


def test_matmul_errors_name_both_shapes():
    with pytest.raises(
        ValueError, match=r"matmul: operands must be at least 1-D, got shapes \(\) and \(3,\)"
    ):
        nb.matmul(nb.tensor(1.0), nb.ones(3))
    with pytest.raises(ValueError, match=r"got shapes \(3,\) and \(\)"):
        nb.matmul(nb.ones(3), nb.tensor(1.0))
    with pytest.raises(
        ValueError,
        match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not align \(inner dimensions 3 != 4\)",
    ):
        nb.matmul(nb.ones((2, 3)), nb.ones((4, 5)))
    with pytest.raises(ValueError, match=r"inner dimensions 3 != 4"):
        nb.matmul(nb.ones((2, 3)), nb.ones(4))
    with pytest.raises(
        ValueError,
        match=r"matmul: batch dimensions of \(2, 2, 3\) and \(3, 3, 4\) do not broadcast",
    ):
        nb.matmul(nb.ones((2, 2, 3)), nb.ones((3, 3, 4)))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4, 3), (2, 4, 3), (3,)])
def test_linear_and_linear_relu_match_torch(x_shape, bias):
    x, w, b = data(x_shape, 1), data((5, 3), 2), data((5,), 3)
    if bias:
        check(F.linear, TF.linear, x, w, b)
        check(linalg.linear_relu, lambda *t: TF.linear(*t).relu(), x, w, b)
    else:
        check(F.linear, TF.linear, x, w)
        check(linalg.linear_relu, lambda *t: TF.linear(*t).relu(), x, w)


def test_linear_relu_is_relu_of_linear_bit_for_bit_and_casts_the_input():
    x = nb.tensor(data((4, 3), 1), dtype="float64")
    w, b = nb.tensor(data((5, 3), 2)), nb.tensor(data((5,), 3))
    fused = linalg.linear_relu(x, w, b)
    assert fused.dtype == np.float32
    np.testing.assert_array_equal(fused.data, F.linear(x, w, b).relu().data)
    assert F.linear(x, w, b).dtype == np.float32
    w64, b64 = nb.tensor(w.data, dtype="float64"), nb.tensor(b.data, dtype="float64")
    x32 = nb.tensor(x.data, dtype="float32")
    assert linalg.linear_relu(x32, w64, b64).dtype == np.float64
    assert F.linear(x32, w64, b64).dtype == np.float64


def test_linear_and_linear_relu_take_a_plain_array_input():
    x, w, b = data((4, 3), 1).astype(np.float32), nb.tensor(data((5, 3), 2)), nb.tensor(data(5))
    expected = F.linear(nb.tensor(x), w, b)
    np.testing.assert_array_equal(F.linear(x, w, b).data, expected.data)
    np.testing.assert_array_equal(linalg.linear_relu(x, w, b).data, expected.relu().data)


def test_linear_gradients_when_only_some_inputs_require_grad():
    for need in ((True, False, False), (False, True, False), (False, False, True)):
        x, w, b = (
            nb.tensor(data(s, i), dtype="float64") for i, s in enumerate([(4, 3), (5, 3), (5,)])
        )
        for t, flag in zip((x, w, b), need):
            t.requires_grad = flag
        F.linear(x, w, b).sum().backward()
        assert [t.grad is not None for t in (x, w, b)] == list(need)


def test_linear_errors_name_the_shapes():
    w = nb.ones((5, 3))
    with pytest.raises(
        ValueError,
        match=r"linear: weight must be 2-D \(out_features, in_features\), got shape \(3,\)",
    ):
        F.linear(nb.ones(3), nb.ones(3))
    with pytest.raises(
        ValueError,
        match=r"input of shape \(2, 4\) does not fit weight of shape \(5, 3\): "
        r"expected last dimension 3, got 4",
    ):
        F.linear(nb.ones((2, 4)), w)
    with pytest.raises(ValueError, match=r"expected last dimension 3, got 4$"):
        F.linear(nb.ones((2, 3, 4)), w)  # the last dimension, not the second
    with pytest.raises(
        ValueError, match=r"input of shape \(\) .* expected last dimension 3, got a scalar"
    ):
        F.linear(nb.tensor(1.0), w)
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(5,\), got \(3,\)"):
        F.linear(nb.ones((2, 3)), w, nb.ones(3))


@pytest.mark.parametrize("fused", [False, True])
def test_linear_writes_weight_and_bias_gradients_into_the_optimizers_slots(fused):
    """A leaf with a ``_grad_slot`` (the optimizer's flat buffer) and no gradient yet receives its
    gradient in that very buffer; the values are torch's."""
    x, w, b = data((4, 3), 1), data((5, 3), 2), data((5,), 3)
    xs, ws, bs = (nb.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
    slots = {"w": np.full((5, 3), np.nan), "b": np.full((5,), np.nan)}
    ws._grad_slot, bs._grad_slot = slots["w"], slots["b"]
    fn = linalg.linear_relu if fused else F.linear
    fn(xs, ws, bs).backward(nb.tensor(data((4, 5), 4), dtype="float64"))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = TF.linear(xt, wt, bt)
    (out.relu() if fused else out).backward(torch.tensor(data((4, 5), 4)))
    for mine, slot, theirs in ((ws, slots["w"], wt), (bs, slots["b"], bt)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-12)
        assert np.shares_memory(mine.grad, slot)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), rtol=1e-12)
