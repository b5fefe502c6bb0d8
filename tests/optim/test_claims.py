"""The lecture's claims about the optimizers, and the choices nabla documents, checked live.

Every reference here is computed from the formula in NumPy (or with nabla's autograd for a
gradient), never pasted in as a number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import models, optim
from nabla.nn import functional as F


def quadratic(n: int = 6, condition: float = 10.0, seed: int = 0):
    """A, b of f(x) = 0.5 x^T A x - b^T x, with A SPD of the given condition number."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.linspace(1.0, condition, n)) @ q.T
    return a, rng.normal(size=n)


def velocity(opt, name: str) -> np.ndarray:
    return opt.state_dict()["state"][name]["velocity"]


# --- Nesterov -----------------------------------------------------------------------------------


def test_nesterov_is_the_look_ahead_method_on_a_quadratic():
    """The look-ahead method of Sutskever et al. (2013),

        v_{t+1} = beta v_t - alpha grad f(theta_t + beta v_t),   theta_{t+1} = theta_t + v_{t+1},

    rewritten for phi_t = theta_t + beta v_t gives

        v_{t+1} = beta v_t - alpha grad f(phi_t),
        phi_{t+1} = phi_t + beta v_{t+1} - alpha grad f(phi_t),

    which is nabla's Nesterov update. So, starting from v_0 = 0 (phi_0 = theta_0), nabla's
    parameters after t steps are the look-ahead points phi_t = theta_t + beta v_t of the original
    method (not its theta_t), and nabla's velocity buffer is the same v_t.
    """
    a, b = quadratic()
    alpha, beta = 0.05, 0.9
    theta0 = np.random.default_rng(1).normal(size=len(b))
    x = nb.tensor(theta0, dtype="float64", requires_grad=True)
    opt = optim.SGD([("x", x)], lr=alpha, momentum=beta, nesterov=True)

    theta, v = theta0.copy(), np.zeros_like(theta0)
    differs_from_theta = False
    for _ in range(60):
        # the original method, by hand: gradient at the look-ahead point
        v = beta * v - alpha * (a @ (theta + beta * v) - b)
        theta = theta + v
        # nabla: gradient at its own parameters
        x.grad[...] = a @ x.data - b
        opt.step()
        np.testing.assert_allclose(x.data, theta + beta * v, rtol=0, atol=1e-10)
        np.testing.assert_allclose(velocity(opt, "x"), v, rtol=0, atol=1e-10)
        differs_from_theta |= not np.allclose(x.data, theta, rtol=0, atol=1e-6)
    assert differs_from_theta  # the sequences that coincide are phi_t, not theta_t


def test_nesterov_is_the_look_ahead_method_on_an_mlp():
    """Same identity on a small MLP: the reference evaluates the minibatch gradient at the
    look-ahead point theta + beta v with nabla's autograd on a second copy of the network."""
    alpha, beta, steps = 0.05, 0.9, 60
    nb.manual_seed(0)
    model = models.mlp([5, 8, 3]).double()
    probe = models.mlp([5, 8, 3]).double()  # evaluates gradients at the look-ahead point
    opt = optim.SGD(model.named_parameters(), lr=alpha, momentum=beta, nesterov=True)
    theta = {k: t.data.copy() for k, t in model.state_dict().items()}
    v = {k: np.zeros_like(w) for k, w in theta.items()}

    rng = np.random.default_rng(2)
    for _ in range(steps):
        x = nb.tensor(rng.normal(size=(16, 5)), dtype="float64")
        y = nb.tensor(rng.integers(0, 3, size=16))

        probe.load_state_dict({k: theta[k] + beta * v[k] for k in theta})
        probe.zero_grad()
        F.cross_entropy(probe(x), y).backward()
        grads = {k: p.grad.copy() for k, p in probe.named_parameters()}
        for k in theta:
            v[k] = beta * v[k] - alpha * grads[k]
            theta[k] = theta[k] + v[k]

        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        for k, p in model.named_parameters():
            np.testing.assert_allclose(p.data, theta[k] + beta * v[k], rtol=0, atol=1e-10)
            np.testing.assert_allclose(velocity(opt, k), v[k], rtol=0, atol=1e-10)


# --- momentum under a changing learning rate ------------------------------------------------------


