"""Pieces of the sgd-variants, batchnorm and augmentation experiments, checked against references
computed here (brute-force enumeration, NumPy formulas)."""

import itertools
import math

import numpy as np
import pytest

import nabla as nb
from nabla import nn
from nabla.data import datasets
from nabla.lab.experiments import augmentation, batchnorm, sgd_variants


def small_problem(n=10, d=3, classes=3):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    nb.manual_seed(0)
    return nn.Linear(d, classes), x, y


def test_gradient_noise_sigma_is_the_population_variance_of_per_sample_gradients():
    model, x, y = small_problem()
    per_sample = np.stack(
        [sgd_variants.gradient(model, x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
    )
    full = sgd_variants.gradient(model, x, y)
    noise = sgd_variants.gradient_noise(model, x, y, (1, 2), 5, np.random.default_rng(0))
    assert np.allclose(per_sample.mean(0), full, atol=1e-6)
    assert noise.sigma2 == pytest.approx(np.mean(np.sum((per_sample - full) ** 2, 1)), rel=1e-5)


def test_finite_population_formula_matches_every_subset_and_the_monte_carlo_estimate():
    model, x, y = small_problem()
    n = len(x)
    full = sgd_variants.gradient(model, x, y)
    noise = sgd_variants.gradient_noise(model, x, y, (1, 2, 4, 8), 600, np.random.default_rng(0))
    for b, measured in zip((1, 2, 4, 8), noise.std):
        formula = noise.sigma2 / b * (n - b) / (n - 1)
        if b <= 2:  # enumeration of all subsets: the formula is exact
            subsets = [list(s) for s in itertools.combinations(range(n), b)]
            deviations = [
                np.sum((sgd_variants.gradient(model, x[s], y[s]) - full) ** 2) for s in subsets
            ]
            assert np.mean(deviations) == pytest.approx(formula, rel=1e-4)
        assert measured**2 == pytest.approx(formula, rel=0.15)
    assert noise.slope == pytest.approx(-0.5, abs=0.05)
    assert noise.raw_slope < noise.slope  # without replacement the raw noise falls faster


def test_time_to_reach_is_the_first_checkpoint_at_or_below_the_target():
    curve = sgd_variants.Curve("m", 0.1, [0.0, 1.0, 2.0, 3.0], [0, 1, 2, 3], [2.0, 1.5, 0.9, 1.0])
    assert sgd_variants.time_to_reach(curve, 1.0) == 2.0
    assert sgd_variants.time_to_reach(curve, 0.5) == math.inf


def test_a_run_stops_at_its_budget_and_counts_epochs():
    data = sgd_variants.load("digits")
    size = sgd_variants.Size("digits", (0.1,), 0.05, 5, (1,), 1)
    curve = sgd_variants.train("full batch", 0.3, data, size, seed=0)
    assert curve.time[-1] >= size.budget and curve.loss[-1] < curve.loss[0]
    assert all(e == int(e) for e in curve.epochs)  # full batch: one epoch per update
    assert np.all(np.diff(curve.time) > 0)


def test_bn_probe_gives_normalized_inputs_and_leaves_the_running_statistics_alone():
    model = batchnorm.build([64, 16, 16, 10], batch_norm=True, seed=0)
    x = nb.tensor(np.random.default_rng(0).random((200, 64), dtype=np.float32))
    before = [b.data.copy() for b in model.buffers()]
    h = batchnorm.sigmoid_inputs(model, x)
    assert all(np.array_equal(a, b.data) for a, b in zip(before, model.buffers()))
    with nb.no_grad():  # the input of the last BatchNorm, normalized with its batch statistics
        z = model[:4](x).data
    assert h.shape == (200, 16)
    assert np.allclose(h, (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5), atol=1e-4)


def test_both_networks_start_from_the_same_small_gaussian_weights():
    plain = batchnorm.build([64, 100, 100, 10], batch_norm=False, seed=3)
    bn = batchnorm.build([64, 100, 100, 10], batch_norm=True, seed=3)
    linears = [[m for m in net if isinstance(m, nn.Linear)] for net in (plain, bn)]
    for a, b in zip(*linears):
        assert np.array_equal(a.weight.data, b.weight.data)
    assert linears[0][1].weight.data.std() == pytest.approx(batchnorm.INIT_STD, rel=0.05)


def test_percentile_drift_is_zero_when_stable_and_counts_shifts_in_units_of_the_spread():
    still = np.tile(np.array([-1.0, 0.0, 1.0])[None, :, None], (5, 1, 4))  # (records, 3, units)
    assert batchnorm.percentile_drift(still) == (0.0, 0.0)
    moved = still.copy()
    moved[0] -= 3.0  # every percentile starts 3 below its end; the final spread is 2
    assert batchnorm.percentile_drift(moved) == pytest.approx((1.5, 3.0))


def test_steps_to_threshold():
    assert batchnorm.steps_to([0, 10, 20], [0.1, 0.95, 0.97], 0.93) == 10
    assert batchnorm.steps_to([0, 10], [0.1, 0.5], 0.93) == math.inf


def test_mean_std_is_unbiased_and_the_subset_is_stratified():
    assert augmentation.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    train, _, _ = augmentation.load(augmentation.Augmentation.sizes["tiny"])
    full = np.bincount(datasets.digits("train").y) / 1437
    assert np.abs(np.bincount(train.y) / len(train) - full).max() < 2 / len(train)
