"""The backward passes of ``matmul`` and ``linear`` compute only the gradients that are asked for
(``None`` for the others: no product is computed and dropped), each with its input's shape,
and the values are torch's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nabla as nb
import nabla.nn.functional as F


def node_backward(out, g):
    """Call the backward of the node that made ``out`` directly, as the engine does."""
    ctx = out._node
    return type(ctx).backward(ctx, g)


def data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


NEEDS_2 = [(True, False), (False, True), (True, True)]


@pytest.mark.parametrize("need", NEEDS_2)
@pytest.mark.parametrize(
    "shape_a, shape_b", [((3,), (3,)), ((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,))]
)
def test_matmul_backward_gives_each_needed_gradient_its_inputs_shape_and_none_otherwise(
    shape_a, shape_b, need
):
    a, b = data(shape_a, 0), data(shape_b, 1)
    out = nb.matmul(*(nb.tensor(v, dtype="float64", requires_grad=n) for v, n in zip((a, b), need)))
    g = data(out.shape, 2)
    grads = node_backward(out, g)
    ta, tb = (torch.tensor(v, requires_grad=n) for v, n in zip((a, b), need))
    torch.matmul(ta, tb).backward(torch.tensor(g))
    for grad, t, needed in zip(grads, (ta, tb), need):
        if needed:
            assert grad.shape == t.shape
            np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12)
        else:
            assert grad is None


@pytest.mark.parametrize("need", [n for n in itertools.product([False, True], repeat=3) if any(n)])
@pytest.mark.parametrize("x_shape", [(4, 3), (2, 4, 3)])
def test_linear_backward_gives_only_the_needed_gradients(x_shape, need):
    x, w, b = data(x_shape, 0), data((5, 3), 1), data((5,), 2)
    out = F.linear(
        *(nb.tensor(v, dtype="float64", requires_grad=n) for v, n in zip((x, w, b), need))
    )
    g = data(out.shape, 3)
    grads = node_backward(out, g)
    tensors = [torch.tensor(v, requires_grad=n) for v, n in zip((x, w, b), need)]
    TF.linear(*tensors).backward(torch.tensor(g))
    for grad, t, needed in zip(grads, tensors, need):
        if needed:
            assert grad.shape == t.shape
            np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12)
        else:
            assert grad is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape", [(4, 3), (2, 4, 3)])
def test_linear_backward_writes_weight_and_bias_gradients_into_their_slots(x_shape, dtype):
    """With an optimizer's slot (``_grad_slot``) and no gradient yet, the products are written
    straight into the slots (no second buffer, no copy); the values are torch's."""
    x, w, b = data(x_shape, 0), data((5, 3), 1), data((5,), 2)
    xs, ws, bs = (nb.tensor(v, dtype=dtype, requires_grad=True) for v in (x, w, b))
    ws._grad_slot, bs._grad_slot = np.empty((5, 3), dtype), np.empty(5, dtype)
    out = F.linear(xs, ws, bs)
    g = data(out.shape, 3).astype(dtype)
    g_x, g_w, g_b = node_backward(out, g)
    assert g_w is ws._grad_slot and g_b is bs._grad_slot
    tensors = [torch.tensor(v, requires_grad=True) for v in (x, w, b)]
    TF.linear(*tensors).backward(torch.tensor(g.astype(np.float64)))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for grad, t in zip((g_x, g_w, g_b), tensors):
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, t.grad.numpy(), rtol=rtol, atol=rtol)


def test_linear_backward_leaves_a_slot_alone_once_a_gradient_is_there():
    """A second backward accumulates: the engine adds to .grad, so the op must not overwrite
    the slot (which .grad already is)."""
    ws = nb.tensor(data((5, 3), 1), dtype="float64", requires_grad=True)
    ws._grad_slot = np.zeros((5, 3))
    x = nb.tensor(data((4, 3), 0), dtype="float64")
    F.linear(x, ws).sum().backward()
    first = ws.grad.copy()
    out = F.linear(x, ws)
    _, g_w, _ = node_backward(out, np.ones(out.shape))
    assert g_w is not ws._grad_slot
    np.testing.assert_array_equal(ws._grad_slot, first)
