"""The math behind four experiments, checked on small cases: Wilson et al.'s construction and
its lemma, Adam's uncorrected step factor, AdaGrad's 1/sqrt(t) decay, the biased variance and
batch norm's two variances. References are computed here (least squares, NumPy, closed forms)."""

import numpy as np
import pytest

import nabla as nb
import nabla.nn.functional as F
from nabla import optim
from nabla.data import ArrayDataset, DataLoader
from nabla.lab.experiments import adagrad_decay, adam_bias_correction, estimator_bias
from nabla.lab.experiments import adaptive_generalization as ag


@pytest.fixture
def wilson():
    return ag.wilson_data(30, 20, 0.6, np.random.default_rng(3))


def test_wilson_data_is_the_papers_construction(wilson):
    x, y, x_test, y_test = wilson
    everything, labels = np.vstack([x, x_test]), np.concatenate([y, y_test])
    assert everything.shape == (50, 3 + 5 * 50) and y.sum() > 0
    assert np.array_equal(everything[:, 0], labels) and np.all(everything[:, 1:3] == 1)
    own = everything[:, 3:]
    assert np.array_equal(own.sum(axis=1), np.where(labels > 0, 1, 5))  # 1 own feature or 5
    assert np.all(own.sum(axis=0) <= 1)  # no point shares an own feature
    assert set(np.unique(everything)) <= {-1.0, 0.0, 1.0}


def test_the_lemmas_condition_holds_with_c_4(wilson):
    x, y, _, _ = wilson
    assert np.array_equal(x @ np.sign(x.T @ y), 4 * y)


def test_min_norm_dual_closed_form_matches_least_squares(wilson):
    x, y, x_test, y_test = wilson
    a = np.linalg.solve(x @ x.T, y)  # w = X^T a interpolates with the least norm
    a_pos, a_neg = ag.min_norm_dual(int((y > 0).sum()), int((y < 0).sum()))
    assert np.allclose(a, np.where(y > 0, a_pos, a_neg), rtol=1e-12, atol=0)
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.allclose(w, x.T @ a, atol=1e-12)
    assert ag.errors(w, x_test, y_test) == 0.0


def test_adaptive_iterates_stay_on_the_sign_pattern_and_gd_does_not(wilson):
    x, y, x_test, _ = wilson
    u = x.T @ y
    inputs, targets = nb.tensor(x, dtype="float64"), nb.tensor(y[:, None], dtype="float64")
    deviations = {}
    for name in ag.METHODS:
        layer = ag.linear(x.shape[1])
        opt = ag.make_optimizer(name, layer.parameters(), gd_lr=0.05)
        for _ in range(30):
            opt.zero_grad()
            F.mse_loss(layer(inputs), targets).backward()
            opt.step()
        w = layer.weight.data[0]
        deviations[name] = ag.lemma_deviation(w, u)
        assert np.all(w[u == 0] == 0)  # unseen features never move
        if name != "GD":
            assert np.all(x_test @ w > 0)  # every new point labeled +1
    assert max(deviations[m] for m in ag.ADAPTIVE) < 1e-4 < 1.0 < deviations["GD"]


def test_lemma_deviation():
    u = np.array([3.0, -1.0, 0.0, 2.0])
    assert ag.lemma_deviation(0.7 * np.sign(u) + np.array([0, 0, 5.0, 0]), u) < 1e-15
    assert ag.lemma_deviation(np.array([1.0, -0.5, 0.0, 1.0]), u) == pytest.approx(0.4)


def adam_updates(grads, mode, beta2):
    """The update vectors of nabla's Adam (eps = 0) fed the given gradients."""
    w = nb.zeros(len(grads[0]), dtype="float64", requires_grad=True)
    opt = optim.Adam([w], lr=0.1, beta2=beta2, eps=0.0, bias_correction=mode)
    steps = []
    for g in grads:
        before = w.data.copy()
        opt.zero_grad()
        (w * nb.tensor(g, dtype="float64")).sum().backward()
        opt.step()
        steps.append(w.data - before)
    return np.array(steps)


