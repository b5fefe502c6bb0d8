"""The linear scaling rule, gradual warmup, batch-size schedules and the SGD noise scale."""

from __future__ import annotations

import json

import pytest

from nabla.optim import schedules
from nabla.optim.scaling import (
    BatchSizeSchedule,
    linear_scaling_rule,
    noise_scale,
    scaled_learning_rate,
)


def test_linear_scaling_rule_is_proportional_to_the_batch_size():
    for batch in (32, 256, 1024, 8192):
        assert linear_scaling_rule(0.1, batch) == pytest.approx(0.1 * batch / 256)
    assert linear_scaling_rule(0.05, 64, base_batch_size=32) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="positive"):
        linear_scaling_rule(0.1, 0)


def test_gradual_warmup_ramps_linearly_from_base_to_scaled_rate():
    base, batch, epochs, per_epoch = 0.1, 2048, 5, 40
    lr = scaled_learning_rate(base, batch, warmup_epochs=epochs, steps_per_epoch=per_epoch)
    peak, steps = base * batch / 256, epochs * per_epoch
    for step in range(0, steps + 50, 7):
        expected = base + (peak - base) * step / steps if step < steps else peak
        assert lr(step) == pytest.approx(expected, rel=1e-12)
    # a decay written for the scaled rate takes over after the warmup, unshifted
    decayed = scaled_learning_rate(
        base,
        batch,
        warmup_epochs=epochs,
        steps_per_epoch=per_epoch,
        schedule=schedules.PiecewiseConstant([400], [peak, peak / 10]),
    )
    assert decayed(300) == pytest.approx(peak) and decayed(401) == pytest.approx(peak / 10)
    # it serializes like any schedule
    rebuilt = schedules.from_config(json.loads(json.dumps(decayed.get_config())))
    assert [rebuilt(s) for s in range(0, 600, 37)] == [decayed(s) for s in range(0, 600, 37)]
    assert scaled_learning_rate(base, batch, warmup_epochs=0)(0) == pytest.approx(peak)


def test_batch_size_schedule_multiplies_at_milestones():
    schedule = BatchSizeSchedule(128, milestones=[30, 60, 80], factor=5, maximum=5000)
    assert [schedule(e) for e in (0, 29, 30, 59, 60, 80, 200)] == [
        128,
        128,
        640,
        640,
        3200,
        5000,
        5000,
    ]
    rebuilt = BatchSizeSchedule.from_config(json.loads(json.dumps(schedule.get_config())))
    assert [rebuilt(e) for e in range(100)] == [schedule(e) for e in range(100)]
    for bad in (dict(initial=0), dict(initial=8, milestones=[5, 2]), dict(initial=8, factor=0)):
        with pytest.raises(ValueError):
            BatchSizeSchedule(**bad)


def test_noise_scale_formula_and_its_invariance():
    assert noise_scale(0.1, 50_000, 128) == pytest.approx(0.1 * 50_000 / 128)
    assert noise_scale(0.1, 50_000, 128, momentum=0.9) == pytest.approx(0.1 * 50_000 / (128 * 0.1))
    # scaling the rate and the batch together (the linear scaling rule) keeps the noise scale
    assert noise_scale(0.1 * 8, 50_000, 128 * 8) == pytest.approx(noise_scale(0.1, 50_000, 128))
    # increasing the batch 5x has the effect of dividing the rate by 5
    assert noise_scale(0.1, 50_000, 640) == pytest.approx(noise_scale(0.02, 50_000, 128))
    with pytest.raises(ValueError, match="momentum"):
        noise_scale(0.1, 100, 10, momentum=1.0)
