"""Cross-entropy and nll_loss details that test_losses.py and the op table leave open (found by
mutation testing, issue 21), against torch.nn.functional in float64: the documented defaults,
every reduction with label smoothing on class-index targets, one unbatched sample, dtypes kept,
the exact bounds of argument validation, and what each error message names. The elementwise
likelihood losses: test_loss_likelihood.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import against_torch, both, match

import nabla as nb
import nabla.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


# --- cross-entropy: class indices, smoothing, reductions ------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "shape", [(5, 4), (4, 3, 5), (3, 4, 2, 3), (1, 3, 1)], ids=["NC", "NCd", "NCdd", "1C1"]
)
def test_cross_entropy_class_targets_match_torch(shape, reduction, smoothing):
    """Both index paths (a fancy index for (N, C), take_along_axis beyond), each reduction's
    forward and VJP, and smoothing from none to full (where the target is ignored). Sizes of 1
    pin the loss shape of reduction="none" (no dimension but the class axis is squeezed)."""
    rng = np.random.default_rng(1)
    target = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    against_torch(
        lambda z: F.cross_entropy(z, target, reduction, label_smoothing=smoothing),
        lambda z: TF.cross_entropy(
            z, torch.from_numpy(target), reduction=reduction, label_smoothing=smoothing
        ),
        rng.standard_normal(shape) * 3,
    )


@pytest.mark.parametrize("smoothing", [0.0, 1.0])
@pytest.mark.parametrize("kind", ["index", "probs"])
def test_cross_entropy_is_finite_for_huge_logits_of_both_signs(kind, smoothing):
    """log-softmax shifts each sample (and position) by its own max: rows near +1000 and -1000
    in one batch would overflow or underflow under one shared shift. label_smoothing=1 makes
    any target, probabilities too, the uniform one."""
    logits = np.array([[1000.0, 999.0, 990.0], [-1000.0, -1001.0, -1003.0], [0.5, -0.5, 0.0]])
    # probability rows that do not sum to 1 (the gradient is p sum(q) - q, not p - q)
    probs = np.array([[0.2, 0.5, 0.1], [0.0, 0.0, 0.0], [0.7, 0.9, 0.3]])
    target = np.array([1, 0, 2]) if kind == "index" else probs
    against_torch(
        lambda z: F.cross_entropy(z, target, "none", label_smoothing=smoothing),
        lambda z: TF.cross_entropy(
            z, torch.from_numpy(target), reduction="none", label_smoothing=smoothing
        ),
        logits,
    )


def test_cross_entropy_defaults_are_torch_defaults():
    """reduction="mean" and label_smoothing=0, as torch."""
    rng = np.random.default_rng(2)
    target = rng.integers(0, 3, 6)
    against_torch(
        lambda z: F.cross_entropy(z, target),
        lambda z: TF.cross_entropy(z, torch.from_numpy(target)),
        rng.standard_normal((6, 3)),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "probs"])
def test_cross_entropy_of_one_unbatched_sample_matches_torch(reduction, kind):
    """(C,) logits with a scalar index or a (C,) distribution: torch's unbatched form, with a
    0-d loss for every reduction."""
    target = np.array(1) if kind == "index" else np.array([0.1, 0.2, 0.3, 0.4])
    against_torch(
        lambda z: F.cross_entropy(z, target, reduction, label_smoothing=0.2),
        lambda z: TF.cross_entropy(
            z, torch.from_numpy(target), reduction=reduction, label_smoothing=0.2
        ),
        [0.3, -1.2, 2.0, 0.1],
    )


def test_cross_entropy_target_forms():
    """A Tensor or a list of indices, unsigned indices, the edge classes 0 and C - 1; float32
    probabilities are cast to the logits' float64 (not promoted, not refused)."""
    rng = np.random.default_rng(3)
    logits, q = rng.standard_normal((4, 3)), rng.dirichlet(np.ones(3), 4).astype(np.float32)
    z, t = both(logits)
    theirs = TF.cross_entropy(t, torch.tensor([2, 0, 1, 0]))
    for target in (nb.tensor([2, 0, 1, 0]), [2, 0, 1, 0], np.array([2, 0, 1, 0], np.uint8)):
        match(F.cross_entropy(z, target), theirs)
    ours = F.cross_entropy(z, nb.tensor(q))
    assert ours.dtype == np.float64
    match(ours, TF.cross_entropy(t, torch.from_numpy(q).double()))


def test_cross_entropy_label_smoothing_bounds_are_inclusive():
    """label_smoothing in [0, 1]: both ends accepted (torch too), just outside refused."""
    z, target = nb.tensor(np.zeros((2, 3)), dtype="float64"), np.array([0, 2])
    for eps in (0.0, 1.0):
        assert np.isfinite(F.cross_entropy(z, target, label_smoothing=eps).item())
    for eps in (-1e-9, 1.0 + 1e-9):
        with pytest.raises(ValueError, match=rf"cross_entropy: label_smoothing .*\[0, 1\].*{eps}"):
            F.cross_entropy(z, target, label_smoothing=eps)


