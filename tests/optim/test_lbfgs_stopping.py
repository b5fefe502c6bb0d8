"""When an L-BFGS step stops, and what it leaves behind, against torch.optim.LBFGS.

Each stopping test of ``LBFGS.step`` (first-order optimality at the start, a direction that does
not descend, a negligible step, a negligible change of the loss, convergence after a step) is
checked at its exact boundary, where the two sides of ``<`` and ``<=`` part, on losses whose
every number is exact in binary (0.5 w^2 at w = 0.5, ...), so nabla and torch see the same
floats. The state torch keeps (``n_iter``, ``func_evals``, ``t``) is compared after each step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import optim


def quadratic(w):
    return (0.5 * w * w).sum()


def run(make, w0, loss=quadratic, steps=1, lrs=None, **settings):
    """Steps of an L-BFGS built by ``make`` on ``loss``: theta, n_iter, func_evals, t after each.

    ``lrs``: the rate of each step (torch's group lr is set before each step)."""
    torch_side = make is torch.optim.LBFGS
    if torch_side:
        w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    else:
        w = nb.tensor(w0, dtype="float64", requires_grad=True)
    if lrs is not None and not torch_side:
        settings["lr"] = lambda t: lrs[t]
    opt = make([w], **settings)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        value = loss(w)
        value.backward()
        return value

    out = []
    for i in range(steps):
        if lrs is not None and torch_side:
            opt.param_groups[0]["lr"] = lrs[i]
        opt.step(closure)
        theta = w.detach().numpy().copy() if torch_side else w.data.copy()
        memory = opt.state[w] if torch_side else opt.state_dict()["lbfgs"]
        out.append(
            (
                theta.tolist(),
                memory.get("n_iter"),
                memory.get("func_evals"),
                memory.get("t"),
                len(calls),
            )
        )
    return out


def assert_same_as_torch(w0, loss=quadratic, steps=1, lrs=None, **settings):
    ours = run(optim.LBFGS, w0, loss, steps, lrs, **settings)
    theirs = run(torch.optim.LBFGS, w0, loss, steps, lrs, **settings)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13, atol=1e-14)
        assert a[1:] == b[1:]
    return ours


def test_a_fresh_state_holds_no_history_and_h0_is_the_identity():
    opt = optim.LBFGS([nb.tensor([1.0], dtype="float64", requires_grad=True)])
    assert opt.state_dict()["lbfgs"] == {
        "n_iter": 0,
        "func_evals": 0,
        "t": None,
        "gamma": 1.0,
        "rho": [],
        "prev_loss": None,
    }


@pytest.mark.parametrize("tolerance_grad", [0.25, 0.5, 0.125])
def test_a_start_within_tolerance_grad_takes_no_step(tolerance_grad):
    """max|g| = 0.25 at w = 0.25: stop at once when max|g| <= tolerance_grad (equal included)."""
    out = assert_same_as_torch([0.25, -0.125], tolerance_grad=tolerance_grad)
    moved = out[0][0] != [0.25, -0.125]
    assert moved == (tolerance_grad < 0.25)


@pytest.mark.parametrize("tolerance_change", [0.25, 0.3, 0.125])
def test_a_direction_that_barely_descends_ends_the_step(tolerance_change):
    """g^T d = -0.25 at w = 0.5: the step stops when g^T d > -tolerance_change."""
    out = assert_same_as_torch([0.5], max_iter=1, tolerance_change=tolerance_change)
    assert (out[0][0] == [0.5]) == (tolerance_change > 0.25)


@pytest.mark.parametrize("w0", [[4.0], [0.5, -1.5, 2.0]])
def test_the_first_step_is_scaled_by_the_inverse_l1_norm_of_the_gradient(w0):
    """t = min(1, 1 / sum|g|) lr on the very first iteration, then lr."""
    assert_same_as_torch(w0, max_iter=1, lr=0.5)
    assert_same_as_torch(w0, max_iter=2, lr=0.5)


