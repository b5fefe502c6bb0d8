"""sgd-vs-adam: the grids, the sensitivity measure, the tuned rate and the verdict's three parts."""

import numpy as np
import pytest

from nabla.lab.experiments import sgd_vs_adam as exp

SIZE = exp.Size("digits", epochs=1, batch=32, points=5, seeds=3)


def test_the_grids_have_the_same_width_and_hold_the_default_and_usual_rates():
    sgd, adam = (exp.log_grid(exp.CENTRES[o], 5) for o in ("SGD", "Adam"))
    assert np.allclose(sgd, [10**-2.5, 0.01, 10**-1.5, 0.1, 10**-0.5])
    assert np.allclose(adam, [1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2])
    assert np.allclose(sgd[-1] / sgd[0], 100) and np.allclose(adam[-1] / adam[0], 100)
    assert np.allclose(np.diff(np.log10(sgd)), np.diff(np.log10(adam)))
    for optimizer, grid in (("SGD", sgd), ("Adam", adam)):
        assert np.isclose(grid, exp.DEFAULTS[optimizer]).sum() == 1


@pytest.mark.parametrize(
    "errors, share",
    [
        ([0.02, 0.024, 0.025, 0.0251, 0.9], 0.6),  # the 0.5-point edge is inside, just past is not
        ([0.03, 0.03, 0.03, 0.03], 1.0),
        ([0.9, 0.9, 0.02, 0.9], 0.25),  # chance-level (diverged) runs are far from the best
        (1 - np.array([0.976, 0.981, 0.975]), 2 / 3),  # exactly 0.5 points, despite the rounding
    ],
)
def test_share_near_best(errors, share):
    assert exp.share_near_best(errors) == pytest.approx(share)


def results(dev, test):
    """Results with the grid dev errors ``dev[o]`` (first seed) and the test errors
    ``test[o][lr index]`` over three seeds, for the tuned and default rates."""
    grids = {o: exp.log_grid(c, 5) for o, c in exp.CENTRES.items()}
    r = exp.Results(SIZE, [0, 1, 2], grids, [])
    for o, grid in grids.items():
        for i, lr in enumerate(grid):
            errors = test[o].get(i, [0.5, 0.5, 0.5])
            for seed, e in enumerate(errors):
                r.runs.append(exp.Run(o, lr, seed, dev[o][i] if seed == 0 else 0.0, e, 0.1, False))
    return r


GOOD_DEV = {"SGD": [0.05, 0.03, 0.02, 0.024, 0.9], "Adam": [0.03, 0.022, 0.02, 0.022, 0.024]}
GOOD_TEST = {  # SGD: tuned index 2, default index 1; Adam: tuned = default, index 2
    "SGD": {1: [0.03, 0.031, 0.029], 2: [0.018, 0.019, 0.020]},
    "Adam": {2: [0.020, 0.021, 0.022]},
}


def test_the_tuned_rate_is_the_grids_lowest_dev_error_and_ties_take_the_smaller_rate():
    r = results(GOOD_DEV, GOOD_TEST)
    assert np.isclose(r.tuned("SGD"), 10**-1.5) and np.isclose(r.tuned("Adam"), 1e-3)
    tie = results({"SGD": [0.9, 0.02, 0.02, 0.03, 0.9], "Adam": GOOD_DEV["Adam"]}, GOOD_TEST)
    assert np.isclose(tie.tuned("SGD"), 0.01)
    assert exp.configurations(r) == [("SGD", 0.01), ("SGD", r.grids["SGD"][2]), ("Adam", 1e-3)]
    assert exp.role(r, "Adam", 1e-3) == "tuned = default"
    mean, std = r.test("SGD", r.tuned("SGD"))
    assert mean == pytest.approx(0.019) and std == pytest.approx(0.001)


def test_the_verdict_passes_only_when_all_three_parts_hold():
    assert exp.SgdVsAdam(verbose=False).verdict(results(GOOD_DEV, GOOD_TEST)).passed
    # (a) fails: Adam's best dev rate is 3.16e-3, and 1e-3 tests 0.6 points worse
    dev = {**GOOD_DEV, "Adam": [0.03, 0.022, 0.021, 0.02, 0.025]}
    test = {**GOOD_TEST, "Adam": {2: [0.026] * 3, 3: [0.020] * 3}}
    assert not exp.SgdVsAdam(verbose=False).verdict(results(dev, test)).passed
    test["Adam"][2] = [0.024] * 3  # 0.4 points: (a) holds again
    assert exp.SgdVsAdam(verbose=False).verdict(results(dev, test)).passed
    test["Adam"] = {2: list(1 - np.array([0.9755] * 3)), 3: list(1 - np.array([0.9805] * 3))}
    assert exp.SgdVsAdam(verbose=False).verdict(results(dev, test)).passed  # exactly 0.5 points
    # (b) fails on a tie: both grids have 2 of 5 rates within 0.5 points of their best
    dev = {**GOOD_DEV, "Adam": [0.03, 0.03, 0.02, 0.022, 0.03]}
    outcome = exp.SgdVsAdam(verbose=False).verdict(results(dev, GOOD_TEST))
    assert not outcome.passed and "2/5 vs 2/5" in outcome.ours
    # (c) fails: tuned SGD tests worse than tuned Adam
    test = {**GOOD_TEST, "SGD": {**GOOD_TEST["SGD"], 2: [0.022] * 3}}
    outcome = exp.SgdVsAdam(verbose=False).verdict(results(GOOD_DEV, test))
    assert not outcome.passed and "a/b/c yes/yes/no" in outcome.ours
