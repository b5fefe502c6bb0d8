"""Details of the Optimizer base class that the algorithm tests leave open.

test_parity.py and test_conventions.py hold the updates to PyTorch and to the formulas; this file
pins the rest of the step (the closure, the rate of the last step, decoupled weight decay),
gradient clipping at its edges, the statistics helpers and the printed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nabla as nb
from nabla import optim


def one_param(values=(1.0, -2.0), dtype="float64"):
    return [nb.tensor(list(values), dtype=dtype, requires_grad=True)]


# --- the step ------------------------------------------------------------------------------------


def test_step_calls_the_closure_with_gradients_on_and_returns_its_loss():
    w = one_param()[0]
    opt = optim.SGD([w], lr=0.5)
    seen = []

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        seen.append(loss.requires_grad)
        loss.backward()
        return loss

    with nb.no_grad():
        loss = opt.step(closure)
    assert seen == [True]
    assert float(loss.data) == 5.0
    np.testing.assert_array_equal(w.data, [0.0, 0.0])  # w - 0.5 * 2w
    assert opt.step() is None


def test_lr_is_the_first_groups_rate_of_the_last_step():
    w, b = one_param()[0], one_param()[0]
    opt = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=lambda t: 0.1 * (t + 1))
    assert opt.lr == 0.1
    opt.step()
    assert opt.lr == 0.1
    opt.step()
    assert opt.lr == pytest.approx(0.2)


def test_decoupled_weight_decay_of_sgd_is_one_multiplication():
    """theta <- (1 - lr wd) theta - lr g (decoupled); theta - lr (g + wd theta) (coupled)."""
    for compiled in (True, False):
        with nb.kernels.reference(not compiled):
            w = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
            opt = optim.SGD([w], lr=0.5, weight_decay=0.1, decoupled_weight_decay=True)
            w.grad[...] = [1.0, 1.0]
            opt.step()
            np.testing.assert_allclose(w.data, [0.95 - 0.5, -1.9 - 0.5], rtol=1e-15)
            v = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
            opt = optim.SGD([v], lr=0.5, weight_decay=0.1)
            v.grad[...] = [1.0, 1.0]
            opt.step()
            np.testing.assert_allclose(v.data, [1.0 - 0.5 * 1.1, -2.0 - 0.5 * 0.8], rtol=1e-15)


# --- statistics and clipping ----------------------------------------------------------------------


def two_groups():
    w = nb.tensor([3.0, -4.0], dtype="float64", requires_grad=True)
    b = nb.tensor([12.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([{"params": [w]}, {"params": [b]}], lr=0.1)
    w.grad[...] = [3.0, -4.0]
    b.grad[...] = [12.0]
    return opt, w, b


def test_grad_norm_and_the_flat_vectors():
    opt, w, b = two_groups()
    assert opt.grad_norm() == 13.0
    thetas, grads = opt.parameter_vectors(), opt.gradient_vectors()
    assert [t.tolist() for t in thetas] == [[3.0, -4.0], [12.0]]
    assert [g.tolist() for g in grads] == [[3.0, -4.0], [12.0]]
    assert np.shares_memory(thetas[0], w.data) and np.shares_memory(grads[1], b.grad)


def test_clip_grad_norm_at_its_edges():
    opt, w, b = two_groups()
    assert opt.clip_grad_norm_(13.0) == 13.0  # exactly at the limit: left as it is
    np.testing.assert_array_equal(w.grad, [3.0, -4.0])
    assert opt.clip_grad_norm_(20.0, norm_type=math.inf) == 12.0
    assert opt.clip_grad_norm_(19.0, norm_type=1) == 19.0
    np.testing.assert_array_equal(b.grad, [12.0])
    total = opt.clip_grad_norm_(6.0, norm_type=math.inf)
    assert total == 12.0
    np.testing.assert_allclose(b.grad, [6.0], rtol=1e-6)
    for bad in (0, -1.0):
        with pytest.raises(
            ValueError,
            match=rf"clip_grad_norm_: norm_type must be > 0 \(or inf\), "
            rf"got {bad}",
        ):
            opt.clip_grad_norm_(1.0, norm_type=bad)
    # parameters with no elements: the norm of nothing is 0, whatever the norm
    empty = optim.SGD([nb.tensor(np.zeros(0), requires_grad=True)])
    assert empty.clip_grad_norm_(1.0, norm_type=math.inf) == 0.0
    assert empty.clip_grad_norm_(1.0) == 0.0


def test_zero_grad_without_none_keeps_the_views():
    opt, w, b = two_groups()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad and not grad.any() and not b.grad.any()
    assert opt.grad_norm() == 0.0


# --- the printed form -----------------------------------------------------------------------------


def test_repr_lists_each_groups_settings():
    w, b = one_param()[0], one_param()[0]
    opt = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    lines = repr(opt).split("\n")
    settings = [f"    {k}: {v}" for k, v in optim.SGD.defaults.items()]
    first = [
        s.replace("lr: 0.01", "lr: 0.1").replace("momentum: 0.0", "momentum: 0.9") for s in settings
    ]
    second = [s.replace("lr: 0.1", "lr: 0.5") for s in first]
    assert lines == ["SGD (", "Parameter Group 0", *first, "Parameter Group 1", *second, ")"]
    assert repr(optim.AdamW(one_param())).startswith("AdamW (\nParameter Group 0\n    lr: 0.001")


# --- momentum switched off by a schedule, then on again -------------------------------------------


def momentum_steps(make, grads):
    """theta after one step per gradient in ``grads``, on both kernel paths."""
    out = []
    for compiled in (True, False):
        with nb.kernels.reference(not compiled):
            w = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
            opt = make(w)
            for g in grads:
                w.grad[...] = g
                opt.step()
            out.append(w.data.copy())
    return out


def test_sgd_keeps_its_velocity_while_a_momentum_schedule_is_at_zero():
    """momentum = 0.9, 0, 0.5 with dampening 0.5: at momentum 0 the velocity is still the
    momentum formula's, v <- 0 v - (1 - d) alpha g, and carries on into the next step."""
    g = np.array([1.0, -2.0])
    ours = momentum_steps(
        lambda w: optim.SGD([w], lr=0.1, momentum=lambda t: [0.9, 0.0, 0.5][t], dampening=0.5),
        [g, g, g],
    )
    v = -0.1 * g  # first step: no dampening
    v = 0.0 * v - 0.05 * g
    theta = np.array([1.0, -2.0]) - 0.1 * g + v
    v = 0.5 * v - 0.05 * g
    theta += v
    for result in ours:
        np.testing.assert_allclose(result, theta, rtol=1e-15)


