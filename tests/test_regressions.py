"""Bugs found in review, each pinned by the smallest test that shows it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import nn, optim


def test_pow_with_exponent_zero_has_zero_gradient_at_zero_base():
    x = nb.tensor([0.0, 1.0], dtype="float64", requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    a = nb.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    e = nb.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    (a**e).sum().backward()
    ta = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    te = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    (ta**te).sum().backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy())
    np.testing.assert_allclose(e.grad, te.grad.numpy())


def test_assigning_a_buffer_keeps_it_registered_and_parameters_refuse_tensors():
    bn = nn.BatchNorm1d(3)
    bn.running_mean = nb.zeros(3)
    assert "running_mean" in bn.state_dict()
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"Linear\.weight is a parameter"):
        layer.weight = layer.weight * 2
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_state_dict_lists_a_shared_module_under_every_path_like_torch():
    ours = nn.Linear(2, 2)
    theirs = torch.nn.Linear(2, 2)
    assert list(nn.Sequential(ours, ours).state_dict()) == list(
        torch.nn.Sequential(theirs, theirs).state_dict()
    )


def test_item_assignment_of_a_tensor_that_requires_grad_is_refused():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    buffer = nb.zeros(2)
    with pytest.raises(RuntimeError, match="not differentiable"):
        buffer[0] = (x * x).sum()
    with nb.no_grad():
        buffer[0] = (x * x).sum()  # plain data outside the graph is fine
    assert buffer.data[0] == 5.0


def test_clip_bounds_are_weak_constants():
    assert nb.tensor([1.0, 2.0]).clip(np.float64(0.5), np.float64(1.5)).dtype == np.float32
    assert nb.tensor([1.0, 2.0]).clip(nb.tensor(0.5, dtype="float64")).dtype == np.float32
    assert nb.tensor([1, 2, 3]).clip(0.5, 2.5).dtype == np.float32
    assert nb.tensor([1, 2, 3]).clip(0, 2).dtype == np.int64
    assert nb.tensor([1, -2]).leaky_relu().dtype == np.float32


def test_reductions_and_shapes_of_0d_and_empty_tensors():
    x = nb.tensor(3.0, requires_grad=True)
    assert x.sum(axis=0).item() == 3.0 and x.squeeze(0).shape == () and x.transpose().shape == ()
    assert nb.zeros(0, 3).max(axis=1).shape == (0,)
    with pytest.raises(ValueError, match="empty axis"):
        nb.zeros(0, 3).max(axis=0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: nn.functional.conv2d(nb.ones(1, 1, 5, 5), nb.ones(1, 1, 3, 3), stride=0),
        lambda: nn.functional.conv2d(nb.ones(1, 1, 5, 5), nb.ones(1, 1, 3, 3), padding=-1),
        lambda: nn.functional.conv2d(nb.ones(1, 1, 5, 5), nb.ones(1, 1, 3, 3), dilation=0),
        lambda: nn.functional.max_pool2d(nb.ones(1, 1, 4, 4), 2, stride=0),
        lambda: nn.functional.adaptive_avg_pool2d(nb.ones(1, 1, 4, 4), 0),
        lambda: nn.Conv2d(3, 4, 0),
        lambda: nn.Conv2d(3, 4, 3, groups=0),
        lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"),
    ],
)
def test_bad_conv_and_pool_geometry_is_a_clear_value_error(call):
    with pytest.raises(ValueError, match=r"must be|groups|same"):
        call()


def test_max_pool_pads_integer_images():
    x = nb.tensor(np.arange(16).reshape(1, 1, 4, 4))
    out = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
    expected = torch.nn.functional.max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 3, 2, 1)
    np.testing.assert_array_equal(out.data, expected.numpy())


def test_backward_after_an_optimizer_step_through_the_old_graph_is_refused():
    layer = nn.Linear(3, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = nb.ones(4, 3, requires_grad=True)
    loss = layer(x).sum()
    opt.step()  # changes the weights the graph saved
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()
