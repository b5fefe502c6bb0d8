"""Engine details the broader tests leave open: the recorded node, the upstream gradient, gradients
that differ in dtype from their input, version checks and their messages, optimizer gradient
slots. ``sum_to`` and ``gradcheck`` have their own files (test_autograd_broadcast.py,
test_autograd_gradcheck.py).

References are PyTorch (same program, same gradients and dtypes), NumPy formulas, and exact
floating-point cases (powers of two) where a boundary must be hit exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.autograd import engine


def leaf(values, dtype="float64") -> nb.Tensor:
    return nb.tensor(values, dtype=dtype, requires_grad=True)


class Twice(nb.Function):
    """y = 2 x, whose backward hands one array to both inputs of a two-input op (x, c)."""

    @staticmethod
    def forward(ctx, x, c):
        return 2 * x + 0 * c

    @staticmethod
    def backward(ctx, g):
        return 2 * g, g


class Total(nb.Function):
    """A full reduction: NumPy returns a scalar (np.float64), not an array."""

    @staticmethod
    def forward(ctx, x):
        return np.sum(x)

    @staticmethod
    def backward(ctx, g):
        return np.broadcast_to(g, (3,)).copy()


# --- the node recorded by Function.apply ------------------------------------------------------


def test_computed_tensor_starts_clean():
    x = leaf([1.0, 2.0])
    y = x * 3
    assert y.grad is None and y._version == 0 and not y.is_leaf and y.requires_grad
    assert y.grad_fn.needs_input_grad[0] is True
    t = Total.apply(leaf([1.0, 2.0, 3.0]))  # NumPy's scalar result becomes a 0-d array
    assert type(t.data) is np.ndarray and t.shape == () and t.item() == 6.0


def test_constants_are_never_tracked():
    """A constant input needs no gradient, and a graph is recorded only for tensors that do."""
    y = nb.tensor([1.0, 2.0]) + np.array([1.0, 1.0])
    assert y.requires_grad is False and y.grad_fn is None
    z = Twice.apply(leaf([1.0, 2.0]), np.array([5.0, 5.0]))
    assert z.grad_fn.needs_input_grad == [True, False]
    z.sum().backward()  # the constant's gradient (g) is dropped, not written anywhere


def test_gradient_for_an_input_not_needing_one_is_dropped_and_later_inputs_still_get_theirs():
    c = nb.tensor([5.0, 5.0], dtype="float64")
    x = leaf([1.0, 2.0])
    Twice.apply(c, x).sum().backward()  # c first: its gradient (2g) is skipped, x's (g) is kept
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_a_none_gradient_leaves_that_input_s_subgraph_without_gradient():
    """Backward may return None for an input: nodes reached only through it get nothing."""

    class FirstOnly(nb.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + 0 * y

        @staticmethod
        def backward(ctx, g):
            return g, None

    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (w * 2).exp()  # two nodes that receive no gradient
    FirstOnly.apply(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    assert w.grad is None


def test_inputs_written_before_use_do_not_trip_the_version_check():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    with nb.no_grad():
        x += 1
        w += 1
        w += 1
    (x * w).sum().backward()  # versions 1 and 2 were recorded; nothing changed since
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])
    np.testing.assert_array_equal(w.grad, [2.0, 3.0])


def test_views_share_the_version_counter_of_their_input():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    with nb.no_grad():
        x += 0
    v = x.reshape(4)
    assert v._vc is x._vc and v._version == 1
    copy = x * 1
    assert copy._vc is not x._vc and copy._version == 0


def test_output_modified_in_place_is_caught_and_named():
    x = leaf([0.5, -1.0])
    y = x.tanh()  # Tanh's backward reads its own output
    y.detach().add_(1.0)  # a write through a detached alias counts as a write to y
    with pytest.raises(RuntimeError, match=f"output of {type(y.grad_fn).__name__} was modified"):
        y.backward(np.ones(2))
    x.tanh().backward(np.ones(2))  # untouched: passes
    np.testing.assert_allclose(x.grad, 1 - np.tanh([0.5, -1.0]) ** 2)


def test_input_modified_in_place_error_names_the_op_and_the_input_shapes():
    x = leaf([[1.0, 2.0, 3.0]])
    y = x * 2.0
    with nb.no_grad():
        x += 1
    with pytest.raises(
        RuntimeError,
        match=rf"an input of {type(y.grad_fn).__name__} \(input "
        r"shapes \(1, 3\), (\(\)|constant)\) was modified in place",
    ):
        y.sum().backward()


def test_input_modified_in_place_error_lists_constants():
    x = leaf([1.0, 2.0])
    y = Twice.apply(x, 2.0)
    with nb.no_grad():
        x += 1
    with pytest.raises(RuntimeError, match=r"Twice \(input shapes \(2,\), constant\)"):
        y.sum().backward()


# --- the upstream gradient --------------------------------------------------------------------


@pytest.mark.parametrize("grad", [[1.0, 2.0], [1, 2], np.array([1.0, 2.0]), nb.tensor([1.0, 2.0])])
def test_upstream_gradient_may_be_a_list_an_array_or_a_tensor(grad):
    """Of any dtype (here int64 and float64 for a float32 output): it is cast to the output's."""
    x = leaf([3.0, 4.0], dtype="float32")
    y = x * 3
    y.retain_grad()
    y.backward(grad)
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])
    assert y.grad.dtype == np.float32  # cast to the tensor's dtype, as torch requires it to match


