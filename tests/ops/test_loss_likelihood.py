"""Details of the elementwise likelihood losses (nabla/ops/likelihood_losses.py: mse, l1, huber,
gaussian_nll, binary cross-entropy with and without logits) that test_losses.py leaves open (found
by mutation testing, issue 21), against torch.nn.functional in float64 where torch has the case:
defaults, reductions, dtypes kept, validation bounds, and the exact text of each error message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import against_torch, both, match

import nabla as nb
import nabla.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


# --- the elementwise likelihood losses -----------------------------------------------------------


def _pair(seed, shape=(4, 3)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_regression_losses_match_torch_for_input_and_target(name, reduction):
    """Forward and both gradients (the target is differentiable, as in torch) per reduction;
    differences of 2-4 reach Huber's linear tails at the default delta."""
    against_torch(
        lambda x, y: getattr(F, name)(x, y, reduction),
        lambda x, y: getattr(TF, name)(x, y, reduction=reduction),
        *_pair(7),
    )


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_regression_losses_default_to_mean_and_huber_to_delta_1(name):
    """The one-argument call is torch's: reduction "mean", Huber's delta 1 (differences on both
    sides of 1 and of nearby deltas)."""
    x = [0.0, 0.5, -0.9, 1.5, -3.0, 0.99, 1.01]
    against_torch(getattr(F, name), getattr(TF, name), x, np.zeros(7))


@pytest.mark.parametrize("delta", [0.25, 1.0, 2.5])
def test_huber_loss_matches_torch_at_and_around_delta(delta):
    """|x - y| below, equal to and above delta (the two pieces meet with equal value and slope)."""
    diffs = np.array([0.0, 0.5, -0.999, 1.0, -1.0, 1.001, 3.0, -7.0]) * delta
    against_torch(
        lambda x, y: F.huber_loss(x, y, "none", delta=delta),
        lambda x, y: TF.huber_loss(x, y, reduction="none", delta=delta),
        diffs + 0.5,
        np.full(8, 0.5),
    )


def test_huber_delta_must_be_positive():
    """delta > 0 exactly: 0 and below refused with the value, any positive delta accepted."""
    x = nb.tensor([1.0, 3.0], dtype="float64")
    for delta in (0.0, -1.0):
        with pytest.raises(ValueError, match=rf"huber_loss: delta must be positive, got {delta}"):
            F.huber_loss(x, x, delta=delta)
    # a tiny and a fractional delta are valid (torch accepts any delta > 0)
    for delta in (1e-9, 0.5):
        assert F.huber_loss(x, nb.tensor([0.0, 0.0], dtype="float64"), delta=delta).item() > 0


def test_l1_gradient_is_zero_at_a_tie_like_torch():
    """sign(0) = 0: no gradient where input equals target (torch's subgradient)."""
    x = nb.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    F.l1_loss(x, [1.0, 0.0], "sum").backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0])


def test_likelihood_losses_name_themselves_in_their_errors():
    """Each error names the loss that was called (not a helper) and the values at fault: a
    non-Tensor input's type, an unknown reduction, a target of another shape."""
    x = nb.tensor(np.full((4, 1), 0.5))
    for name in ("mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy", "gaussian_nll_loss"):
        var = (np.ones((4, 1)),) if name == "gaussian_nll_loss" else ()
        with pytest.raises(TypeError, match=rf"^{name}: input must be a Tensor, got ndarray"):
            getattr(F, name)(np.full(3, 0.5), np.full(3, 0.5), *var)
        with pytest.raises(ValueError, match=rf"^{name}: reduction must be one of .*'avg'"):
            getattr(F, name)(x, np.full((4, 1), 0.5), *var, reduction="avg")
        with pytest.raises(
            ValueError,
            match=rf"^{name}: target shape \(4,\) must equal input shape \(4, 1\) \(broadcasting "
            r"between them is refused; reshape one explicitly\)$",
        ):
            getattr(F, name)(x, np.full(4, 0.5), *var)
    with pytest.raises(TypeError, match=r"^binary_cross_entropy_with_logits: input must be"):
        F.binary_cross_entropy_with_logits([0.5], [1.0])


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy"])
def test_a_float64_tensor_target_is_cast_to_a_float32_input(name):
    """A differentiable target of another float dtype is cast to the input's (a float32 loss)
    and still gets its gradient, in its own dtype."""
    x = nb.tensor([0.2, 0.7, 0.4], requires_grad=True)
    y = nb.tensor([0.0, 1.0, 0.5], dtype="float64", requires_grad=True)
    loss = getattr(F, name)(x, y)
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64
    tx, ty = torch.tensor([0.2, 0.7, 0.4], requires_grad=True), torch.tensor([0.0, 1.0, 0.5])
    theirs = getattr(TF, name)(tx, ty.requires_grad_())
    theirs.backward()
    np.testing.assert_allclose(loss.data, theirs.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-5)