def test_cross_entropy_refuses_bad_arguments_with_messages():
    """Each mistake is named with the values involved: the reduction, a 0-d logit, misshaped
    index or probability targets, out-of-range classes (the first bad one), other dtypes."""
    z = nb.tensor(np.zeros((3, 4)), dtype="float64")
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be one of .*'avg'"):
        F.cross_entropy(z, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be \(N, C, \.\.\.\), got"):
        F.cross_entropy(nb.tensor(1.0), np.array(0))
    with pytest.raises(ValueError, match=r"logits' shape \(3, 4\), got \(3, 3\)"):
        F.cross_entropy(z, np.full((3, 3), 0.25))
    with pytest.raises(ValueError, match=r"for logits \(3, 4\) must have shape \(3,\), got \(4,\)"):
        F.cross_entropy(z, np.zeros(4, dtype=np.int64))
    with pytest.raises(IndexError, match="cross_entropy: target class 4 is out of range for 4"):
        F.cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(IndexError, match="cross_entropy: target class -1 is out of range for 4"):
        F.cross_entropy(z, np.array([0, -1, 3]))
    with pytest.raises(
        TypeError,
        match=r"^cross_entropy: target must hold class indices or probabilities, got bool$",
    ):
        F.cross_entropy(z, np.array([True, False, True]))


# --- nll_loss ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "shape", [(5, 4), (3, 4, 2, 3), (1, 3, 1), (4,)], ids=["NC", "NCdd", "1C1", "C"]
)
def test_nll_loss_matches_torch(shape, reduction):
    """(N, C), (N, C, d1, d2), size-1 dimensions (only the class axis is squeezed), one (C,)."""
    rng = np.random.default_rng(6)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target = rng.integers(0, classes, (shape[0], *shape[2:]))
    target = target[0] if len(shape) == 1 else target
    against_torch(
        lambda z: F.nll_loss(z, nb.tensor(target), reduction),
        lambda z: TF.nll_loss(z, torch.from_numpy(np.asarray(target)), reduction=reduction),
        rng.standard_normal(shape),
    )


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy", "probabilities"])
def test_class_losses_keep_float32(name):
    """float32 scores give a float32 loss and a float32 gradient (the gradient buffer takes the
    output gradient's dtype; float32 probability targets stay float32)."""
    z = nb.tensor(np.random.default_rng(14).standard_normal((3, 4)), requires_grad=True)
    if name == "probabilities":
        loss = F.cross_entropy(z, np.full((3, 4), 0.25, dtype=np.float32))
    else:
        loss = getattr(F, name)(z, np.array([0, 3, 1]))
    assert loss.dtype == np.float32
    loss.backward()
    assert z.grad.dtype == np.float32


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
def test_class_index_losses_of_an_empty_batch_match_torch(name):
    """No samples: the range check is skipped (min/max of nothing), the sum is 0, as torch."""
    target = np.zeros(0, dtype=np.int64)
    ours = getattr(F, name)(nb.tensor(np.zeros((0, 3)), dtype="float64"), target, "sum")
    theirs = getattr(TF, name)(
        torch.zeros((0, 3), dtype=torch.float64), torch.from_numpy(target), reduction="sum"
    )
    match(ours, theirs)


def test_nll_loss_refuses_bad_arguments_with_messages():
    """Each error names the function and the values at fault (the first bad class)."""
    z = nb.tensor(np.zeros((3, 4)), dtype="float64")
    with pytest.raises(ValueError, match=r"nll_loss: reduction must be one of .*'avg'"):
        F.nll_loss(z, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(TypeError, match=r"nll_loss: target must hold integer class indices.*float"):
        F.nll_loss(z, np.zeros(3))
    with pytest.raises(ValueError, match=r"nll_loss: log_probs must be \(N, C, \.\.\.\), got"):
        F.nll_loss(nb.tensor(1.0), np.array(0))
    with pytest.raises(ValueError, match=r"nll_loss: target for log_probs \(3, 4\) must have"):
        F.nll_loss(z, np.zeros((3, 1), dtype=np.int64))
    for target, bad in (([0, -2, 7], -2), ([0, 4, 1], 4), ([-1, 0, 1], -1)):
        with pytest.raises(IndexError, match=f"nll_loss: target class {bad} is out of range for 4"):
            F.nll_loss(z, np.array(target))
    # the edge classes are in range; unsigned and list targets work; the default is the mean
    for target in (np.array([0, 3, 1]), np.array([3, 0, 2], dtype=np.uint8), [0, 3, 1]):
        assert F.nll_loss(z - nb.tensor(np.eye(3, 4)), target).item() == pytest.approx(1 / 3)
