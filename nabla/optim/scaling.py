"""Batch size and learning rate: the linear scaling rule, batch-size schedules, the noise scale.

* Linear scaling rule (Goyal et al. 2017): when the minibatch grows k-fold, multiply the learning
  rate by k, lr = base_lr * B / B0, and reach it by a gradual warmup over the first few epochs,
  because the large rate is unstable while the weights change fast.
* Increasing the batch size instead of decaying the learning rate (Smith et al. 2018): what
  matters for SGD's dynamics is the noise scale g = lr N / (B (1 - m)), so multiplying B by a
  factor has the effect of dividing lr by it, with fewer parameter updates per epoch.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from .schedules import Constant, LinearWarmup, Schedule


def linear_scaling_rule(base_lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """lr = base_lr * batch_size / base_batch_size (Goyal et al. 2017, with B0 = 256).

    >>> linear_scaling_rule(0.1, 8192)
    3.2
    """
    if batch_size <= 0 or base_batch_size <= 0:
        raise ValueError(f"batch sizes must be positive, got {batch_size} and {base_batch_size}")
    return base_lr * batch_size / base_batch_size


def scaled_learning_rate(
    base_lr: float,
    batch_size: int,
    base_batch_size: int = 256,
    warmup_epochs: float = 5,
    steps_per_epoch: int = 1,
    schedule: Schedule | None = None,
) -> Schedule:
    """The linear scaling rule with gradual warmup (Goyal et al. 2017, sections 2.1-2.2).

    The rate ramps linearly from ``base_lr`` (safe at the reference batch size) to
    k * base_lr, k = batch_size / base_batch_size, over ``warmup_epochs`` epochs, then follows
    ``schedule`` (default: constant k * base_lr). ``schedule`` is written for the scaled rate.

    >>> lr = scaled_learning_rate(0.1, 1024, warmup_epochs=5, steps_per_epoch=100)
    >>> [round(lr(s), 3) for s in (0, 250, 500, 10_000)]
    [0.1, 0.25, 0.4, 0.4]
    """
    peak = linear_scaling_rule(base_lr, batch_size, base_batch_size)
    after = Constant(peak) if schedule is None else schedule
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    if warmup_steps <= 0:
        return after
    return LinearWarmup(after, warmup_steps, start=base_lr)


def noise_scale(lr: float, dataset_size: int, batch_size: int, momentum: float = 0.0) -> float:
    """SGD's noise scale g = lr * N / (B * (1 - m)) (Smith et al. 2018, eq. 2; Smith and Le 2018).

    >>> noise_scale(0.1, 50_000, 128)  # 0.1 * 50000 / 128
    39.0625
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    return lr * dataset_size / (batch_size * (1 - momentum))


class BatchSizeSchedule:
    """Batch size as a function of the epoch: ``initial`` multiplied by ``factor`` at each
    milestone.

    ``BatchSizeSchedule(128, milestones=[30, 60], factor=5)`` gives 128 for epochs 0-29, 640 for
    30-59 and 3200 from epoch 60 on: the "increase the batch size instead of decaying the learning
    rate by 5" schedule of Smith et al. (2018). ``maximum`` caps it (the hybrid schedule decays the
    learning rate once the cap is reached). The DataLoader calls it at the start of each epoch.

    >>> schedule = BatchSizeSchedule(128, milestones=[30, 60], factor=5)
    >>> [schedule(e) for e in (0, 29, 30, 60)]
    [128, 128, 640, 3200]
    """

    def __init__(
        self,
        initial: int,
        milestones: Sequence[int] = (),
        factor: float = 2.0,
        maximum: int | None = None,
    ):
        if int(initial) != initial or initial <= 0:
            raise ValueError(
                f"BatchSizeSchedule: initial must be a positive integer, got {initial}"
            )
        if list(milestones) != sorted(milestones) or any(m < 0 for m in milestones):
            raise ValueError(
                f"BatchSizeSchedule: milestones must be increasing epochs, got {milestones}"
            )
        if factor <= 0:
            raise ValueError(f"BatchSizeSchedule: factor must be positive, got {factor}")
        self.initial, self.milestones, self.factor = int(initial), list(milestones), factor
        self.maximum = maximum

    def __call__(self, epoch: int) -> int:
        size = round(self.initial * self.factor ** bisect.bisect_right(self.milestones, epoch))
        return size if self.maximum is None else min(size, self.maximum)

    def get_config(self) -> dict:
        return {
            "class_name": "BatchSizeSchedule",
            "initial": self.initial,
            "milestones": self.milestones,
            "factor": self.factor,
            "maximum": self.maximum,
        }

    @classmethod
    def from_config(cls, config: dict) -> BatchSizeSchedule:
        config = {k: v for k, v in config.items() if k != "class_name"}
        return cls(**config)
