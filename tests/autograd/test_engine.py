"""The backward pass: seeding, errors, accumulation, graph order, depth, and freeing the graph.

Expected gradients are derived by hand (and evaluated with NumPy on the same inputs) or taken
from PyTorch; none is pasted in as a number.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
import weakref

import numpy as np
import pytest
import torch

import nabla as nb


def leaf(values, dtype="float64") -> nb.Tensor:
    return nb.tensor(values, dtype=dtype, requires_grad=True)


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


# --- seeding backward -------------------------------------------------------------------------


def test_backward_on_scalar_seeds_with_one():
    a = np.array([0.5, -1.0, 2.0])
    x = leaf(a)
    (x * x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * a**2, rtol=1e-12)


def test_backward_on_one_element_non_scalar_seeds_with_one():
    x = leaf([[2.0]])
    (x * 3.0).backward()  # shape (1, 1): one element, so dL/dself = 1 is implied, as in torch
    np.testing.assert_array_equal(x.grad, np.full((1, 1), 3.0))


def test_backward_with_explicit_grad_on_non_scalar():
    a = np.array([[0.1, 0.2, 0.3], [-0.4, 0.5, -0.6]])
    v = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    x = leaf(a)
    x.sin().backward(v)
    np.testing.assert_allclose(x.grad, v * np.cos(a), rtol=1e-12)


def test_explicit_grad_may_be_a_tensor():
    a = np.array([1.0, 2.0])
    v = np.array([3.0, -4.0])
    x = leaf(a)
    (x * x).backward(nb.tensor(v, dtype="float64"))
    np.testing.assert_allclose(x.grad, 2 * a * v)


def test_explicit_grad_is_not_modified():
    v = np.array([1.0, -2.0, 0.5])
    v_before = v.copy()
    x = leaf([1.0, 2.0, 3.0])
    y = x * 1.0
    (y + y + x).backward(v)  # v reaches the same nodes along several paths
    np.testing.assert_array_equal(v, v_before)
    np.testing.assert_allclose(x.grad, 3 * v_before)


def test_backward_on_a_leaf_sets_its_grad():
    x = leaf([1.0, 2.0])
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


# --- errors -----------------------------------------------------------------------------------


def test_backward_without_grad_on_non_scalar_names_the_shape():
    y = leaf(np.ones((2, 3))) * 2.0
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        y.backward()


def test_backward_with_grad_of_wrong_shape():
    y = leaf(np.ones((2, 3))) * 2.0
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_on_tensor_not_requiring_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        nb.tensor([1.0, 2.0]).sum().backward()


def test_backward_on_tensor_computed_under_no_grad():
    x = leaf([1.0, 2.0])
    with nb.no_grad():
        y = (x * 2.0).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_second_backward_through_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_through_a_graph_freed_by_another_backward_raises():
    x = leaf([1.0, 2.0])
    shared = x.exp()
    shared.sum().backward()  # frees the node of ``shared``
    with pytest.raises(RuntimeError, match="retain_graph"):
        (shared * 3.0).sum().backward()


def test_retain_graph_allows_second_backward_and_accumulates_exactly_twice():
    a = np.array([0.3, -0.7, 1.1])
    x = leaf(a)
    y = (x.tanh() * x).sum()
    y.backward(retain_graph=True)
    once = x.grad.copy()
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * once)  # bitwise: the same sum, computed twice
    np.testing.assert_allclose(once, np.tanh(a) + a * (1 - np.tanh(a) ** 2), rtol=1e-12)


# --- accumulation into leaves ------------------------------------------------------------------


def test_gradients_accumulate_across_backward_calls():
    a = np.array([0.5, 1.5])
    x = leaf(a)
    (x * x).sum().backward()
    x.sin().sum().backward()
    np.testing.assert_allclose(x.grad, 2 * a + np.cos(a), rtol=1e-12)


def test_accumulation_keeps_the_same_grad_array():
    # An optimizer's .grad is a view into its flat buffer: backward must add into it in place.
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    g = x.grad
    (x * 3.0).sum().backward()
    assert x.grad is g
    np.testing.assert_allclose(g, 2 * np.array([1.0, 2.0, 3.0]) + 3.0)


def test_accumulation_writes_into_a_grad_that_views_a_buffer():
    buffer = np.zeros(5)
    x = leaf([1.0, 2.0])
    x.grad = buffer[1:3]
    (x * x).sum().backward()
    np.testing.assert_array_equal(buffer, [0.0, 2.0, 4.0, 0.0, 0.0])


def test_first_gradient_is_a_private_copy():
    # Add hands the same array to both inputs; the leaves must not share (or alias) it.
    x = leaf([1.0, 2.0])
    z = leaf([3.0, 4.0])
    (x + z).backward(np.array([1.0, 1.0]))
    assert not np.shares_memory(x.grad, z.grad)
    x.grad += 10
    np.testing.assert_array_equal(z.grad, [1.0, 1.0])


def test_input_used_twice_in_one_op_gets_both_contributions():
    a = np.array([0.2, -3.0])
    x = leaf(a)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * a)


# --- order of the walk: diamonds and shared subexpressions --------------------------------------


def test_diamond_exp():
    # y feeds both factors of z, one of them through an extra node: y must receive both
    # contributions before its own backward runs. dz/dx = (2y + 1) y with y = e^x.
    a = np.array([-1.0, 0.0, 0.5, 1.2])
    x = leaf(a)
    y = x.exp()
    (y * (y + 1.0)).sum().backward()
    ey = np.exp(a)
    np.testing.assert_allclose(x.grad, (2 * ey + 1) * ey, rtol=1e-12)


def test_shared_subexpression_used_at_three_depths():
    # out = a^3 + a^2 + a with a = sin x: a is consumed at depth 1, 2 and 3 from out.
    v = np.array([0.3, -1.1, 2.0])
    x = leaf(v)
    a = x.sin()
    b = a * a
    c = b * a
    (c + b + a).sum().backward()
    s = np.sin(v)
    np.testing.assert_allclose(x.grad, (3 * s**2 + 2 * s + 1) * np.cos(v), rtol=1e-12)


def test_short_and_long_path_to_the_same_node():
    # out = y + sin(sin(...sin(y))) with y = x^2: the long branch reaches y last.
    v = np.array([0.4, -0.9])
    x = leaf(v)
    y = x * x
    p = y
    for _ in range(50):
        p = p.sin()
    (p + y).sum().backward()
    chain = np.ones_like(v)
    q = v * v
    for _ in range(50):
        chain *= np.cos(q)
        q = np.sin(q)
    np.testing.assert_allclose(x.grad, (1 + chain) * 2 * v, rtol=1e-10)


def test_branches_rejoining_through_different_ops():
    # u = e^x, w = sigmoid(u) * u, out = sum(w * u + tanh(w)). Check against PyTorch.
    v = np.array([[0.1, -0.5, 0.7], [1.0, -1.5, 0.2]])
    x = leaf(v)
    u = x.exp()
    w = u.sigmoid() * u
    (w * u + w.tanh()).sum().backward()
    tx = torch.tensor(v, requires_grad=True)
    tu = tx.exp()
    tw = tu.sigmoid() * tu
    (tw * tu + tw.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_ladder_of_shared_nodes():
    # Each rung uses the two previous ones, so every node has two consumers at different depths.
    v = np.array([0.3, 0.6])
    x = leaf(v)
    prev, cur = x, x.sin()
    for _ in range(20):
        prev, cur = cur, (cur + prev * 0.5).tanh()
    cur.sum().backward()
    tx = torch.tensor(v, requires_grad=True)
    tprev, tcur = tx, tx.sin()
    for _ in range(20):
        tprev, tcur = tcur, (tcur + tprev * 0.5).tanh()
    tcur.sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_backward_from_an_intermediate_uses_only_its_subgraph():
    v = np.array([0.5, 2.0])
    x = leaf(v)
    y = x * x
    z = y.exp()  # part of a larger graph that is never backpropagated
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * v)
    del z


# --- depth and memory ----------------------------------------------------------------------------


def test_ten_thousand_op_chain():
    c = 1.0001
    x = leaf(0.3)
    y = x
    for _ in range(5_000):
        y = y * c
        y = y + 1.0
    y.backward()  # 10,000 nodes deep: must not recurse
    assert math.isclose(float(x.grad), c**5_000, rel_tol=1e-10)


def test_ten_thousand_op_chain_can_be_dropped_without_backward():
    x = leaf(np.ones(2))
    y = x
    for _ in range(10_000):
        y = y.sin()
    ref = weakref.ref(y.grad_fn)
    del y
    assert ref() is None


class _MLP:
    """A small two-layer network with a squared-error loss, trained by plain SGD."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((64, 32)).astype(np.float32)
        self.y = rng.standard_normal((64, 1)).astype(np.float32)
        self.w1 = nb.tensor(rng.standard_normal((32, 16)) * 0.2, requires_grad=True)
        self.b1 = nb.zeros(16, requires_grad=True)
        self.w2 = nb.tensor(rng.standard_normal((16, 1)) * 0.2, requires_grad=True)

    def params(self):
        return (self.w1, self.b1, self.w2)

    def forward(self):
        h = (nb.tensor(self.x) @ self.w1 + self.b1).tanh()
        h.retain_grad()  # a weak link from node to tensor: must not create a cycle
        out = (h @ self.w2).sigmoid()
        return ((out - self.y) ** 2).mean(), h

    def step(self):
        self.forward()  # a graph that is dropped without backward (an evaluation pass)
        loss, _ = self.forward()
        loss.backward()
        for p in self.params():
            p.data -= 0.01 * p.grad
            p.grad[...] = 0.0
        return loss


