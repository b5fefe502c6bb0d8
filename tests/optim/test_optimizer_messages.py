"""The exact text of the optimizers' argument and usage errors.

The messages are user-facing: each names the optimizer, what is wrong and what to do instead.
Every one is matched whole (``\\A...\\Z``, case-sensitive), so a changed word or case shows.
Hyperparameters given as schedules are checked at their first value (step 0).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import nabla as nb
from nabla import optim


def whole(text: str) -> str:
    return r"\A" + re.escape(text) + r"\Z"


def one_param():
    return [nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)]


def test_lbfgs_usage_errors_say_what_to_do():
    w = one_param()
    with pytest.raises(
        ValueError, match=whole("LBFGS: give line_search or line_search_fn, not both")
    ):
        optim.LBFGS(w, line_search="strong_wolfe", line_search_fn="other")
    opt = optim.LBFGS(w)
    with pytest.raises(
        ValueError,
        match=whole(
            "LBFGS supports exactly one parameter group (its history spans all parameters); "
            "put every parameter in one group"
        ),
    ):
        opt.add_param_group({"params": one_param()})
    with pytest.raises(
        TypeError,
        match=whole(
            "LBFGS.step needs a closure that zeroes the gradients, computes the loss, calls "
            "backward and returns the loss: opt.step(closure)"
        ),
    ):
        opt.step()
    with pytest.raises(TypeError, match=whole("LBFGS updates only through step(closure)")):
        opt.reference(np.zeros(2), np.zeros(2), None, {}, 1)


def test_nesterov_and_adamw_errors_name_the_fix():
    with pytest.raises(ValueError, match=whole("SGD: nesterov=True needs momentum > 0")):
        optim.SGD(one_param(), nesterov=True)
    with pytest.raises(
        ValueError, match=whole("SGD: nesterov=True needs dampening = 0 (as in PyTorch)")
    ):
        optim.SGD(one_param(), momentum=0.9, dampening=0.5, nesterov=True)
    with pytest.raises(
        ValueError,
        match=whole(
            "AdamW: decoupled_weight_decay=False is Adam with L2; use Adam(weight_decay=...)"
        ),
    ):
        optim.AdamW(one_param(), decoupled_weight_decay=False)


def starts_valid(first, later):
    """A schedule whose value is ``first`` at step 0 and ``later`` after."""
    return lambda t: first if t == 0 else later


@pytest.mark.parametrize(
    "make, key, name",
    [
        (lambda v: optim.Adam(one_param(), beta1=v), "beta1", "Adam"),
        (lambda v: optim.AdamW(one_param(), beta2=v), "beta2", "AdamW"),
        (lambda v: optim.RMSProp(one_param(), beta=v), "beta", "RMSProp"),
        (lambda v: optim.RMSProp(one_param(), momentum=v), "momentum", "RMSProp"),
        (lambda v: optim.SGD(one_param(), momentum=v), "momentum", "SGD"),
    ],
)
def test_a_scheduled_rate_is_checked_at_step_zero(make, key, name):
    """A schedule valid at step 0 builds (later values are the schedule's business); one
    invalid at step 0 is refused with the value it has there."""
    make(starts_valid(0.5, 1.5))
    with pytest.raises(ValueError, match=whole(f"{name}: {key} must be in [0, 1), got 1.5")):
        make(starts_valid(1.5, 0.5))


def test_a_scheduled_dampening_is_checked_at_step_zero():
    optim.SGD(one_param(), momentum=0.9, dampening=starts_valid(0.5, 2.0))
    with pytest.raises(ValueError, match=whole("SGD: dampening must be in [0, 1], got 2.0")):
        optim.SGD(one_param(), momentum=0.9, dampening=starts_valid(2.0, 0.5))


def test_group_building_errors_read_in_full():
    w = one_param()[0]
    with pytest.raises(ValueError, match=whole("a parameter group needs a 'params' entry")):
        optim.SGD([{"lr": 0.1}])
    with pytest.raises(
        ValueError, match=whole("a parameter appears more than once across the optimizer's groups")
    ):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    with pytest.raises(
        TypeError,
        match=whole(
            "a parameter group mixes dtypes ['float32', 'float64']; put parameters of different "
            "dtypes in different groups (or convert the model first)"
        ),
    ):
        optim.SGD([w, nb.tensor([1.0], dtype="float32", requires_grad=True)])


def test_a_scheduled_rate_of_the_base_class_is_checked_at_step_zero():
    optim.SGD(one_param(), lr=starts_valid(0.5, -1.0))
    with pytest.raises(ValueError, match=whole("SGD: lr must be >= 0, got -1.0")):
        optim.SGD(one_param(), lr=starts_valid(-1.0, 0.5))
