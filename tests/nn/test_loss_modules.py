"""Loss modules equal torch.nn's; the L2 penalty and ensembles do what their math says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import nn

rng = np.random.default_rng(0)
X = rng.standard_normal((6, 4))
Y_REAL = rng.standard_normal((6, 4))
Y_BIN = (rng.random((6, 4)) > 0.5).astype(float)
Y_CLASS = np.array([0, 3, 1, 2, 2, 1])
P = 1 / (1 + np.exp(-X))
VAR = rng.uniform(0.5, 2.0, (6, 4))

PAIRS = [
    (
        nn.CrossEntropyLoss(label_smoothing=0.1),
        torch.nn.CrossEntropyLoss(label_smoothing=0.1),
        X,
        Y_CLASS,
    ),
    (
        nn.NLLLoss(reduction="sum"),
        torch.nn.NLLLoss(reduction="sum"),
        np.log(P / P.sum(1, keepdims=True)),
        Y_CLASS,
    ),
    (nn.MSELoss(), torch.nn.MSELoss(), X, Y_REAL),
    (nn.L1Loss(reduction="none"), torch.nn.L1Loss(reduction="none"), X, Y_REAL),
    (nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), X, Y_REAL),
    (nn.BCELoss(), torch.nn.BCELoss(), P, Y_BIN),
    (nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), X, Y_BIN),
]


@pytest.mark.parametrize(
    ("ours", "theirs", "x", "y"), PAIRS, ids=[type(p[0]).__name__ for p in PAIRS]
)
def test_loss_modules_match_torch(ours, theirs, x, y):
    xa, xt = nb.tensor(x, dtype="float64", requires_grad=True), torch.tensor(x, requires_grad=True)
    la, lt = ours(xa, nb.tensor(y) if y.dtype.kind == "i" else y), theirs(xt, torch.tensor(y))
    np.testing.assert_allclose(la.data, lt.detach().numpy(), rtol=1e-10)
    la.sum().backward()
    lt.sum().backward()
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert repr(ours) == repr(theirs)


def test_gaussian_nll_module_matches_torch():
    ours, theirs = nn.GaussianNLLLoss(full=True), torch.nn.GaussianNLLLoss(full=True)
    la = ours(nb.tensor(X, dtype="float64"), Y_REAL, VAR)
    lt = theirs(torch.tensor(X), torch.tensor(Y_REAL), torch.tensor(VAR))
    np.testing.assert_allclose(la.item(), lt.item(), rtol=1e-12)


def test_l2_penalty_gradient_is_weight_decay_on_trainable_weights():
    nb.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[2].requires_grad_(False)
    penalty = nn.l2_penalty(model)
    np.testing.assert_allclose(penalty.item(), 0.5 * (model[0].weight.data ** 2).sum(), rtol=1e-6)
    (0.1 * penalty).backward()
    np.testing.assert_allclose(model[0].weight.grad, 0.1 * model[0].weight.data, rtol=1e-6)
    assert model[0].bias.grad is None and model[2].weight.grad is None
    with_biases = nn.l2_penalty(model, include_biases=True).item()
    assert with_biases == pytest.approx(
        penalty.item() + 0.5 * (model[0].bias.data ** 2).sum(), rel=1e-6
    )


def test_ensemble_averages_probabilities_or_logits():
    nb.manual_seed(0)
    members = [nn.Linear(4, 3) for _ in range(3)]
    x = nb.randn(5, 4)
    logits = [m(x).data for m in members]
    probs = [np.exp(z) / np.exp(z).sum(1, keepdims=True) for z in logits]
    np.testing.assert_allclose(nn.Ensemble(members)(x).data, np.mean(probs, axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        nn.Ensemble(members, mode="logits")(x).data, np.mean(logits, axis=0), rtol=1e-5
    )
    ensemble = nn.Ensemble(members)
    assert len(list(ensemble.parameters())) == 6 and "models.2.bias" in ensemble.state_dict()
    with pytest.raises(ValueError, match="mode"):
        nn.Ensemble(members, mode="vote")