def test_memory_stays_flat_and_graph_makes_no_cycles():
    model = _MLP()
    first = float(model.step().item())
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        for _ in range(100):  # warm-up: NumPy and CPython caches fill here
            model.step()
        objects_before = len(gc.get_objects())
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(1_000):
            last = model.step()
        after = tracemalloc.get_traced_memory()[0]
        objects_after = len(gc.get_objects())
        unreachable = gc.collect()
    finally:
        tracemalloc.stop()
        gc.enable()
    # One leaked activation per step would be >= 8 KiB x 1,000; CPython's tuple free lists
    # (counted as allocated by tracemalloc) account for well under 256 KiB.
    assert after - before < 256 * 1024, f"memory grew by {after - before} bytes"
    assert objects_after - objects_before < 50, "tensors or nodes outlive their step"
    assert unreachable == 0, f"the graph left {unreachable} objects in reference cycles"
    assert float(last.item()) < first  # the loop really trained


def test_intermediates_and_nodes_are_freed_by_backward():
    def build(x):
        h = x.exp()
        k = (h * 2.0).tanh()
        refs = [weakref.ref(t) for t in (h, k)] + [weakref.ref(t.grad_fn) for t in (h, k)]
        return k.sum(), refs

    x = leaf([0.1, 0.2])
    loss, refs = build(x)
    assert all(r() is not None for r in refs)  # alive through the graph before backward
    loss.backward()
    assert all(r() is None for r in refs)  # freed while ``loss`` is still alive


