"""Loss behaviour the table in test_ops.py cannot express: stability at extreme logits, torch's
clamps at probabilities 0 and 1, pos_weight, argument validation and shape errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nabla as nb
import nabla.nn.functional as F

ELEMENTWISE = ["mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy"]
ELEMENTWISE += ["binary_cross_entropy_with_logits"]


def _both(values, dtype="float64"):
    return (
        nb.tensor(values, dtype=dtype, requires_grad=True),
        torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=True),
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_is_finite_and_matches_torch_at_huge_logits(dtype):
    logits = [1e4, -1e4, 1e4, -1e4, 0.0]
    target = [1.0, 0.0, 0.0, 1.0, 0.5]
    x, t = _both(logits, dtype)
    ours = F.binary_cross_entropy_with_logits(x, nb.tensor(target, dtype=dtype), "none")
    theirs = TF.binary_cross_entropy_with_logits(
        t, torch.tensor(target, dtype=t.dtype), reduction="none"
    )
    assert np.all(np.isfinite(ours.data))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-6)
    ours.sum().backward()
    theirs.sum().backward()
    assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-6)


def test_bce_clamps_log_at_minus_100_like_torch_at_probabilities_0_and_1():
    probs = [0.0, 1.0, 0.0, 1.0, 1e-50, 0.5]
    target = [1.0, 0.0, 0.0, 1.0, 1.0, 0.3]
    p, tp = _both(probs)
    y, ty = _both(target)
    ours = F.binary_cross_entropy(p, y, "none")
    theirs = TF.binary_cross_entropy(tp, ty, reduction="none")
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    assert ours.data[0] == 100.0 and ours.data[2] == 0.0
    ours.sum().backward()
    theirs.sum().backward()
    # gradients at p in {0, 1} are huge but finite for p (torch floors p(1 - p) at 1e-12) and
    # infinite for the target (torch uses the unclamped -logit(p)): we match both
    np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(np.isinf(y.grad), np.isinf(ty.grad.numpy()))
    finite = np.isfinite(y.grad)
    np.testing.assert_allclose(y.grad[finite], ty.grad.numpy()[finite], rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_pos_weight_matches_torch(reduction):
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((6, 3)) * 5, rng.uniform(0, 1, (6, 3))
    weight = np.array([0.25, 1.0, 4.0])
    x, t = _both(logits)
    ours = F.binary_cross_entropy_with_logits(x, target, reduction, pos_weight=nb.tensor(weight))
    theirs = TF.binary_cross_entropy_with_logits(
        t, torch.from_numpy(target), reduction=reduction, pos_weight=torch.from_numpy(weight)
    )
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    cotangent = rng.standard_normal(ours.shape)
    ours.backward(cotangent)
    theirs.backward(torch.from_numpy(cotangent))
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


def test_pos_weight_of_one_is_the_unweighted_loss():
    x = nb.tensor([[-3.0, 0.5], [2.0, 7.0]])
    y = np.array([[1.0, 0.0], [0.25, 1.0]], dtype=np.float32)
    plain = F.binary_cross_entropy_with_logits(x, y)
    weighted = F.binary_cross_entropy_with_logits(x, y, pos_weight=np.ones(2))
    np.testing.assert_allclose(plain.data, weighted.data, rtol=1e-6)


def test_gaussian_nll_clamps_var_at_eps_and_passes_its_gradient_through_like_torch():
    (x, tx), (y, ty) = _both([0.0, 1.0, 2.0]), _both([0.5, 1.0, -1.0])
    v, tv = _both([0.0, 1e-9, 2.0])
    ours = F.gaussian_nll_loss(x, y, v, eps=1e-6)
    theirs = TF.gaussian_nll_loss(tx, ty, tv, eps=1e-6)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    ours.backward()
    theirs.backward()
    for a, b in [(x, tx), (y, ty), (v, tv)]:
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-12)


def test_gaussian_nll_rejects_negative_var_and_misshaped_var():
    x, y = nb.tensor(np.zeros((4, 3))), nb.tensor(np.ones((4, 3)))
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(x, y, nb.tensor(-np.ones((4, 3))))
    with pytest.raises(ValueError, match=r"var shape \(3,\).*input shape \(4, 3\)"):
        F.gaussian_nll_loss(x, y, nb.tensor(np.ones(3)))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_target_of_another_shape_is_refused_naming_both_shapes(name):
    # torch only warns for (N, 1) against (N,) and then broadcasts to an (N, N) loss
    x = nb.tensor(np.full((4, 1), 0.5))
    with pytest.raises(ValueError, match=r"target shape \(4,\).*input shape \(4, 1\)"):
        getattr(F, name)(x, np.full(4, 0.5))


@pytest.mark.parametrize("name", [*ELEMENTWISE, "nll_loss"])
def test_unknown_reduction_is_refused(name):
    x = nb.tensor(np.full((4, 2), 0.5))
    target = np.zeros(4, dtype=np.int64) if name == "nll_loss" else np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        getattr(F, name)(x, target, reduction="avg")


def test_gaussian_nll_unknown_reduction_and_huber_delta_are_refused():
    x = nb.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.gaussian_nll_loss(x, x, x, reduction="batchmean")
    with pytest.raises(ValueError, match="delta must be positive"):
        F.huber_loss(x, x, delta=0.0)


def test_bce_refuses_probabilities_outside_0_1():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.binary_cross_entropy(nb.tensor([0.5, 1.5]), [1.0, 0.0])


def test_nll_loss_checks_targets_and_handles_one_sample():
    log_p = nb.tensor(np.log(np.full((3, 4), 0.25)))
    with pytest.raises(ValueError, match=r"must have shape \(3,\), got \(4,\)"):
        F.nll_loss(log_p, np.zeros(4, dtype=np.int64))
    with pytest.raises(IndexError, match="target class 4 is out of range for 4 classes"):
        F.nll_loss(log_p, np.array([0, 4, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.nll_loss(log_p, np.zeros(3))
    z, tz = _both([-1.0, -2.0, -0.5])
    ours, theirs = (
        F.nll_loss(z, np.array(2), "none"),
        TF.nll_loss(tz, torch.tensor(2), reduction="none"),
    )
    assert ours.shape == tuple(theirs.shape) == ()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy())


def test_nll_of_log_softmax_is_cross_entropy():
    z = nb.tensor(np.random.default_rng(0).standard_normal((5, 3, 2)), dtype="float64")
    target = np.array([[0, 2], [1, 1], [2, 0], [0, 0], [1, 2]])
    np.testing.assert_allclose(
        F.nll_loss(F.log_softmax(z, axis=1), target).data, F.cross_entropy(z, target).data
    )


def test_losses_keep_float32_with_float64_constant_targets():
    x = nb.tensor([0.2, 0.7], requires_grad=True)
    target = np.array([0.0, 1.0])  # float64: cast to the input's dtype, not promoted
    for name in ELEMENTWISE:
        loss = getattr(F, name)(x, target)
        assert loss.dtype == np.float32, name
        loss.backward()
        assert x.grad.dtype == np.float32, name


def test_gaussian_nll_accepts_one_float_variance_like_torch():
    x, y = np.array([0.0, 1.0, 3.0]), np.array([1.0, 1.0, 0.0])
    ours = F.gaussian_nll_loss(nb.tensor(x), nb.tensor(y), 2.0, full=True)
    theirs = TF.gaussian_nll_loss(torch.from_numpy(x), torch.from_numpy(y), 2.0, full=True)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


def unnormalized_targets(shape, rng):
    """Probability-like targets whose rows (along the class axis) do not sum to 1: sums from
    0.3 to 2.5, and one all-zero row, where loss and gradient are 0 (mixing, masking)."""
    q = rng.uniform(0, 1, shape)
    q *= rng.uniform(0.3, 2.5, (shape[0], 1, *shape[2:])) / q.sum(axis=1, keepdims=True)
    q[1] = 0  # the second sample (every position of it)
    return q


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 2)], ids=["NC", "NCd"])
def test_cross_entropy_with_unnormalized_probability_targets(shape, reduction, smoothing):
    """dloss/dz = p sum_c q_c - q, which is p - q only where q sums to 1: against torch and
    against central differences, in float64."""
    rng = np.random.default_rng(4)
    logits, q = rng.standard_normal(shape) * 2, unnormalized_targets(shape, rng)
    assert not np.allclose(q.sum(axis=1), 1)

    def loss(z):
        return F.cross_entropy(z, q, reduction, label_smoothing=smoothing)

    z, t = _both(logits)
    ours = loss(z)
    theirs = TF.cross_entropy(
        t, torch.from_numpy(q), reduction=reduction, label_smoothing=smoothing
    )
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    cotangent = rng.standard_normal(ours.shape)
    ours.backward(cotangent)
    theirs.backward(torch.from_numpy(cotangent))
    np.testing.assert_allclose(z.grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)
    if smoothing == 0:  # the all-zero row: no loss, no gradient
        assert np.all(z.grad[1] == 0)
    assert nb.gradcheck(loss, nb.tensor(logits, requires_grad=True), atol=1e-7, rtol=1e-5)
