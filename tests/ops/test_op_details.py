"""Behaviour the table in test_ops.py cannot express: conventions at kinks and ties, numerical
stability, error messages and fan-out accumulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nabla as nb
import nabla.nn.functional as F


def test_relu_and_abs_have_zero_gradient_at_zero_like_torch():
    x = nb.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    (x.relu() + x.abs()).sum().backward()
    t = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    (t.relu() + t.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
    assert x.grad[1] == 0.0


def test_max_reduction_splits_ties_evenly_like_torch_amax():
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x = nb.tensor(data, requires_grad=True)
    x.max(axis=1).sum().backward()
    t = torch.tensor(data, requires_grad=True)
    torch.amax(t, dim=1).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy())
    np.testing.assert_allclose(x.grad.sum(axis=1), [1.0, 1.0])


def test_maximum_and_clip_at_ties_follow_torch():
    data = np.array([0.5, 1.0, -0.5])
    x = nb.tensor(data, requires_grad=True)
    (nb.maximum(x, nb.tensor([0.5, 0.0, 0.0])) + x.clip(-0.5, 1.0)).sum().backward()
    t = torch.tensor(data, requires_grad=True)
    (torch.maximum(t, torch.tensor([0.5, 0.0, 0.0])) + t.clamp(-0.5, 1.0)).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_is_finite_for_huge_logits(reduction):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype=np.float32)
    target = np.array([1, 1])
    z = nb.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, target, reduction=reduction)
    loss.sum().backward()
    assert np.isfinite(loss.data).all() and np.isfinite(z.grad).all()
    t = torch.tensor(logits, requires_grad=True)
    reference = TF.cross_entropy(t, torch.from_numpy(target), reduction=reduction)
    reference.sum().backward()
    np.testing.assert_allclose(loss.data, reference.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(z.grad, t.grad.numpy(), atol=1e-6)


def test_cross_entropy_unbatched_matches_torch():
    z = nb.tensor([0.1, 2.0, -1.0], dtype="float64", requires_grad=True)
    loss = F.cross_entropy(z, nb.tensor(1))
    loss.backward()
    t = torch.tensor([0.1, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    reference = TF.cross_entropy(t, torch.tensor(1))
    reference.backward()
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), reference.item(), rtol=1e-12)
    np.testing.assert_allclose(z.grad, t.grad.numpy(), rtol=1e-12)


def test_softmax_and_log_softmax_are_stable():
    z = nb.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    assert np.isfinite(F.log_softmax(z).data).all()
    np.testing.assert_allclose(F.softmax(z).data.sum(), 1.0, rtol=1e-6)
    assert np.isfinite(nb.logsumexp(z).data).all()
    assert np.isfinite(F.softplus(z).data).all() and np.isfinite(F.sigmoid(z).data).all()


def test_three_way_fan_out_accumulates_every_contribution():
    x = nb.tensor([0.3, -0.7], dtype="float64", requires_grad=True)
    y = x.exp()
    (y + y + y * y).sum().backward()  # d/dx = 2 e^x + 2 e^2x
    np.testing.assert_allclose(x.grad, 2 * np.exp(x.data) + 2 * np.exp(2 * x.data))


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: nb.ones(2, 3) @ nb.ones(4, 5), ["(2, 3)", "(4, 5)"]),
        (lambda: nb.ones(2, 3, 4) @ nb.ones(5, 4, 2), ["(2, 3, 4)", "(5, 4, 2)"]),
        (lambda: nb.ones(2, 3) + nb.ones(4), ["(2, 3)", "(4,)"]),
        (lambda: nb.ones(2, 3) * np.ones((3, 2)), ["(2, 3)", "(3, 2)"]),
        (lambda: nb.ones(6).reshape(4, 2), ["(6,)", "(4, 2)"]),
        (lambda: F.linear(nb.ones(8, 5), nb.ones(3, 4)), ["(8, 5)", "(3, 4)"]),
        (lambda: nb.concatenate([nb.ones(2, 3), nb.ones(3, 2)]), ["(2, 3)", "(3, 2)"]),
        (lambda: nb.ones(3).broadcast_to((2, 4)), ["(3,)", "(2, 4)"]),
    ],
)
def test_shape_errors_name_both_shapes(make, names):
    with pytest.raises(ValueError) as info:
        make()
    for name in names:
        assert name in str(info.value)


def test_cross_entropy_rejects_bad_targets_clearly():
    z = nb.zeros(4, 3)
    with pytest.raises(IndexError, match="target class 3 is out of range for 3 classes"):
        F.cross_entropy(z, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"must have shape \(4,\), got \(3,\)"):
        F.cross_entropy(z, [0, 1, 2])
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, [0, 1, 2, 2], reduction="avg")


def test_comparisons_are_boolean_and_outside_the_graph():
    x = nb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result in (x > 1.5, x <= 2, x == 2.0, x != x, 2.0 < x):
        assert result.dtype == np.bool_ and not result.requires_grad
    np.testing.assert_array_equal((x > 1.5).data, [False, True, True])
    np.testing.assert_array_equal((2.0 < x).data, [False, False, True])


def test_argmax_is_int64_and_not_differentiable():
    x = nb.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]], requires_grad=True)
    index = x.argmax(axis=1)
    assert index.dtype == np.int64 and not index.requires_grad
    np.testing.assert_array_equal(index.data, [1, 0])


def test_integer_tensors_compute_without_gradients():
    labels = nb.tensor([3, 1, 4])
    assert (labels + 1).dtype == np.int64
    assert (labels * 0.5).dtype == np.float32  # torch promotes int * float to the default float
    assert labels.sum().item() == 8