@pytest.mark.parametrize("beta2", [0.99, 0.999, 0.9999])
def test_uncorrected_adam_steps_follow_the_predicted_factor_under_a_constant_gradient(beta2):
    g = np.random.default_rng(0).normal(size=5)
    grads = [g] * 50
    ratio = adam_updates(grads, "none", beta2) / adam_updates(grads, "explicit", beta2)
    t = np.arange(1, 51)
    want = adam_bias_correction.predicted_ratio(t, 0.9, beta2)
    assert np.allclose(ratio, want[:, None], rtol=1e-9)
    assert want[0] == pytest.approx(0.1 / np.sqrt(1 - beta2))


def test_instability_rule():
    assert not adam_bias_correction.unstable(np.array([2.3, 1.0, 4.5]))
    assert adam_bias_correction.unstable(np.array([2.3, 1.0, 4.7]))
    assert adam_bias_correction.unstable(np.array([2.3, np.nan]))


def test_decay_fit_recovers_power_laws():
    t = adagrad_decay.snapshot_steps(1000, 20)
    assert {1, 100, 316, 1000} <= set(t.tolist())
    g2 = np.array([1.0, 4.0, 1e-3])  # three parameters with constant gradient size
    constant = adagrad_decay.decay_fit(t, t[:, None] * g2, eps=0.0)
    assert np.allclose(constant["slope"], -0.5) and np.allclose(constant["gamma"], 0.0)
    growing = adagrad_decay.decay_fit(t, (t[:, None] ** 2.0) * g2, eps=0.0)  # g^2 ~ t
    assert np.allclose(growing["slope"], -1.0) and np.allclose(growing["gamma"], 1.0, atol=0.02)


def test_adagrads_own_state_decays_like_one_over_sqrt_t_under_constant_gradients():
    w = nb.zeros(3, dtype="float64", requires_grad=True)
    opt = optim.AdaGrad([("w", w)], lr=adagrad_decay.LR)
    g = nb.tensor([0.5, -2.0, 1e-3], dtype="float64")
    steps, states = adagrad_decay.snapshot_steps(400, 12), []
    for t in range(1, 401):
        opt.zero_grad()
        (w * g).sum().backward()
        opt.step()
        if t in steps:
            states.append(opt.state_dict()["state"]["w"]["sum_squares"].copy())
    fit = adagrad_decay.decay_fit(steps, np.array(states))
    assert np.allclose(fit["slope"], -0.5, atol=1e-6)


def test_sample_variances_are_numpys():
    rng = np.random.default_rng(0)
    draw = estimator_bias.DISTRIBUTIONS["normal(3, 2^2)"][0]
    biased, unbiased = estimator_bias.sample_variances(draw, 4, 1000, rng, chunk=400)
    x = draw(np.random.default_rng(0), (1000, 4))
    assert np.allclose(biased, x.var(axis=1)) and np.allclose(unbiased, x.var(axis=1, ddof=1))


def test_batch_norm_normalizes_with_the_biased_and_keeps_the_unbiased_variance():
    size = estimator_bias.Size(ns=(2,), samples=10, channels=8, batches=5, bn_n=4)
    checks = estimator_bias.batch_norm_checks(size, np.random.default_rng(0))
    assert checks.output_vs_biased < 1e-12
    assert checks.output_vs_unbiased > 1e-2  # n = 4: the two differ by sqrt(4/3)
    assert checks.running_vs_unbiased < 1e-12
    if checks.torch_output is not None:
        assert checks.torch_output < 1e-12 and checks.torch_running < 1e-12


def test_fit_through_the_trainer_is_the_hand_written_loop(wilson):
    """``fit`` stops inside an epoch (``updates``): the same weights, bit for bit, as a loop
    that breaks after ``steps`` updates of reshuffled passes."""
    x, y, _, _ = wilson
    dataset = ArrayDataset(x, y[:, None])
    layer = ag.linear(x.shape[1])
    opt = ag.make_optimizer("Adam", layer.parameters(), gd_lr=0.0)
    loader = DataLoader(dataset, 8, shuffle=True, seed=5)
    batches = [batch for _ in range(3) for batch in loader]  # a new epoch, a new order each pass
    for xb, yb in batches[:10]:  # 30 points in batches of 8: 4 a pass, so 10 end inside one
        opt.zero_grad()
        F.mse_loss(layer(xb), yb).backward()
        opt.step()
    w = ag.fit("Adam", DataLoader(dataset, 8, shuffle=True, seed=5), 10, 0.0)
    assert np.array_equal(w, layer.weight.data[0])
