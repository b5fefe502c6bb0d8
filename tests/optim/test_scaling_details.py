"""optim.scaling: the linear scaling rule and its defaults (Goyal et al.'s B0 = 256 and 5-epoch
warmup), the noise scale and the batch-size schedules (default factor, caps, rounding, config).
"""

from __future__ import annotations

import inspect

import pytest

from nabla.optim import scaling
from nabla.optim.scaling import BatchSizeSchedule, linear_scaling_rule, noise_scale
from nabla.optim.schedules import (
    Constant,
    ExponentialDecay,
    LinearWarmup,
)

# --- optim.scaling: the linear scaling rule, the noise scale, batch-size schedules ----------------


def test_linear_scaling_rule_defaults_and_boundaries():
    """B0 = 256 is Goyal et al.'s reference batch size; batch sizes of 1 are valid, 0 is not."""
    assert inspect.signature(linear_scaling_rule).parameters["base_batch_size"].default == 256
    assert linear_scaling_rule(0.1, 512) == pytest.approx(0.2)
    assert linear_scaling_rule(0.1, 1, 1) == pytest.approx(0.1)
    assert linear_scaling_rule(0.1, 1, 4) == pytest.approx(0.025)
    with pytest.raises(ValueError, match=r"batch sizes must be positive, got 0 and 256"):
        linear_scaling_rule(0.1, 0)
    with pytest.raises(ValueError, match=r"batch sizes must be positive, got 8 and 0"):
        linear_scaling_rule(0.1, 8, 0)


def test_scaled_learning_rate_defaults_are_goyals_five_epoch_warmup():
    """Defaults: B0 = 256 and a 5-epoch gradual warmup (Goyal et al. 2017, section 2.2),
    counted in steps of one per epoch unless steps_per_epoch says otherwise."""
    lr = scaling.scaled_learning_rate(0.1, 1024)
    assert isinstance(lr, LinearWarmup)
    assert lr.warmup_steps == 5
    assert [lr(s) for s in (0, 5, 100)] == pytest.approx([0.1, 0.4, 0.4])
    assert lr(2.5) == pytest.approx(0.25)
    lr = scaling.scaled_learning_rate(
        0.1, 512, base_batch_size=128, warmup_epochs=2, steps_per_epoch=3
    )
    assert lr.warmup_steps == 6
    assert lr(0) == pytest.approx(0.1)
    assert lr(6) == pytest.approx(0.4)
    after = ExponentialDecay(0.4, 1, 0.5)
    lr = scaling.scaled_learning_rate(0.1, 1024, warmup_epochs=1, schedule=after)
    assert lr(0) == pytest.approx(0.1)  # a one-step warmup still starts at base_lr
    assert lr(1) == after(1)
    # no warmup: the schedule after it, itself
    assert scaling.scaled_learning_rate(0.1, 1024, warmup_epochs=0, schedule=after) is after
    flat = scaling.scaled_learning_rate(0.1, 1024, warmup_epochs=0)
    assert isinstance(flat, Constant) and flat(0) == pytest.approx(0.4)


def test_noise_scale_momentum_boundaries():
    assert noise_scale(0.1, 1000, 10) == pytest.approx(10.0)
    assert noise_scale(0.1, 1000, 10, momentum=0.0) == pytest.approx(10.0)
    assert noise_scale(0.1, 1000, 10, momentum=0.9) == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.0"):
        noise_scale(0.1, 1000, 10, momentum=1.0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got -0.1"):
        noise_scale(0.1, 1000, 10, momentum=-0.1)


def test_batch_size_schedule_default_factor_doubles_and_maximum_caps():
    schedule = BatchSizeSchedule(32, milestones=[2, 4])
    assert [schedule(e) for e in range(6)] == [32, 32, 64, 64, 128, 128]
    assert BatchSizeSchedule(32)(1000) == 32  # no milestones: constant
    capped = BatchSizeSchedule(32, milestones=[1, 2, 3], factor=2, maximum=100)
    assert [capped(e) for e in range(5)] == [32, 64, 100, 100, 100]
    assert BatchSizeSchedule(10, milestones=[1], factor=1.5)(1) == 15  # rounded to an integer
    assert BatchSizeSchedule(1, milestones=[0])(0) == 2  # a milestone at epoch 0 counts at once


def test_batch_size_schedule_boundaries():
    BatchSizeSchedule(1, milestones=[0, 0, 3], factor=1e-3)
    with pytest.raises(
        ValueError, match=r"BatchSizeSchedule: initial must be a positive integer, got 0"
    ):
        BatchSizeSchedule(0)
    with pytest.raises(ValueError, match=r"initial must be a positive integer, got 2.5"):
        BatchSizeSchedule(2.5)
    with pytest.raises(
        ValueError, match=r"BatchSizeSchedule: milestones must be increasing epochs, got \[3, 1\]"
    ):
        BatchSizeSchedule(8, milestones=[3, 1])
    with pytest.raises(ValueError, match=r"milestones must be increasing epochs, got \[-1, 2\]"):
        BatchSizeSchedule(8, milestones=[-1, 2])
    with pytest.raises(ValueError, match=r"BatchSizeSchedule: factor must be positive, got 0"):
        BatchSizeSchedule(8, factor=0)


def test_batch_size_schedule_config_round_trip():
    schedule = BatchSizeSchedule(16, milestones=[1, 3], factor=3.0, maximum=100)
    config = schedule.get_config()
    assert config == {
        "class_name": "BatchSizeSchedule",
        "initial": 16,
        "milestones": [1, 3],
        "factor": 3.0,
        "maximum": 100,
    }
    rebuilt = BatchSizeSchedule.from_config(config)
    assert (
        [rebuilt(e) for e in range(5)] == [schedule(e) for e in range(5)] == [16, 48, 48, 100, 100]
    )
