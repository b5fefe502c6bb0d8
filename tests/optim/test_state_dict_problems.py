"""Loading a state_dict: the exact text of each problem, every problem of a state_dict reported
at once (not only the first), and what a load sets besides the buffers.

Each problem line is matched whole (``(?m)^...$``, case-sensitive): the hints that point to the
PyTorch layout and to docs/optimizers.md are part of the message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import optim

HEADER = "Adam.load_state_dict: the state_dict does not fit this optimizer (nothing was loaded):"


def line(text: str) -> str:
    return r"(?m)^  - " + re.escape(text) + r"$"


def adam():
    w = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([("w", w)])
    w.grad[...] = [0.5, 0.25]
    opt.step()
    return opt, w


def problems_of(change) -> str:
    opt, _ = adam()
    saved = opt.state_dict()
    change(saved)
    with pytest.raises(ValueError) as error:
        opt.load_state_dict(saved)
    return str(error.value)


def test_a_missing_entry_is_the_whole_message():
    text = problems_of(lambda s: s.pop("state"))
    assert text == f"{HEADER}\n  - missing entries ['state']"


def test_a_missing_iterations_entry_points_to_the_pytorch_conversion():
    text = problems_of(lambda s: s.pop("iterations"))
    assert text == (
        f"{HEADER}\n  - missing entries ['iterations'] (a PyTorch state_dict has none: "
        "docs/optimizers.md shows how to convert one)"
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda s: s.update(param_groups=[1]),
            "param_groups must be a list of dicts, one per parameter group",
        ),
        (
            lambda s: s.update(param_groups="ab"),
            "param_groups must be a list of dicts, one per parameter group",
        ),
        (
            lambda s: s["param_groups"][0].update(momentum=0.9),
            "group 0: settings ['momentum'] are not Adam's; this state_dict comes from another "
            "optimizer or framework",
        ),
        (
            lambda s: s.update(state=[1]),
            "state must be a dict: parameter name -> buffers, not a list",
        ),
        (
            lambda s: s.update(state={"v": {}}),
            "state for parameters this optimizer does not have: 'v' (its parameters: 'w')",
        ),
        (
            lambda s: s.update(state={0: {}}),
            "state for parameters this optimizer does not have: 0 (its parameters: 'w'); PyTorch "
            "numbers parameters, nabla names them (see docs/optimizers.md)",
        ),
        (
            lambda s: s["state"]["w"].update(bogus=np.zeros(2)),
            "state of w: unknown buffer 'bogus' (Adam keeps 'exp_avg', 'exp_avg_sq' with these "
            "settings; docs/optimizers.md lists every algorithm's)",
        ),
        (
            lambda s: s["state"].update(w={"step": 0, "exp_avg": np.zeros(2)}),
            "state of w: missing buffer 'exp_avg_sq' (Adam keeps it from the first step on)",
        ),
    ],
    ids=[
        "groups-list",
        "groups-str",
        "settings",
        "state",
        "stranger",
        "numbered",
        "unknown",
        "step-0",
    ],
)
def test_each_problem_reads_in_full(change, expected):
    assert re.search(line(expected), problems_of(change))


def test_every_parameters_problems_are_reported_not_only_the_first():
    """A stranger, or an entry that is no dict, does not stop the check of the next entry."""
    opt = optim.Adam(
        [("a", nb.tensor([1.0], requires_grad=True)), ("b", nb.tensor([2.0], requires_grad=True))]
    )
    bad = {"step": 1, "exp_avg": np.zeros(1)}
    for first in ({"zzz": {}}, {"a": 1}):
        saved = opt.state_dict()
        saved["state"] = {**first, "b": bad}
        with pytest.raises(ValueError) as error:
            opt.load_state_dict(saved)
        text = str(error.value)
        assert re.search(
            line("state of b: missing buffer 'exp_avg_sq' (Adam keeps it from the first step on)"),
            text,
        )
        if "a" in first:
            assert re.search(line("state of a must be a dict of buffers, not a int"), text)


def test_buffers_may_be_any_array_like():
    """A buffer only has to convert to an array (a torch tensor does): it loads."""
    opt, w = adam()
    saved = opt.state_dict()
    saved["state"]["w"] = {
        k: torch.tensor(np.asarray(v)) if k != "step" else v for k, v in saved["state"]["w"].items()
    }
    fresh = optim.Adam([("w", w)])
    fresh.load_state_dict(saved)
    for key, value in opt.state_dict()["state"]["w"].items():
        np.testing.assert_array_equal(fresh.state_dict()["state"]["w"][key], value)


class TwoOptional(optim.Optimizer):
    """theta <- theta - lr g, with two optional buffers."""

    defaults = {"lr": 0.1}

    def buffers(self, h, saved=None):
        return {"a": False, "b": False}

    def reference(self, theta, g, state, h, t):
        theta -= g * h["lr"]

    def kernel(self, theta, g, state, h, t, weight_decay, decay):
        self.reference_step(theta, g, state, h, t, weight_decay, decay)


def test_optional_buffers_are_listed_with_commas():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = TwoOptional([w])
    saved = opt.state_dict()
    saved["state"]["0.0"] = {"step": 1, "x": np.zeros(1)}
    with pytest.raises(
        ValueError,
        match=line(
            "state of 0.0: unknown buffer 'x' (TwoOptional keeps possibly 'a', 'b' with these "
            "settings; docs/optimizers.md lists every algorithm's)"
        ),
    ):
        opt.load_state_dict(saved)


@pytest.mark.parametrize("iterations, rate", [(0, 0.1), (1, 0.1), (2, 0.2), (3, 0.3)])
def test_loading_sets_lr_to_the_rate_of_the_last_step_taken(iterations, rate):
    """``lr`` is the first group's rate at the last step taken (step 0 before any)."""
    schedule = lambda t: 0.1 * (t + 1)  # noqa: E731
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    saved = optim.SGD([w], lr=schedule).state_dict()
    saved["iterations"] = iterations
    opt = optim.SGD([w], lr=0.5)
    opt.load_state_dict(saved)
    assert opt.lr == pytest.approx(rate, rel=1e-15)
