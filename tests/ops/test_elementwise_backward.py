"""The backward passes of the elementwise and indexing operations compute only what is asked:
``None`` for an input that needs no gradient (the work is skipped, not done and dropped), and the
gradient of the others in the dtype of the incoming gradient (no float64 detour for float32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb


def node_backward(out, g):
    """Call the backward of the node that made ``out`` directly, as the engine does."""
    ctx = out._node
    return type(ctx).backward(ctx, g)


def operands(need_a, need_b, dtype="float64"):
    a = nb.tensor([[1.5, -2.0, 3.0]], dtype=dtype, requires_grad=need_a)
    b = nb.tensor([[0.5, 4.0, -1.0]], dtype=dtype, requires_grad=need_b)
    return a, b


# a's gradient of a - b is g itself, and a / b's is needed for b's: returned even if not asked
FREE = {("sub", 0), ("div", 0)}
TORCH = {"sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow}


@pytest.mark.parametrize("name", ["sub", "mul", "div", "pow"])
@pytest.mark.parametrize("need_a, need_b", [(True, False), (False, True), (True, True)])
def test_binary_backward_returns_none_for_an_input_that_needs_no_gradient(name, need_a, need_b):
    a, b = operands(need_a, need_b)
    if name == "pow":
        a = nb.tensor(np.abs(a.numpy()), dtype="float64", requires_grad=need_a)
    g = np.array([[1.0, -2.0, 0.5]])
    grads = node_backward(getattr(nb, name)(a, b), g)
    ta, tb = (torch.tensor(t.numpy(), requires_grad=n) for t, n in ((a, need_a), (b, need_b)))
    TORCH[name](ta, tb).backward(torch.tensor(g))
    for position, (grad, t, needed) in enumerate(zip(grads, (ta, tb), (need_a, need_b))):
        if needed:
            np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-14)
        elif (name, position) not in FREE:
            assert grad is None


@pytest.mark.parametrize("need_a, need_b", [(True, False), (False, True), (True, True)])
def test_where_backward_returns_none_for_the_unneeded_side_and_keeps_float32(need_a, need_b):
    a, b = operands(need_a, need_b, dtype="float32")
    condition = np.array([[True, False, True]])
    g = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    g_condition, g_a, g_b = node_backward(nb.where(condition, a, b), g)
    assert g_condition is None
    for grad, needed, expected in (
        (g_a, need_a, [[1.0, 0.0, 0.5]]),
        (g_b, need_b, [[0.0, -2.0, 0.0]]),
    ):
        if needed:
            assert grad.dtype == np.float32
            np.testing.assert_array_equal(grad, expected)
        else:
            assert grad is None


@pytest.mark.parametrize("index", [(slice(None), 1), ([0, 0, 2],)])
def test_indexing_backward_scatters_into_an_array_of_the_gradients_dtype(index):
    x = nb.tensor(np.arange(12.0).reshape(3, 4), dtype="float32", requires_grad=True)
    out = x[index]
    g = np.ones(out.shape, dtype=np.float32)
    g_x, g_index = node_backward(out, g)
    assert g_x.dtype == np.float32 and g_index is None
    xt = torch.tensor(x.numpy(), requires_grad=True)
    xt[index].backward(torch.ones(out.shape))
    np.testing.assert_array_equal(g_x, xt.grad.numpy())
