"""Pieces of the linear-scaling and batch-size-increase experiments: the learning-rate schedules
they build, checked step by step against the paper's formulas; the tolerance and breaking-point
rules; the equal noise scale of the decay / increase / hybrid schedules."""

import math

import numpy as np
import pytest

from nabla.data import ArrayDataset, DataLoader
from nabla.lab.experiments import batch_size_increase as bsi
from nabla.lab.experiments import common
from nabla.lab.experiments import linear_scaling as ls

CFG = ls.Size("digits", (8,), 6, 2, (3, 5), 16, (16, 64), (0.1,), 1)


@pytest.mark.parametrize("warmup", ls.WARMUPS)
def test_the_three_warmups_follow_section_2_2_then_the_step_decays(warmup):
    spe, base, batch = 10, 0.1, 64  # k = 4
    lr = ls.learning_rate(base, batch, CFG, spe, warmup)
    peak = base * batch / CFG.base_batch
    w = CFG.warmup_epochs * spe
    for step in range(CFG.epochs * spe):
        epoch = step // spe
        after = peak * 0.1 ** sum(epoch >= d for d in CFG.decay_epochs)
        if step >= w or warmup == "none":
            expected = after
        elif warmup == "constant":
            expected = base
        else:  # a straight line from η_ref at step 0 to k η_ref at the end of the warmup
            expected = base + (peak - base) * step / w
        assert lr(step) == pytest.approx(expected, rel=1e-12), (warmup, step)


def test_the_reference_batch_gets_the_reference_rate_whatever_the_warmup():
    rates = [[ls.learning_rate(0.05, 16, CFG, 7, w)(s) for s in range(20)] for w in ls.WARMUPS]
    assert rates[0] == rates[1] == rates[2] and rates[0][0] == 0.05
    with pytest.raises(ValueError, match="warmup must be one of"):
        ls.learning_rate(0.05, 16, CFG, 7, "cosine")


def test_pooled_std_is_the_unbiased_std_within_groups():
    a, b = [0.1, 0.2, 0.4], [1.0, 1.5]
    assert common.pooled_std([a]) == pytest.approx(np.std(a, ddof=1))
    within = np.sum((np.array(a) - np.mean(a)) ** 2) + np.sum((np.array(b) - np.mean(b)) ** 2)
    assert common.pooled_std([a, b]) == pytest.approx(math.sqrt(within / 3))
    assert common.pooled_std([[0.3]]) == 0.0
    assert bsi.pooled_std is ls.pooled_std is common.pooled_std  # both pool the seeds alike
    assert bsi.tolerance is ls.tolerance


def test_the_tolerance_is_the_papers_half_point_or_two_standard_errors():
    assert ls.tolerance(0.0, 3) == ls.PAPER_TOLERANCE
    assert ls.tolerance(0.01, 2) == pytest.approx(2 * 0.01 * math.sqrt(2 / 2))


def test_the_stable_range_stops_at_the_first_batch_beyond_the_tolerance():
    errors = {16: 0.040, 32: 0.043, 64: 0.044, 128: 0.041, 256: 0.2, 512: 0.045}
    assert ls.largest_stable(errors, 0.040, 0.005) == (128, 256)  # 512 recovers, too late
    assert ls.largest_stable(errors, 0.040, 0.5) == (512, 0)
    assert ls.largest_stable({16: 0.04, 32: 0.09}, 0.04, 0.005) == (16, 32)


def test_a_linear_scaling_run_uses_the_planned_rate_and_records_divergence():
    data = common.splits("digits", flat=True)
    cfg = ls.Size("digits", (8,), 2, 1, (1,), 16, (16,), (0.05,), 1)
    r = ls.train(data, cfg, 64, 0.05, "gradual", seed=0)
    spe = math.ceil(len(data[0]) / 64)
    expected = ls.learning_rate(0.05, 64, cfg, spe, "gradual")
    assert r.updates == 2 * spe and r.lr_steps == pytest.approx(
        [expected(s) for s in range(2 * spe)]
    )
    assert not r.diverged and 0 <= r.final < 0.9
    blown = ls.train(data, cfg, 64, 1e30, "none", seed=0)  # the weights overflow float32
    assert blown.diverged and blown.final == ls.CHANCE


@pytest.mark.parametrize("name", ["decay", "increase", "hybrid"])
def test_decay_increase_and_hybrid_have_the_same_noise_scale_every_epoch(name):
    cfg = bsi.BatchSizeIncrease.sizes["full"]
    batch, lr = bsi.plan(name, cfg)
    sizes = [batch(e) if callable(batch) else batch for e in range(cfg.epochs)]
    ref_batch, ref_lr = bsi.plan("decay", cfg)
    ratio = [a / b for a, b in zip(lr, sizes)]
    assert ratio == pytest.approx([a / ref_batch for a in ref_lr], rel=1e-12)
    assert ratio[0] / ratio[-1] == pytest.approx(cfg.factor ** len(cfg.milestones))


def test_the_schedules_change_only_at_the_milestones():
    cfg = bsi.BatchSizeIncrease.sizes["full"]
    _, control = bsi.plan("control", cfg)
    assert set(control) == {cfg.lr}
    batch, lr = bsi.plan("hybrid", cfg)
    sizes = [batch(e) for e in range(cfg.epochs)]
    for e in range(1, cfg.epochs):
        changed = (sizes[e], lr[e]) != (sizes[e - 1], lr[e - 1])
        assert changed == (e in cfg.milestones), e
    assert max(sizes) == cfg.batch * cfg.factor ** (len(cfg.milestones) - 1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        bsi.plan("cosine", cfg)


def test_the_per_step_rate_switches_at_the_first_update_of_an_epoch():
    dataset = ArrayDataset(np.zeros((50, 1), np.float32), np.zeros(50, np.int64))
    loader = DataLoader(dataset, batch_size=lambda e: [4, 4, 20, 20, 50][e])
    starts = bsi.epoch_starts(loader, 5)
    assert starts == [0, 13, 26, 29, 32, 33]
    by_epoch = [0.1, 0.1, 0.1, 0.02, 0.004]
    lr = bsi.per_step(by_epoch, starts)
    for e in range(5):
        assert all(lr(s) == by_epoch[e] for s in range(starts[e], starts[e + 1])), e
    assert bsi.per_step([0.3, 0.3], starts)(100) == 0.3


def test_a_batch_size_increase_run_trains_with_the_planned_batches_and_rates():
    data = common.splits("digits", flat=True)
    cfg = bsi.Size("digits", (8,), 3, (1, 2), 2, 32, 0.05, 1)
    r = bsi.train(data, cfg, "hybrid", seed=0)
    assert r.batch == [32, 64, 64] and r.lr == [0.05, 0.05, 0.025]
    n = len(data[0])
    assert r.updates.tolist() == np.cumsum([math.ceil(n / b) for b in r.batch]).tolist()
    epoch_of_step = np.repeat(np.arange(3), np.diff([0, *r.updates]))
    assert r.lr_steps.tolist() == [r.lr[e] for e in epoch_of_step]
    assert r.noise[0] == pytest.approx(0.05 * n / (32 * (1 - bsi.MOMENTUM)))


def test_curve_distance_is_the_mean_log_ratio_after_the_start():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([9.0, 1.0, 1.0])
    assert bsi.curve_distance(a, b, 1) == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert bsi.curve_distance(a, a, 0) == 0