def test_rmsprop_keeps_its_momentum_buffer_while_a_momentum_schedule_is_at_zero():
    """momentum = 0.5, 0, 0.5: at momentum 0 the buffer becomes the plain step g / (sqrt(r) +
    eps) and the third step adds half of it."""
    grads = [np.array([1.0, -2.0]), np.array([0.5, 3.0]), np.array([-1.0, 1.0])]
    ours = momentum_steps(
        lambda w: optim.RMSProp([w], lr=0.01, momentum=lambda t: [0.5, 0.0, 0.5][t]), grads
    )
    theta, r, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for m, g in zip([0.5, 0.0, 0.5], grads):
        r = 0.9 * r + 0.1 * g * g
        v = m * v + g / (np.sqrt(r) + 1e-8)
        theta = theta - 0.01 * v
    for result in ours:
        np.testing.assert_allclose(result, theta, rtol=1e-13)


# --- a step writes the parameters in place: graphs that used them must not backprop -----------


def test_a_step_after_the_forward_pass_stops_its_backward():
    """The step counts as one in-place write of each parameter: a graph built after one step
    and backpropagated after the next is refused, also when another input of the operation was
    written in place too (each write adds to the versions the graph compares)."""
    message = r"an input of Mul \(input shapes \(2,\), \(2,\)\) was modified in place"
    w = nb.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    x = nb.tensor([3.0, 4.0], dtype="float64")
    opt = optim.SGD([w], lr=0.1)
    opt.step()
    y = (w * x).sum()
    opt.step()
    with pytest.raises(RuntimeError, match=message):
        y.backward()
    y = (w * x).sum()
    opt.step()
    x += 1.0
    with pytest.raises(RuntimeError, match=message):
        y.backward()
    y = (w * x).sum()
    y.backward()  # nothing written since: fine
    np.testing.assert_array_equal(w.grad, [4.0, 5.0])


class Recording(optim.Optimizer):
    """An optimizer without a weight_decay setting: its kernel records what step() passes."""

    defaults = {"lr": 0.1}

    def reference(self, theta, g, state, h, t):
        theta -= g * h["lr"]

    def kernel(self, theta, g, state, h, t, weight_decay, decay):
        self.seen = (weight_decay, decay)
        self.reference_step(theta, g, state, h, t, weight_decay, decay)


def test_an_optimizer_without_weight_decay_gets_none_zero_and_decay_one():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = Recording([w])
    w.grad[...] = 1.0
    with nb.kernels.reference(False):
        opt.step()
    assert opt.seen == (0.0, 1.0) and type(opt.seen[0]) is float
