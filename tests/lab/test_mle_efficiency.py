"""mle-efficiency's math: the exact variance of the median, the fits by sign descent, the Fisher
information by autograd, and the statistics the verdict reads."""

import math

import numpy as np
import pytest

import nabla as nb
from nabla import optim
from nabla.lab.experiments.mle_efficiency import (
    ESTIMATORS,
    MODELS,
    B,
    fisher_information,
    fit_locations,
    log_log_slope,
    m_mse,
    median_variance,
    odd_sizes,
)

GAUSS, LAPLACE = MODELS["Gaussian"], MODELS["Laplace"]


def test_the_median_of_one_draw_has_the_variance_of_the_law():
    assert median_variance(1, GAUSS) == pytest.approx(1.0, rel=1e-6)
    assert median_variance(1, LAPLACE) == pytest.approx(2 * B * B, rel=1e-6)


def test_the_median_of_three_matches_its_closed_forms():
    # Gaussian: Var X_(2) = 1 - sqrt(3)/pi; Laplace: 2 int x^2 (3/2b)(e^-2x/b - e^-3x/b / 2)
    assert median_variance(3, GAUSS) == pytest.approx(1 - math.sqrt(3) / math.pi, rel=1e-6)
    assert median_variance(3, LAPLACE) == pytest.approx(23 / 36 * B * B, rel=1e-6)


def test_the_median_reaches_its_asymptotic_variances():
    m = 100_001
    assert m * median_variance(m, GAUSS) == pytest.approx(math.pi / 2, rel=2e-4)
    excess = m * median_variance(m, LAPLACE) / (B * B) - 1  # ~1.6 / sqrt(m)
    assert 0 < excess < 0.01


def test_the_exact_median_variance_agrees_with_simulation():
    rng = np.random.default_rng(1)
    medians = np.median(rng.laplace(0.0, B, (40_000, 11)), axis=1)
    se = (medians**2).std() / math.sqrt(len(medians))
    assert abs((medians**2).mean() - median_variance(11, LAPLACE)) < 4 * se


@pytest.mark.parametrize("name", ["Gaussian", "Laplace"])
def test_the_fit_of_the_nll_is_the_closed_form_mle(name):
    model = MODELS[name]
    x = model.draw(np.random.default_rng(2), (50, 21))
    fit, trace = fit_locations(x, model.nll, closed=ESTIMATORS[model.mle](x))
    assert np.max(np.abs(fit - ESTIMATORS[model.mle](x))) < 1e-8
    assert trace[-1] < 1e-8 < trace[0]


def test_with_an_even_m_the_laplace_fit_lands_between_the_middle_order_statistics():
    x = LAPLACE.draw(np.random.default_rng(3), (50, 10))
    fit, _ = fit_locations(x, LAPLACE.nll)
    middle = np.sort(x, axis=1)[:, 4:6]
    assert np.all((middle[:, 0] - 1e-9 <= fit) & (fit <= middle[:, 1] + 1e-9))
    assert np.max(np.abs(fit - np.median(x, axis=1))) > 1e-3  # flat there: not always np.median


@pytest.mark.parametrize("gradient", [1e-2, 100.0])
def test_adam_without_moments_steps_by_lr_times_the_sign(gradient):
    w = nb.tensor([0.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([w], lr=0.25, beta1=0.0, beta2=0.0)
    (gradient * w).sum().backward()
    opt.step()
    assert w.data[0] == pytest.approx(-0.25, rel=2e-6)  # eps / |g| <= 1e-6


def test_the_fisher_information_from_autograd():
    rng = np.random.default_rng(4)
    draws = 100_000
    assert abs(fisher_information(GAUSS, draws, rng) - 1.0) < 5 * math.sqrt(2 / draws)
    assert fisher_information(LAPLACE, draws, rng) == pytest.approx(1 / (B * B), rel=1e-12)


def test_m_mse_and_its_standard_error():
    errors = np.array([1.0, -1.0, 2.0, 0.0])  # m e^2 with m = 2: 2, 2, 8, 0
    value, se = m_mse(errors, 2)
    assert value == pytest.approx(3.0)
    assert se == pytest.approx(np.std([2, 2, 8, 0], ddof=1) / 2)


def test_log_log_slope_and_the_sizes():
    ms = np.array(odd_sizes(10, 10_000, 10))
    assert ms[0] == 11 and ms[-1] == 10_001 and np.all(ms % 2 == 1) and np.all(np.diff(ms) > 0)
    assert log_log_slope(ms, 0.5 / ms) == pytest.approx(-1.0)
    assert log_log_slope(ms, 3.0 / ms**0.5) == pytest.approx(-0.5)
