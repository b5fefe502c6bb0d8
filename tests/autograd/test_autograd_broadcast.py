"""``sum_to``, the helper that undoes broadcasting in backward: its results against torch, the type
it returns for a 0-d input and the shapes it refuses.

The oracle is ``torch.Tensor.sum_to_size``, the same operation in PyTorch: it returns a tensor
(never a Python number) and refuses a shape that does not broadcast to the gradient's.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.autograd.broadcast import sum_to


@pytest.mark.parametrize(
    ("grad_shape", "shape"),
    [
        ((2, 3, 4), (3, 1)),
        ((2, 3, 4), (1, 4)),
        ((2, 3), ()),
        ((2, 1, 4), (1, 1, 4)),
        ((5, 2, 3), (2, 3)),
        ((2, 3), (2, 3)),
        ((4, 1), (1,)),
        ((3, 2), (3, 1)),
        ((3, 4, 1), (3, 1, 1)),
    ],
)
def test_sum_to_matches_torch_sum_to_size(grad_shape, shape):
    g = np.arange(np.prod(grad_shape), dtype=np.float64).reshape(grad_shape)
    expected = torch.tensor(g).sum_to_size(shape).numpy()
    got = sum_to(g, shape)
    assert got.shape == shape
    np.testing.assert_array_equal(got, expected)


def test_sum_to_returns_the_same_array_when_nothing_is_broadcast():
    g = np.ones((2, 3))
    assert sum_to(g, (2, 3)) is g


@pytest.mark.parametrize("grad_shape", [(3,), (2, 3), (1, 1), (4, 1, 2)])
def test_sum_to_a_0d_shape_is_a_0d_array(grad_shape):
    g = np.arange(np.prod(grad_shape), dtype=np.float64).reshape(grad_shape) + 0.5
    got = sum_to(g, ())
    expected = torch.tensor(g).sum_to_size(())
    assert type(got) is np.ndarray and got.shape == () and got.dtype == np.float64
    assert got == expected.item()


@pytest.mark.parametrize(
    ("grad_shape", "shape"),
    [((2, 3), (3, 2)), ((1, 2, 3), (3, 2)), ((3,), (3, 1)), ((), (1,)), ((2, 3), (2, 1, 3))],
)
def test_sum_to_refuses_a_shape_that_does_not_broadcast(grad_shape, shape):
    g = np.ones(grad_shape)
    with pytest.raises(RuntimeError):
        torch.tensor(g).sum_to_size(shape)  # torch refuses the same pairs
    message = (
        f"sum_to: a gradient of shape {grad_shape} cannot come from broadcasting an input of "
        f"shape {shape}"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        sum_to(g, shape)


class Transposed(nb.Function):
    """A wrong backward: it returns the gradient transposed, of the right size but not shape."""

    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, g):
        return 2.0 * g.T


def test_backward_refuses_a_gradient_of_the_wrong_shape():
    x = nb.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(
        ValueError,
        match=re.escape("of shape (3, 2) cannot come from") + ".*" + re.escape("of shape (2, 3)"),
    ):
        Transposed.apply(x).sum().backward()
    assert x.grad is None  # nothing was accumulated from the wrong gradient


def test_retained_gradient_of_a_broadcast_0d_tensor_is_a_0d_array():
    v = np.array([[0.5, -1.0, 2.0], [1.5, 3.0, -0.25]])
    x = nb.tensor(v, requires_grad=True)
    s = x.sum()  # 0-d, then broadcast against a (2, 3) tensor
    s.retain_grad()
    (s * nb.tensor(v)).sum().backward()
    tx = torch.tensor(v, requires_grad=True)
    ts = tx.sum()
    ts.retain_grad()
    (ts * torch.tensor(v)).sum().backward()
    assert type(s.grad) is np.ndarray and s.grad.shape == tuple(ts.grad.shape) == ()
    np.testing.assert_allclose(s.grad, ts.grad.numpy(), rtol=1e-15)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-15)
