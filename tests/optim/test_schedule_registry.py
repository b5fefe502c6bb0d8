"""The schedules `nabla train --schedule` offers are registered by name with their recipe for a run
(``for_run``): the config's choices, the build and the report read that one list."""

import pytest

from nabla.optim import schedules
from nabla.train import config
from nabla.train.build import build_schedule


def test_the_built_in_run_schedules_are_named():
    assert schedules.names() == [
        "constant", "exponential", "polynomial", "inverse-time", "inverse-sqrt", "cosine",
        "cosine-restarts", "step", "onecycle",
    ]  # fmt: skip
    assert schedules.get("step") is schedules.PiecewiseConstant
    with pytest.raises(KeyError, match="unknown schedule 'linear'; the schedules are: constant"):
        schedules.get("linear")


def test_a_recipe_follows_the_plan():
    plan = schedules.RunPlan(lr=0.2, total=1000, warmup=100, steps_per_epoch=50, decay_rate=0.1)
    assert plan.decay_steps == 900
    warm = schedules.for_run("inverse-time", plan)
    assert isinstance(warm, schedules.LinearWarmup) and warm.warmup_steps == 100
    # the warmup wraps the decay without shifting it: decay_rate of the peak at decay_steps
    assert warm(900) == pytest.approx(0.2 * 0.1)
    step = schedules.for_run("step", plan).schedule
    assert step.boundaries == [450, 675] and step.values == pytest.approx([0.2, 0.02, 0.002])
    assert schedules.for_run("inverse-sqrt", plan).schedule.warmup_steps == 100
    cycle = schedules.for_run("onecycle", plan)  # its own warmup: no LinearWarmup around it
    assert isinstance(cycle, schedules.OneCycle) and cycle.total_steps == 1000
    flat = schedules.RunPlan(lr=0.2, total=10)
    assert schedules.for_run("constant", flat).get_config() == schedules.Constant(0.2).get_config()


def test_a_new_schedule_is_offered_by_its_class_alone(monkeypatch):
    monkeypatch.setattr(schedules, "_RUN_NAMES", dict(schedules._RUN_NAMES))

    class Halving(schedules.Schedule):
        """lr / 2 every epoch."""

        _fields = ("initial", "steps_per_epoch")
        name = "halving"

        def __init__(self, initial, steps_per_epoch):
            self.initial, self.steps_per_epoch = initial, steps_per_epoch

        def _lr(self, step):
            return self.initial * 0.5 ** (step // self.steps_per_epoch)

        @classmethod
        def for_run(cls, plan):
            return cls(plan.lr, plan.steps_per_epoch)

    cfg = config.resolve({"schedule": "halving", "lr": 0.4, "warmup_epochs": 0.0})
    lr = build_schedule(cfg, steps_per_epoch=10)
    assert isinstance(lr, Halving) and lr(25) == pytest.approx(0.1)
    with pytest.raises(config.ConfigError, match=r"'halvin' is not one of constant, .*, halving$"):
        config.resolve({"schedule": "halvin"})
