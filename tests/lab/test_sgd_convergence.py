"""The math behind sgd-convergence: its schedules' sums, optimum, theory and SGD loop."""

import math

import numpy as np
import pytest

import nabla as nb
from nabla.lab.experiments import sgd_convergence as sc
from nabla.optim import schedules


def small_problem(seed=0, n=60, d=5, classes=3):
    rng = np.random.default_rng(seed)
    return sc.ridge_problem(rng.normal(size=(n, d)), rng.integers(0, classes, size=n), lam=0.05)


def test_power_is_inverse_time_decay_at_p_1():
    keras = schedules.InverseTimeDecay(0.4, decay_steps=200, decay_rate=1.0)
    for t in (0, 1, 199, 200, 12_345):
        assert sc.Power(0.4, 200, 1)(t) == pytest.approx(keras(t), rel=1e-14)


@pytest.mark.parametrize(
    "p, square, integral",  # ∫_0^n (a0 (1 + t/T)^-p)^square dt (k = T)
    [
        (1.0, 1, lambda a, k, n: a * k * math.log(1 + n / k)),  # → ∞
        (1.0, 2, lambda a, k, n: a * a * k * n / (k + n)),  # < a² T
        (0.5, 2, lambda a, k, n: a * a * k * math.log(1 + n / k)),  # → ∞
        (2.0, 1, lambda a, k, n: a * k * n / (k + n)),  # < a T: summable
    ],
)
def test_schedule_sums_are_bracketed_by_their_integrals(p, square, integral):
    a0, steps, n = 0.4, 200, 1_000_000
    rates = sc.Power(a0, steps, p).rates(n) ** square
    exact = integral(a0, steps, n)  # a decreasing f: ∫_0^n f ≤ Σ_{t<n} f(t) ≤ f(0) + ∫_0^n f
    assert exact <= rates.sum() <= rates[0] + exact


def test_the_optimum_zeroes_the_gradient_that_sgd_follows():
    problem = small_problem()
    w = nb.tensor(problem.optimum, dtype="float64", requires_grad=True)
    x, y = (nb.tensor(a, dtype="float64") for a in (problem.x, problem.y))
    residual = nb.matmul(x, w) - y
    ((residual**2).sum() * (0.5 / len(problem.x))).backward()
    gradient = w.grad + problem.lam * problem.optimum  # weight_decay adds λW
    assert np.abs(gradient).max() < 1e-12
    assert problem.curvature.min() >= problem.lam - 1e-12  # strongly convex: a unique optimum


def test_the_spectrum_decomposes_the_distance_and_the_noise():
    problem = small_problem()
    assert problem.start.sum() == pytest.approx(np.sum(problem.optimum**2), rel=1e-12)
    per_sample = problem.x[:, :, None] * (problem.x @ problem.optimum - problem.y)[:, None, :]
    variance = np.mean(np.sum((per_sample - per_sample.mean(axis=0)) ** 2, axis=(1, 2)))
    assert problem.noise.sum() == pytest.approx(variance, rel=1e-12)


def test_without_noise_the_theory_is_gradient_descent_with_the_schedule():
    problem, schedule, n = small_problem(), sc.Power(0.05, 20, 2), 300
    hessian = problem.x.T @ problem.x / len(problem.x) + problem.lam * np.eye(problem.x.shape[1])
    w, target = np.zeros_like(problem.optimum), problem.optimum
    marks, distances = sc.checkpoints(n, 12), []
    for t in range(n):  # ∇F(W) = A (W - W*)
        w = w - schedule(t) * hessian @ (w - target)
        if t + 1 in marks:
            distances.append(np.sum((w - target) ** 2))
    theory = sc.predicted(problem, schedule.rates(n)[:, None], marks, batch=np.inf)[0]
    np.testing.assert_allclose(theory, distances, rtol=1e-10)
    assert theory[-1] > 0.01 * problem.start.sum()  # Σ a_t ≈ 1: it stops short


def test_the_recursion_is_the_variance_of_sgd_with_additive_noise():
    h, s, a, batch = 0.5, 2.0, 0.3, 4
    problem = sc.Problem(None, None, 0.0, None, np.array([h]), np.array([1.0]), np.array([s]))
    marks = np.array([5, 20, 200])
    theory = sc.predicted(problem, np.full((200, 1), a), marks, batch=batch)[0]
    floor = a * s / (batch * h * (2 - a * h))
    assert theory[-1] == pytest.approx(floor, rel=1e-12)
    rng, chains = np.random.default_rng(0), 40_000
    w, squares = np.ones(chains), []
    for t in range(200):  # w ← w - a (h w + noise of variance s/B)
        w = w - a * (h * w + rng.normal(0, math.sqrt(s / batch), chains))
        if t + 1 in marks:
            squares.append(w**2)
    for value, sample in zip(theory, squares):
        assert abs(sample.mean() - value) < 4 * sample.std() / math.sqrt(chains)


def test_the_compiled_loop_is_plain_sgd_with_weight_decay_and_the_schedules():
    problem, steps, batch = small_problem(), 40, 7
    plans = [sc.Power(0.3, 10, p) for p in (0, 0.5, 1, 2)]
    indices = sc.draws(3, 2, steps, batch, len(problem.x))
    marks = np.array([1, 13, steps])
    got = sc.train(problem, plans, indices, marks)
    w = np.zeros((len(plans), 2, *problem.optimum.shape))
    for t in range(steps):
        x, y = problem.x[indices[t]], problem.y[indices[t]]  # (seeds, B, d), (seeds, B, c)
        for k, plan in enumerate(plans):
            grad = np.einsum("sbd,sbc->sdc", x, x @ w[k] - y) / batch + problem.lam * w[k]
            w[k] -= plan(t) * grad
        if t + 1 in marks:
            expected = np.sum((w - problem.optimum) ** 2, axis=(2, 3))
            np.testing.assert_allclose(got[:, :, list(marks).index(t + 1)], expected, rtol=1e-9)


def test_draws_are_with_replacement_and_differ_by_seed():
    indices = sc.draws(0, 2, 2000, 16, 10)
    assert indices.shape == (2000, 2, 16) and indices.min() == 0 and indices.max() == 9
    assert any(len(set(batch)) < 16 for batch in indices[:, 0])  # 16 draws of 10: repeats
    assert not np.array_equal(indices[:, 0], indices[:, 1])


def test_loglog_slope_reads_a_power_law_over_the_last_decade():
    marks = sc.checkpoints(10_000, 40)
    values = np.where(marks < 1000, 1.0, 3.0 * marks**-0.7)  # only the last decade counts
    assert sc.loglog_slope(marks, values) == pytest.approx(-0.7, abs=1e-9)