def test_retain_graph_keeps_intermediates_until_the_output_goes():
    x = leaf([0.1, 0.2])
    h = x.exp()
    loss = (h * 2.0).sum()
    refs = [weakref.ref(h), weakref.ref(h.grad_fn)]
    del h
    loss.backward(retain_graph=True)
    assert all(r() is not None for r in refs)
    del loss
    assert all(r() is None for r in refs)  # plain reference counting: no cycle to collect


# --- which tensors get gradients -----------------------------------------------------------------


def test_retain_grad_on_non_leaf():
    v = np.array([1.0, -2.0, 0.5])
    x = leaf(v)
    y = x * 2.0
    y.retain_grad()
    z = y.exp()  # not retained
    (z * y).sum().backward()
    np.testing.assert_allclose(y.grad, np.exp(2 * v) * (2 * v) + np.exp(2 * v), rtol=1e-12)
    assert z.grad is None
    np.testing.assert_allclose(x.grad, 2 * y.grad, rtol=1e-12)


def test_retain_grad_on_the_output_itself():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.retain_grad()
    y.backward()
    assert float(y.grad) == 1.0


def test_retained_grad_accumulates_like_torch():
    v = np.array([1.0, 2.0])
    x = leaf(v)
    y = x * 2.0
    y.retain_grad()
    z = (y * y).sum()
    z.backward(retain_graph=True)
    z.backward()
    tx = torch.tensor(v, requires_grad=True)
    ty = tx * 2.0
    ty.retain_grad()
    tz = (ty * ty).sum()
    tz.backward(retain_graph=True)
    tz.backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy())
    np.testing.assert_allclose(y.grad, ty.grad.numpy())


