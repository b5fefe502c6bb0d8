"""Learning-rate callback details pinned by mutation testing (issue 21): ReduceLROnPlateau against
Keras (defaults, patience, cooldown, min_delta, floor, state round trip) and LearningRateScheduler
(its arguments, refusals of a schedule lr and of negative or NaN values, named in the message).
Driven by hand with the stand-in trainer of ``test_callback_details``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_callback_details import FakeTrainer, feed

from nabla.optim import schedules
from nabla.train.callbacks import (
    LearningRateScheduler,
    ReduceLROnPlateau,
)

# --- the learning-rate callbacks ------------------------------------------------------------------


def test_reduce_lr_defaults_are_keras():
    cb = ReduceLROnPlateau()
    assert ReduceLROnPlateau(monitor="acc").tracker.mode == "max"  # auto
    assert (cb.factor, cb.patience, cb.cooldown, cb.min_lr) == (0.1, 10, 0, 0.0)
    assert cb.tracker.min_delta == 1e-4 and cb.tracker.monitor == "dev_loss"
    assert (cb.wait, cb.cooldown_left) == (0, 0)


@pytest.mark.parametrize("factor", [0.0, 1.0, -0.5, 2.0])
def test_reduce_lr_factor_must_be_between_0_and_1(factor):
    with pytest.raises(ValueError) as info:
        ReduceLROnPlateau(factor=factor)
    assert str(info.value) == f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}"
    assert ReduceLROnPlateau(factor=0.5).factor == 0.5


def lr_trace(cb, trainer, losses):
    trace = []
    for epoch, loss in enumerate(losses):
        cb.on_epoch_end(trainer, epoch, {"loss": loss})
        trace.append((trainer.optimizer.param_groups[0]["lr"], cb.wait, cb.cooldown_left))
    return trace


def test_reduce_lr_patience_and_floor_follow_keras():
    # Keras: the epoch that reduces starts the cooldown, which counts down at each epoch's start
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.03)
    trainer = FakeTrainer(0.1, 0.2)
    cb.on_train_begin(trainer)
    assert lr_trace(cb, trainer, [1.0] * 7) == [
        (0.1, 0, 0),
        (0.1, 1, 0),
        (0.05, 0, 1),
        (0.05, 1, 0),
        (0.03, 0, 1),
        (0.03, 1, 0),
        (0.03, 0, 1),
    ]
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.03, 0.03]
    assert type(trainer.optimizer.param_groups[1]["lr"]) is float


def test_reduce_lr_waits_out_a_longer_cooldown():
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2, min_delta=0.0)
    trainer = FakeTrainer(0.8)
    assert lr_trace(cb, trainer, [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]) == [
        (0.8, 0, 0),
        (0.4, 0, 2),
        (0.4, 0, 1),
        (0.2, 0, 2),
        (0.2, 0, 1),
        (0.1, 0, 2),
        (0.1, 0, 1),
    ]
    assert cb.tracker.best == 0.5


def test_reduce_lr_counts_only_improvements_beyond_min_delta():
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_delta=0.1)
    trainer = FakeTrainer(1.0)
    assert lr_trace(cb, trainer, [1.0, 0.9, 0.89, 0.8, 0.75]) == [
        (1.0, 0, 0),
        (1.0, 1, 0),
        (1.0, 0, 0),
        (1.0, 1, 0),
        (1.0, 0, 0),
    ]


def test_reduce_lr_state_round_trip():
    cb = ReduceLROnPlateau(monitor="loss", patience=3, cooldown=2)
    feed(cb, FakeTrainer(), "loss", [1.0, 2.0])
    state = cb.state_dict()
    assert state == {"best": 1.0, "wait": 1, "cooldown_left": 0}
    again = ReduceLROnPlateau(monitor="loss")
    again.load_state_dict({"best": np.float32(0.5), "wait": np.int64(2), "cooldown_left": 1.0})
    assert (again.tracker.best, again.wait, again.cooldown_left) == (0.5, 2, 1)
    assert (
        type(again.tracker.best) is float and type(again.wait) is type(again.cooldown_left) is int
    )


def test_lr_callbacks_name_themselves_when_the_lr_is_a_schedule():
    schedule = schedules.CosineDecayRestarts(0.1, 3)
    trainer = FakeTrainer(0.1, schedule)
    with pytest.raises(ValueError) as info:
        ReduceLROnPlateau().on_train_begin(trainer)
    message = str(info.value)
    assert message.startswith("ReduceLROnPlateau: the optimizer's learning rate is a schedule (")
    assert repr(schedule) in message and "ReduceLROnPlateau sets a constant" in message
    with pytest.raises(ValueError, match=r"^LearningRateScheduler: .*LearningRateScheduler sets"):
        LearningRateScheduler(lambda e, lr: lr).on_epoch_begin(trainer, 0)
    cb = ReduceLROnPlateau(monitor="loss", patience=1)
    cb.on_epoch_end(trainer, 0, {"loss": 1.0})
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: .*ReduceLROnPlateau sets"):
        cb.on_epoch_end(trainer, 1, {"loss": 1.0})


def test_learning_rate_scheduler_gets_epoch_and_lr():
    calls = []

    def schedule(epoch, lr):
        calls.append((epoch, lr))
        return np.float32(lr / 2) if epoch else 0

    cb, trainer = LearningRateScheduler(schedule), FakeTrainer(0.5, 0.25)
    cb.on_epoch_begin(trainer, 0)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.0, 0.0]  # 0 is allowed
    trainer.optimizer.param_groups[0]["lr"] = 0.5
    cb.on_epoch_begin(trainer, 3)
    assert calls == [(0, 0.5), (3, 0.5)] and trainer.optimizer.param_groups[1]["lr"] == 0.25
    assert type(trainer.optimizer.param_groups[1]["lr"]) is float


def test_a_schedule_that_swaps_in_a_schedule_lr_is_refused_by_name():
    trainer = FakeTrainer(0.5)

    def meddling(epoch, lr):
        trainer.optimizer.param_groups[0]["lr"] = schedules.CosineDecayRestarts(0.1, 3)
        return lr

    with pytest.raises(ValueError, match=r"^LearningRateScheduler: .*LearningRateScheduler sets"):
        LearningRateScheduler(meddling).on_epoch_begin(trainer, 0)


@pytest.mark.parametrize("bad", [-0.1, math.nan])
def test_learning_rate_scheduler_refuses_negative_or_nan(bad):
    trainer = FakeTrainer(0.5)
    with pytest.raises(ValueError) as info:
        LearningRateScheduler(lambda e, lr: bad).on_epoch_begin(trainer, 2)
    assert str(info.value) == f"LearningRateScheduler: schedule gave lr={bad} at epoch 2"
    assert trainer.optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(TypeError, match=r"^LearningRateScheduler: schedule must be a callable"):
        LearningRateScheduler(0.1)