def momentum_runs(lrs, beta=0.9, seed=0):
    """Momentum SGD on a quadratic with the learning rate set by hand before each step, in nabla,
    in torch, and by the documented formula v <- beta v - alpha_t g, theta <- theta + v."""
    a, b = quadratic(seed=seed)
    theta0 = np.random.default_rng(seed + 1).normal(size=len(b))
    x = nb.tensor(theta0, dtype="float64", requires_grad=True)
    xt = torch.tensor(theta0, requires_grad=True)
    opt = optim.SGD([x], lr=lrs[0], momentum=beta)
    torch_opt = torch.optim.SGD([xt], lr=lrs[0], momentum=beta)
    theta, v = theta0.copy(), np.zeros_like(theta0)
    ours, theirs, by_hand = [], [], []
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        torch_opt.param_groups[0]["lr"] = lr
        x.grad[...] = a @ x.data - b
        xt.grad = torch.from_numpy(a @ xt.detach().numpy() - b)
        opt.step()
        torch_opt.step()
        v = beta * v - lr * (a @ theta - b)
        theta = theta + v
        ours.append(x.data.copy())
        theirs.append(xt.detach().numpy().copy())
        by_hand.append(theta.copy())
    return np.array(ours), np.array(theirs), np.array(by_hand)


def test_momentum_agrees_with_torch_at_a_constant_lr():
    ours, theirs, by_hand = momentum_runs([0.05] * 40)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours, by_hand, rtol=1e-12, atol=1e-12)


def test_momentum_differs_from_torch_after_an_lr_change():
    """nabla keeps v <- beta v - alpha_t g (old velocity keeps the rate it was made with); torch
    keeps v' <- beta v' + g and steps alpha_t v', rescaling all past gradients by the new rate."""
    lrs = [0.05] * 20 + [0.005] * 20
    ours, theirs, by_hand = momentum_runs(lrs)
    np.testing.assert_allclose(ours, by_hand, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours[:20], theirs[:20], rtol=1e-12, atol=1e-12)
    # the first step at the new rate already differs: nabla moves by beta v, torch by beta v / 10
    gap = np.abs(ours[20] - theirs[20]).max() / np.abs(ours[20] - ours[19]).max()
    assert gap > 0.1


def test_momentum_with_a_schedule_follows_the_documented_formula():
    """With lr a schedule, step t (counting from 0) uses alpha_t = schedule(t)."""
    a, b = quadratic()
    beta = 0.9

    def schedule(step):
        return 0.05 * 0.9**step

    theta = np.random.default_rng(3).normal(size=len(b))
    x = nb.tensor(theta, dtype="float64", requires_grad=True)
    opt = optim.SGD([x], lr=schedule, momentum=beta)
    v = np.zeros_like(theta)
    for t in range(30):
        x.grad[...] = a @ x.data - b
        opt.step()
        assert opt.lr == schedule(t)
        v = beta * v - schedule(t) * (a @ theta - b)
        theta = theta + v
        np.testing.assert_allclose(x.data, theta, rtol=1e-12, atol=1e-12)


# --- AdaGrad ------------------------------------------------------------------------------------


def test_adagrad_step_decays_like_one_over_sqrt_t():
    """Under a constant gradient g, r_t = t g^2 so step_t = alpha |g| / (sqrt(t) |g| + eps)
    = alpha / sqrt(t) up to eps: step_t sqrt(t) / alpha = 1 within 1e-6 for t = 1..1000."""
    alpha, steps = 0.1, 1000
    g = np.array([1e-3, 0.5, -2.0, 3e3])
    x = nb.tensor(np.zeros_like(g), dtype="float64", requires_grad=True)
    opt = optim.AdaGrad([x], lr=alpha)
    previous, ratios = x.data.copy(), np.empty((steps, len(g)))
    for t in range(1, steps + 1):
        x.grad[...] = g
        opt.step()
        ratios[t - 1] = np.abs(x.data - previous) * math.sqrt(t) / alpha
        previous = x.data.copy()
    np.testing.assert_allclose(ratios, 1.0, rtol=1e-6)
    assert np.all(np.sign(x.data) == -np.sign(g))


# --- Adam's bias correction ---------------------------------------------------------------------