def test_integer_inputs_list_targets_and_float64_pos_weights_keep_float32():
    """An integer input is promoted to float32 (torch refuses it; we follow ``floating``), a list
    target takes the input's dtype, and so does a float64 pos_weight."""
    loss = F.mse_loss(nb.tensor([1, 2, 3]), [1.0, 0.0, 5.0], "none")
    assert loss.dtype == np.float32
    np.testing.assert_array_equal(loss.data, [0.0, 4.0, 4.0])
    x = nb.tensor([[-2.0, 0.5], [3.0, -0.1]], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, np.ones((2, 2)), pos_weight=np.array([2.0, 0.5]))
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32


# --- gaussian_nll_loss --------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_nll_matches_torch_with_gradients_for_all_three(reduction, full):
    against_torch(
        lambda x, y, v: F.gaussian_nll_loss(x, y, v, full=full, reduction=reduction),
        lambda x, y, v: TF.gaussian_nll_loss(x, y, v, full=full, reduction=reduction),
        *_pair(8),
        np.random.default_rng(8).uniform(0.2, 3, (4, 3)),
    )


def test_gaussian_nll_defaults_are_torch_defaults():
    """full=False, eps=1e-6, reduction="mean": variances below, at and just above 1e-6 tell eps
    apart from any nearby value, and the result differs from full=True by 0.5 log(2 pi)."""
    x, y, var = [0.0, 2e-3, 2e-3, -3e-3, 0.5], np.zeros(5), [1e-8, 1e-6, 1.5e-6, 5e-7, 1.0]
    ours = against_torch(F.gaussian_nll_loss, TF.gaussian_nll_loss, x, y, var, rtol=1e-13)
    full = F.gaussian_nll_loss(*(nb.tensor(a, dtype="float64") for a in (x, y, var)), full=True)
    np.testing.assert_allclose(full.item() - ours.item(), 0.5 * math.log(2 * math.pi), rtol=1e-12)


@pytest.mark.parametrize(
    "shape, var_shape",
    [((4, 3), (4, 1)), ((4, 3), (4,)), ((2, 3, 4), (2, 3, 1)), ((2, 3, 4), (2, 3))],
    ids=["last-1", "last-dropped", "3d-last-1", "3d-last-dropped"],
)
def test_gaussian_nll_one_variance_per_sample_matches_torch(shape, var_shape):
    """Only the last dimension may be 1 or dropped: 3-d inputs tell "all but the last" from
    "the first" dimensions apart."""
    against_torch(
        lambda x, y, v: F.gaussian_nll_loss(x, y, v, reduction="none"),
        lambda x, y, v: TF.gaussian_nll_loss(x, y, v, reduction="none"),
        *_pair(9, shape),
        np.random.default_rng(9).uniform(0.5, 2, var_shape),
    )


def test_gaussian_nll_takes_an_int_variance_and_a_0d_input():
    """A Python int var is one variance for every element; a 0-d input takes a 0-d var."""
    x, y = _pair(10)
    ours = F.gaussian_nll_loss(nb.tensor(x, dtype="float64"), y, 2)
    # torch takes only a float here (an int fails inside it); 2 must mean 2.0
    match(ours, TF.gaussian_nll_loss(torch.from_numpy(x), torch.from_numpy(y), 2.0))
    # torch fails on a 0-d var (torch.any of a bool): the closed form is the reference
    x, var = nb.tensor(1.5, dtype="float64"), nb.tensor(0.25, dtype="float64")
    loss = F.gaussian_nll_loss(x, 0.5, var)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), 0.5 * (math.log(0.25) + 1.0 / 0.25), rtol=1e-14)