def test_a_negligible_step_ends_the_iterations_at_equality():
    """At w = 0.5, lr = 0.5: max|t d| = 0.25 = tolerance_change stops after one iteration."""
    for tol in (0.25, 0.2):
        assert_same_as_torch([0.5], lr=0.5, max_iter=5, tolerance_change=tol, tolerance_grad=0.0)


def test_a_negligible_change_of_the_loss_ends_the_iterations():
    """w = 0.5 -> 0.25: the loss falls by 0.09375 exactly; it stops when that is < tolerance."""
    for tol in (0.09375, 0.1, 0.05):
        assert_same_as_torch([0.5], lr=0.5, max_iter=5, tolerance_change=tol, tolerance_grad=0.0)


def test_a_loss_far_from_zero_stops_on_its_change_not_its_size():
    out = assert_same_as_torch(
        [0.5], loss=lambda w: (0.5 * w * w + 10.0).sum(), lr=0.5, max_iter=5, tolerance_change=0.1
    )
    assert out[0][1] == 1


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_convergence_after_a_step_ends_it_with_torchs_state(line_search):
    """After one step the gradient is max|g| = tolerance_grad (w: 1 -> 0.25 with lr 0.75; the
    exact line search of a quadratic lands on 0): converged, the state is torch's."""
    for tol in (0.25, 0.2):
        assert_same_as_torch(
            [1.0], lr=0.75, max_iter=5, tolerance_grad=tol, line_search_fn=line_search
        )
    assert_same_as_torch([1.0, -2.0], max_iter=5, steps=2, line_search_fn=line_search)


def test_the_step_count_and_rate_schedule_follow_torch():
    """lr as a schedule of the step count: each step uses lrs[step], as torch with its group's
    lr set before each step; ``iterations`` counts the steps."""
    lrs = [0.5, 0.25, 1.0, 0.125]
    assert_same_as_torch(
        [3.0, -1.0], loss=lambda w: ((w - 1.0) ** 4).sum(), steps=4, lrs=lrs, max_iter=2
    )
    opt = optim.LBFGS([nb.tensor([3.0], dtype="float64", requires_grad=True)], lr=lambda t: lrs[t])
    w = opt.param_groups[0]["params"][0]

    def closure():
        opt.zero_grad()
        value = ((w - 1.0) ** 4).sum()
        value.backward()
        return value

    for i in range(4):
        opt.step(closure)
        assert opt.iterations == i + 1 and opt.lr == lrs[i]


def test_a_concave_line_keeps_h0_when_the_pair_is_skipped():
    """On -(w + w^2) without a line search, y^T s < 0: the pair is skipped and the next
    direction is -gamma g with gamma = 1 (torch's H_diag), as torch."""
    assert_same_as_torch([0.0], loss=lambda w: -(w + w * w).sum(), max_iter=3, lr=0.1)


@pytest.mark.parametrize("tolerance_change", [1.0, 0.5])
def test_the_negligible_step_is_measured_as_max_abs_t_d(tolerance_change):
    """On the line 4 w: t = 1/4, d = -4, so max|t d| = 1 (t / max|d| would be 1/16); the loss
    falls by 4 each iteration, so only the step's size can stop it."""
    out = assert_same_as_torch(
        [0.0], loss=lambda w: (4.0 * w).sum(), max_iter=3, tolerance_change=tolerance_change
    )
    assert out[0][1] == (1 if tolerance_change == 1.0 else 2)  # then max_eval = 3 calls


def test_freezing_a_parameter_between_steps_resizes_the_work_arrays():
    """The work arrays follow the set of trained parameters: after b is frozen, a step over
    a alone is torch's step over a alone."""
    a = nb.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    b = nb.tensor([2.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([a, b], max_iter=2, line_search="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = ((a - 1.0) ** 4).sum() + ((b - 1.0) ** 2).sum()
        value.backward()
        return value

    opt.step(closure)
    b.requires_grad = False
    opt.step(closure)
    assert np.isfinite(a.data).all() and b.data.tolist() != [2.0]