def test_wrong_upstream_shape_names_both_shapes():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) for a tensor of shape \(2,\)"):
        y.backward(np.ones(3))


def test_engine_backward_frees_the_graph_by_default():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    engine.backward(y)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        engine.backward(y)


def test_tensor_backward_forwards_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * 2 * x.data)


def test_backward_on_a_leaf_with_a_given_gradient():
    x = leaf([1.0, 2.0])
    x.backward(nb.tensor([3.0, 4.0]))
    x.backward([1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [4.0, 5.0])


# --- gradients of another dtype than their input ------------------------------------------------


def test_retained_gradient_of_a_float32_intermediate_stays_float32_like_torch():
    """A float32 tensor mixed into float64 math receives a float64 gradient: it is cast back."""
    a = np.array([1.0, -2.0], dtype=np.float32)
    b = np.array([0.5, 3.0])
    x, w = leaf(a, dtype="float32"), leaf(b)
    y = x * 2  # float32
    y.retain_grad()
    (y * w).sum().backward()
    tx, tw = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = tx * 2
    ty.retain_grad()
    (ty * tw).sum().backward()
    assert str(y.grad.dtype) == str(ty.grad.dtype).removeprefix("torch.") == "float32"
    np.testing.assert_array_equal(y.grad, ty.grad.numpy())
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


def test_retained_gradient_is_a_copy_not_the_array_flowing_on():
    x = leaf([1.0, 2.0])
    y = x * 1.0
    y.retain_grad()
    (y + y + y).sum().backward()  # y's gradient is summed in place from three contributions
    np.testing.assert_array_equal(y.grad, [3.0, 3.0])
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_shared_upstream_gradient_is_not_modified_through_a_shared_node():
    v = np.array([1.0, -2.0])
    before = v.copy()
    x = leaf([1.0, 2.0])
    y = x * 1.0
    (y + y).backward(v)  # Add hands v itself to both inputs, which both reach y
    np.testing.assert_array_equal(v, before)
    np.testing.assert_array_equal(x.grad, 2 * before)


def test_retain_grad_on_a_leaf_keeps_its_gradient():
    x = leaf([1.0, 2.0])
    x.retain_grad()  # a no-op for leaves, as in torch
    assert x.grad_fn is None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        (nb.tensor([1.0]) * 2.0).retain_grad()


# --- optimizer gradient slots -------------------------------------------------------------------


def test_first_gradient_goes_into_a_matching_slot():
    x = leaf([1.0, 2.0])
    slot = np.zeros(2)
    x._grad_slot = slot
    (x * 3).sum().backward()
    assert x.grad is slot
    np.testing.assert_array_equal(slot, [3.0, 3.0])
    (x * 3).sum().backward()
    assert x.grad is slot
    np.testing.assert_array_equal(slot, [6.0, 6.0])


@pytest.mark.parametrize("slot", [np.zeros(3), np.zeros((2, 1)), np.zeros(2, dtype=np.float32)])
def test_a_slot_of_another_shape_or_dtype_is_not_used(slot):
    x = leaf([1.0, 2.0])
    x._grad_slot = slot
    (x * 3).sum().backward()
    assert x.grad is not slot and not np.shares_memory(x.grad, slot)
    assert x.grad.dtype == np.float64 and x.grad.shape == (2,)
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    assert not slot.any()


def test_grad_slot_is_offered_only_for_a_first_gradient_of_a_leaf():
    x = leaf([1.0, 2.0])
    assert engine.grad_slot(x, (2,), np.float64) is None  # no slot
    slot = np.zeros(2)
    x._grad_slot = slot
    assert engine.grad_slot(x, (2,), np.dtype(np.float64)) is slot
    assert engine.grad_slot(x, (3,), np.float64) is None
    assert engine.grad_slot(x, (2,), np.float32) is None
    x.grad = np.ones(2)
    assert engine.grad_slot(x, (2,), np.float64) is None  # not the first gradient
    y = leaf([1.0, 2.0]) * 1
    y._grad_slot = np.zeros(2)
    assert engine.grad_slot(y, (2,), np.float64) is None  # not a leaf


def test_a_gradient_already_written_into_the_slot_is_kept():
    x = leaf([1.0, 2.0])
    slot = np.array([7.0, 8.0])
    x._grad_slot = slot
    engine._accumulate_leaf(x, slot)  # an op wrote it there (np.matmul(..., out=slot))
    assert x.grad is slot
    np.testing.assert_array_equal(slot, [7.0, 8.0])