def test_gaussian_nll_var_validation_messages():
    """Misfitting var shapes name both shapes; any negative entry is refused; 0 is allowed."""
    x, y = nb.tensor(np.zeros((4, 3))), np.ones((4, 3))
    with pytest.raises(ValueError, match=r"^gaussian_nll_loss: var shape \(4, 2\) does not fit"):
        F.gaussian_nll_loss(x, y, np.ones((4, 2)))
    with pytest.raises(
        ValueError,
        match=r"var shape \(2, 1\) does not fit input shape \(4, 3\) \(the same shape, the last "
        r"dimension 1, or the last dimension dropped\)$",
    ):
        F.gaussian_nll_loss(x, y, np.ones((2, 1)))
    for var in (np.array([1.0, 1.0, -1e-3, 1.0]), -1.0):
        with pytest.raises(ValueError, match=r"^gaussian_nll_loss: var has a negative entry$"):
            F.gaussian_nll_loss(x, y, var)
    # var = 0 is allowed (clamped at eps), as in torch
    assert np.isfinite(F.gaussian_nll_loss(x, y, 0.0).item())


# --- binary cross-entropy -----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch_for_probs_and_target(reduction):
    """Forward and the gradients of probs and target (torch differentiates both)."""
    rng = np.random.default_rng(11)
    against_torch(
        lambda p, y: F.binary_cross_entropy(p, y, reduction),
        lambda p, y: TF.binary_cross_entropy(p, y, reduction=reduction),
        rng.uniform(0.05, 0.95, (4, 3)),
        rng.uniform(0, 1, (4, 3)),
    )


def test_bce_probs_bounds_are_inclusive_and_an_empty_batch_works():
    """probs in [0, 1] exactly (torch too); an empty batch skips the min/max check."""
    (p, tp), (y, ty) = both([0.0, 1.0, 0.5]), both([0.0, 1.0, 1.0])
    match(F.binary_cross_entropy(p, y), TF.binary_cross_entropy(tp, ty))
    for bad in (-1e-12, 1.0 + 1e-12):
        with pytest.raises(ValueError, match=r"^binary_cross_entropy: probs must lie in \[0, 1\]$"):
            F.binary_cross_entropy(nb.tensor([0.5, bad], dtype="float64"), [1.0, 0.0])
    assert F.binary_cross_entropy(nb.tensor(np.zeros(0)), np.zeros(0), "sum").item() == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits_matches_torch_for_logits_and_target(weighted, reduction):
    """Gradients for the target too (y is differentiable in torch), with and without pos_weight;
    logits of both signs and beyond +-20."""
    rng = np.random.default_rng(12)
    logits = rng.standard_normal((4, 3)) * 4
    logits[0] = [-30.0, 0.0, 30.0]
    weight = np.array([0.3, 1.0, 3.0]) if weighted else None
    torch_weight = None if weight is None else torch.from_numpy(weight)
    against_torch(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction, pos_weight=weight),
        lambda x, y: TF.binary_cross_entropy_with_logits(
            x, y, reduction=reduction, pos_weight=torch_weight
        ),
        logits,
        rng.uniform(0, 1, (4, 3)),
    )


def test_bce_with_logits_defaults_and_pos_weight_forms():
    """reduction "mean" and no pos_weight by default; pos_weight as a Tensor or a list, and one
    that does not broadcast against the logits is refused naming both shapes."""
    (x, tx), (y, ty) = both([[-2.0, 0.5], [3.0, -0.1]]), both([[1.0, 0.0], [0.3, 1.0]])
    match(F.binary_cross_entropy_with_logits(x, y), TF.binary_cross_entropy_with_logits(tx, ty))
    theirs = TF.binary_cross_entropy_with_logits(tx, ty, pos_weight=torch.tensor([2.0, 0.5]))
    for weight in (nb.tensor([2.0, 0.5]), [2.0, 0.5]):
        match(F.binary_cross_entropy_with_logits(x, y, pos_weight=weight), theirs)
    name, message = "binary_cross_entropy_with_logits", r"pos_weight shape \(3,\) does not"
    with pytest.raises(ValueError, match=rf"^{name}: {message} broadcast .* shape \(2, 2\)"):
        F.binary_cross_entropy_with_logits(x, y, pos_weight=np.ones(3))