def first_adam_step(g: np.ndarray, **kwargs) -> np.ndarray:
    x = nb.tensor(np.zeros_like(g), dtype="float64", requires_grad=True)
    opt = optim.Adam([x], **kwargs)
    x.grad[...] = g
    opt.step()
    return -x.data


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_adam_first_step_is_alpha_whatever_the_gradient_scale(scale):
    """With bias correction, s_hat_1 = g and r_hat_1 = g^2, so the first step is
    alpha g / (|g| + eps): magnitude alpha per coordinate when eps << |g|."""
    alpha = 1e-3
    g = scale * np.array([0.3, -1.0, 2.5, -7.0])
    step = first_adam_step(g, lr=alpha, eps=1e-20)
    np.testing.assert_allclose(np.abs(step), alpha, rtol=1e-6)
    assert np.all(np.sign(step) == np.sign(g))
    # with the default eps = 1e-8 a gradient of 1e-6 already feels it:
    # step = alpha |g| / (|g| + eps)
    default = first_adam_step(g, lr=alpha)
    np.testing.assert_allclose(np.abs(default), alpha * np.abs(g) / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adam_first_step_without_bias_correction():
    """Without bias correction the first step is alpha (1 - beta1) / sqrt(1 - beta2):
    3.16 alpha for the default betas (0.9, 0.999), and 1 / sqrt(1 - beta2) = 31.6 alpha with
    beta1 = 0 (no momentum), whatever the gradient's scale."""
    alpha = 1e-3
    g = np.array([1e-4, -1.0, 1e4])
    step = first_adam_step(g, lr=alpha, eps=1e-20, bias_correction="none")
    expected = alpha * (1 - 0.9) / math.sqrt(1 - 0.999)
    np.testing.assert_allclose(np.abs(step), expected, rtol=1e-9)
    assert expected / alpha == pytest.approx(3.16, abs=0.01)

    step = first_adam_step(g, lr=alpha, eps=1e-20, beta1=0.0, bias_correction="none")
    expected = alpha / math.sqrt(1 - 0.999)
    np.testing.assert_allclose(np.abs(step), expected, rtol=1e-9)
    assert expected / alpha == pytest.approx(31.6, abs=0.05)


def adam_trajectory(steps: int = 100, **kwargs) -> np.ndarray:
    """Adam on a quadratic whose gradients are small (so eps matters when it is large)."""
    a, b = quadratic()
    x = nb.tensor(np.ones(len(b)), dtype="float64", requires_grad=True)
    opt = optim.Adam([x], **kwargs)
    path = []
    for _ in range(steps):
        x.grad[...] = 1e-3 * (a @ x.data - b)
        opt.step()
        path.append(x.data.copy())
    return np.array(path)


def test_adam_folded_and_explicit_bias_correction_differ_only_in_eps():
    """alpha s_hat / sqrt(r_hat) = alpha_t s / sqrt(r)
    with alpha_t = alpha sqrt(1-beta2^t)/(1-beta1^t):
    with eps = 0 the two forms give the same trajectory. With eps > 0, folded(eps_hat) divides by
    sqrt(r) + eps_hat = sqrt(1 - beta2^t) (sqrt(r_hat) + eps_hat / sqrt(1 - beta2^t)), so it is the
    explicit form with eps_t = eps_hat / sqrt(1 - beta2^t) (given here as an eps schedule)."""
    explicit = adam_trajectory(lr=1e-2, eps=0.0, bias_correction="explicit")
    folded = adam_trajectory(lr=1e-2, eps=0.0, bias_correction="folded")
    np.testing.assert_allclose(folded, explicit, rtol=1e-12, atol=1e-14)

    eps, beta2 = 1e-4, 0.999
    folded = adam_trajectory(lr=1e-2, eps=eps, bias_correction="folded")
    explicit = adam_trajectory(lr=1e-2, eps=eps, bias_correction="explicit")
    matched = adam_trajectory(
        lr=1e-2,
        eps=lambda step: eps / math.sqrt(1 - beta2 ** (step + 1)),  # step counts from 0, t from 1
        bias_correction="explicit",
    )
    np.testing.assert_allclose(folded, matched, rtol=1e-12, atol=1e-14)
    assert np.abs(folded - explicit).max() > 1e-4  # eps placement is not a rounding detail here


# --- AdamW vs Adam + L2 -------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [1e-2, 1.0, 1e2])
def test_adamw_decays_by_a_constant_factor_adam_l2_moves_by_lr(magnitude):
    """With a loss whose gradient is zero (0 * sum(theta)), AdamW's only force is the decoupled
    decay: theta <- (1 - lr wd) theta exactly, every step. Adam(weight_decay) adds wd theta to the
    gradient instead, and the adaptive denominator rescales it: the first step is
    lr g / (|g| + eps) with g = wd theta, i.e. ~lr per coordinate whatever theta's magnitude."""
    lr, wd = 1e-2, 0.1
    theta0 = magnitude * np.array([1.0, -0.5, 2.0])

    w = nb.tensor(theta0, dtype="float64", requires_grad=True)
    opt = optim.AdamW([w], lr=lr, weight_decay=wd)
    expected = theta0.copy()
    for _ in range(20):
        opt.zero_grad()
        (w * 0.0).sum().backward()
        opt.step()
        expected *= 1 - lr * wd
        np.testing.assert_array_equal(w.data, expected)

    w = nb.tensor(theta0, dtype="float64", requires_grad=True)
    opt = optim.Adam([w], lr=lr, weight_decay=wd)
    (w * 0.0).sum().backward()
    opt.step()
    g = wd * theta0
    np.testing.assert_allclose(theta0 - w.data, lr * g / (np.abs(g) + 1e-8), rtol=1e-9)
    np.testing.assert_allclose(theta0 - w.data, lr * np.sign(theta0), rtol=1e-4)
