"""Optimizer state never holds subnormal floats: they are flushed to zero, kernel and reference.

A moment whose gradient stays exactly zero (a dead ReLU unit, an always-black pixel) decays
geometrically and, without the flush, passes through the subnormal range (below 1.2e-38 in
float32) on its way to 0: every pass over a subnormal costs several times a normal one.
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels, optim

STEPS = 1200
TINY = np.finfo(np.float32).tiny

CASES = {
    "sgd-momentum": (optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "rmsprop-centered-momentum": (
        optim.RMSProp,
        {"lr": 1e-3, "beta": 0.9, "centered": True, "momentum": 0.9},
    ),
    "adam": (optim.Adam, {"lr": 1e-3, "beta2": 0.9}),
    "amsgrad": (optim.Adam, {"lr": 1e-3, "beta2": 0.9, "amsgrad": True}),
    "adagrad": (optim.AdaGrad, {"lr": 0.1}),
}


def subnormal_count(state: dict) -> int:
    return sum(
        int(np.count_nonzero((value != 0) & (np.abs(value) < TINY)))
        for buffers in state.values()
        for key, value in buffers.items()
        if key != "step"
    )


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "reference"])
@pytest.mark.parametrize("case", CASES)
def test_zero_gradients_for_thousands_of_steps_leave_no_subnormal(case, compiled):
    cls, kwargs = CASES[case]
    w = nb.ones(64, requires_grad=True)
    opt = cls([w], **kwargs)
    first = np.full(64, 1e-3, np.float32)
    first[::2] = np.float32(TINY * 8)  # a gradient that makes the AdaGrad sum subnormal at once
    with kernels.reference(not compiled):
        assert kernels.compiled() == compiled
        for step in range(STEPS):
            w.grad = first if step == 0 else np.zeros(64, np.float32)
            opt.step()
            assert subnormal_count(opt.state_dict()["state"]) == 0, f"step {step}"


def test_without_the_flush_the_moments_would_be_subnormal():
    """The claim the test above rests on: beta^t decay of a float32 moment crosses the subnormal
    range within STEPS steps (so a missing flush would be caught)."""
    moment, seen = np.full(4, 1e-4 * 0.1, np.float32), False
    for _ in range(STEPS):
        moment *= np.float32(0.9)
        seen |= bool(np.any((moment != 0) & (moment < TINY)))
    assert seen
