"""Loading a state_dict that does not fit: every problem is named, with the names of the
parameters and buffers involved (listings quoted or not, cut after eight), for every optimizer
and for L-BFGS' own entry.
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import optim


def one_param(values=(1.0, -2.0), dtype="float64"):
    return [nb.tensor(list(values), dtype=dtype, requires_grad=True)]


# --- loading a state_dict: the messages name what differs -----------------------------------------


def saved_with(params):
    opt = optim.Adam(params)
    return opt.state_dict()


def test_a_group_with_other_parameters_names_the_difference():
    a, b = nb.tensor([1.0], requires_grad=True), nb.tensor([2.0], requires_grad=True)
    c = nb.tensor([3.0], requires_grad=True)
    opt = optim.Adam([("a", a), ("b", b)])
    cases = {
        "order": (
            [("b", b), ("a", a)],
            r"(?m)different parameters: the same names in a "
            r"different order$",
        ),
        "missing": ([("a", a)], r"(?m)different parameters: missing \['b'\]$"),
        "unexpected": (
            [("a", a), ("b", b), ("c", c)],
            r"(?m)different parameters: unexpected \['c'\]$",
        ),
        "both": (
            [("a", a), ("c", c)],
            r"(?m)different parameters: missing \['b'\]; unexpected \['c'\]$",
        ),
    }
    for params, match in cases.values():
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(saved_with(params))


# --- loading: the listings in the messages --------------------------------------------------------


def test_messages_list_names_quoted_or_not_and_cut_after_eight():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([("w", w)], momentum=0.9)
    saved = opt.state_dict()
    saved["state"] = {f"p{i}": {} for i in range(10)}
    with pytest.raises(
        ValueError,
        match=r"does not have: 'p0', 'p1', 'p2', 'p3', 'p4', 'p5', "
        r"'p6', 'p7', \.\.\. \(10 in all\) \(its parameters: "
        r"'w'\)",
    ):
        opt.load_state_dict(saved)
    saved["state"] = {f"p{i}": {} for i in range(8)}  # eight: all shown
    with pytest.raises(ValueError, match=r"does not have: 'p0', .*, 'p7' \(its parameters: 'w'\)"):
        opt.load_state_dict(saved)
    saved["state"] = {"w": {"step": 1, "velocty": np.zeros(1)}}  # SGD's only buffer is optional
    with pytest.raises(
        ValueError,
        match=r"(?m)state of w: unknown buffer 'velocty' \(SGD keeps "
        r"possibly 'velocity' with these settings",
    ):
        opt.load_state_dict(saved)
    rms = optim.RMSProp([("w", w)])
    saved = rms.state_dict()
    saved["state"] = {"w": {"step": 1, "square_avg": np.zeros(1), "sq": np.zeros(1)}}
    with pytest.raises(
        ValueError,
        match=r"RMSProp keeps 'square_avg' and possibly "
        r"'momentum_buffer' with these settings",
    ):
        rms.load_state_dict(saved)
    adam = optim.Adam([("w", w)])
    saved = adam.state_dict()
    saved["state"] = {"w": {"step": 2, "exp_avg": np.zeros(1)}}
    with pytest.raises(ValueError, match=r"(?m)state of w: missing buffer 'exp_avg_sq'"):
        adam.load_state_dict(saved)


def lbfgs_after_steps():
    w = nb.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([w], max_iter=3)

    def closure():
        opt.zero_grad()
        loss = ((w - 1.0) ** 4).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return opt


def test_lbfgs_buffers_follow_its_history():
    opt = lbfgs_after_steps()
    pairs = len(opt.state_dict()["lbfgs"]["rho"])
    assert pairs >= 1
    history = {f"{v}.{i}": True for i in range(pairs) for v in "sy"}
    assert opt.buffers(opt.param_groups[0]) == {"d": True, "prev_flat_grad": True, **history}


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda s: s.update(lbfgs="x"),
            r"lbfgs must be a dict of \['func_evals', 'gamma', "
            r"'n_iter', 'prev_loss', 'rho', 't'\]",
        ),
        (lambda s: s["lbfgs"].update(extra=1), r"lbfgs: missing \[\], unknown \['extra'\]"),
        (lambda s: s["lbfgs"].pop("gamma"), r"lbfgs: missing \['gamma'\], unknown \[\]"),
        (
            lambda s: s["lbfgs"].pop("rho"),
            r"missing \['rho'\], unknown \[\] \(it holds \[[^]]*\]\)\Z",
        ),
        (
            lambda s: s["lbfgs"].update(rho=[1.0, "x"]),
            r"lbfgs: rho must be a list of numbers \(1 / y_i\^T s_i\), got \[1.0, 'x'\]",
        ),
        (lambda s: s.pop("lbfgs"), r"missing entries \['lbfgs'\]"),
        (lambda s: s["state"]["0.0"].pop("d"), r"state of 0.0: missing buffer 'd'"),
    ],
    ids=["not-a-dict", "unknown", "missing", "no-rho", "rho", "no-entry", "no-d"],
)
def test_lbfgs_state_problems_are_named(change, match):
    opt = lbfgs_after_steps()
    saved = opt.state_dict()
    change(saved)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(saved)


def test_lbfgs_refuses_a_state_dict_that_is_not_a_dict_and_a_rho_that_is_not_a_list():
    opt = lbfgs_after_steps()
    with pytest.raises(ValueError, match=r"a state_dict is a dict, got a list"):
        opt.load_state_dict([1, 2])
    saved = opt.state_dict()
    saved["lbfgs"]["rho"] = "ab"
    saved["state"]["0.0"] = {k: v for k, v in saved["state"]["0.0"].items() if "." not in k}
    with pytest.raises(ValueError, match=r"rho must be a list of numbers") as error:
        opt.load_state_dict(saved)
    assert "buffer" not in str(error.value)  # a string's length is no count of pairs


@pytest.mark.parametrize(
    "make, drop",
    [
        (lambda w: optim.AdaGrad([w]), "sum_squares"),
        (lambda w: optim.RMSProp([w]), "square_avg"),
        (lambda w: optim.RMSProp([w], centered=True), "grad_avg"),
    ],
)
def test_a_required_buffer_missing_after_steps_is_refused(make, drop):
    w = nb.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    opt = make(w)
    w.grad[...] = 1.0
    opt.step()
    saved = opt.state_dict()
    del saved["state"]["0.0"][drop]
    with pytest.raises(ValueError, match=rf"state of 0.0: missing buffer '{drop}'"):
        opt.load_state_dict(saved)


def test_lbfgs_previous_gradient_is_required_and_reference_is_refused():
    opt = lbfgs_after_steps()
    saved = opt.state_dict()
    del saved["state"]["0.0"]["prev_flat_grad"]
    with pytest.raises(ValueError, match=r"state of 0.0: missing buffer 'prev_flat_grad'"):
        opt.load_state_dict(saved)
    with pytest.raises(TypeError, match=r"LBFGS updates only through step\(closure\)"):
        opt.reference(np.zeros(2), np.zeros(2), None, {}, 1)


class Plain(optim.Optimizer):
    """A minimal optimizer without state buffers: theta <- theta - lr g."""

    defaults = {"lr": 0.1}

    def reference(self, theta, g, state, h, t):
        theta -= g * h["lr"]

    def kernel(self, theta, g, state, h, t, weight_decay, decay):
        self.reference_step(theta, g, state, h, t, weight_decay, decay)


def test_an_optimizer_without_buffers_says_so():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = Plain([w])
    w.grad[...] = 1.0
    opt.step()
    assert w.data.tolist() == [0.9]
    saved = opt.state_dict()
    saved["state"]["0.0"]["x"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"unknown buffer 'x' \(Plain keeps no buffers with these"):
        opt.load_state_dict(saved)