def test_retain_grad_on_tensor_not_requiring_grad_raises():
    t = nb.tensor([1.0]) * 2.0
    with pytest.raises(RuntimeError):
        t.retain_grad()


def test_non_leaf_without_retain_grad_has_no_grad():
    x = leaf([1.0])
    y = x * 2.0
    (y * y).sum().backward()
    assert y.grad is None


def test_leaves_not_requiring_grad_get_no_grad():
    x = leaf([1.0, 2.0])
    w = nb.tensor([3.0, 4.0], dtype="float64")
    (x * w + w.exp()).sum().backward()
    assert w.grad is None
    np.testing.assert_array_equal(x.grad, w.data)


def test_frozen_leaf_gets_no_grad():
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0]).requires_grad_(False)
    (x * w).sum().backward()
    assert w.grad is None
    assert x.grad is not None


def test_constants_mixed_into_ops():
    v = np.array([0.5, 1.0, 2.0])
    c = np.array([2.0, -1.0, 3.0])
    x = leaf(v)
    out = (x * c + 2.0) / 4.0 - np.float64(1.5) * x + 1.0 / x + 2.0**x + (c - x) ** 2.0
    out.sum().backward()
    expected = c / 4.0 - 1.5 - 1.0 / v**2 + np.log(2.0) * 2.0**v - 2.0 * (c - v)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_ndarray_on_the_left_of_matmul():
    m = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    x = leaf([[0.5, -1.0], [2.0, 0.0]])
    (m @ x).sum().backward()
    np.testing.assert_allclose(x.grad, m.T @ np.ones((3, 2)))


def test_detach_cuts_the_graph():
    v = np.array([0.5, -0.5])
    x = leaf(v)
    y = x.exp()
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    assert np.shares_memory(d.data, y.data)
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, np.exp(v))  # no contribution through y


def test_gradient_dtype_follows_each_leaf():
    a = nb.tensor([1.0, 2.0], requires_grad=True)  # float32
    b = nb.tensor([3.0, 4.0], dtype="float64", requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32
    assert b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])


def test_broadcast_inputs_get_gradients_of_their_own_shape():
    a = np.arange(6.0).reshape(2, 3)
    x = leaf(a)
    row = leaf([[1.0, 2.0, 3.0]])
    scalar = leaf(2.0)
    (x * row * scalar).sum().backward()
    assert row.grad.shape == (1, 3) and scalar.grad.shape == ()
    np.testing.assert_allclose(row.grad, 2.0 * a.sum(axis=0, keepdims=True))
    np.testing.assert_allclose(scalar.grad, (a * [[1.0, 2.0, 3.0]]).sum())


# --- in-place writes into arrays a graph saved ---------------------------------------------------


def test_inplace_write_to_a_saved_constant_is_caught_at_backward():
    x = leaf([1.0, 2.0])
    w = nb.tensor([3.0, 4.0], dtype="float64")
    y = (x * w).sum()  # Mul saved w for x's gradient
    w[0] = 100.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_inplace_update_of_a_leaf_under_no_grad_is_caught_at_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    with nb.no_grad():
        x -= 0.5  # an optimizer step before backward: the saved x is no longer the x used
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_inplace_write_before_use_is_fine():
    x = leaf([1.0, 2.0])
    w = nb.tensor([3.0, 4.0], dtype="float64")
    w[0] = 5.0
    (x * w).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 4.0])


def test_inplace_write_through_detach_is_caught_like_torch():
    # detach() shares the data; torch shares the version counter too, so the write is seen.
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    ty = (tx * tx).sum()
    tx.detach()[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.backward()

    x = leaf([1.0, 2.0])
    y = (x * x).sum()  # Mul saved x
    x.detach()[0] = 5.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
