"""The flat buffers behind every optimizer: a parameter that was frozen when the state was
saved starts its buffers from their initial values after loading, a parameter whose ``.data``
is replaced is followed, and subnormal values are flushed below the smallest normal number only.
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import optim
from nabla.optim.flat import flush_subnormals


def first_step_after_loading(make):
    """b frozen while a trains one step; the state_dict (which has no entry for b) is loaded
    into a new optimizer where b trains: b's update, and b's update by a fresh optimizer."""
    a = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    b = nb.tensor([3.0], dtype="float64", requires_grad=True)
    b.requires_grad = False
    opt = make([("a", a), ("b", b)])
    a.grad[...] = [0.5, 0.25]
    opt.step()
    saved = opt.state_dict()
    assert list(saved["state"]) == ["a"]
    a2 = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    b2 = nb.tensor([3.0], dtype="float64", requires_grad=True)
    loaded = make([("a", a2), ("b", b2)])
    loaded.load_state_dict(saved)
    a2.grad[...], b2.grad[...] = 0.0, 2.0
    loaded.step()
    c = nb.tensor([3.0], dtype="float64", requires_grad=True)
    fresh = make([("b", c)])
    c.grad[...] = 2.0
    fresh.step()
    return b2.data, c.data


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.Adam(p, lr=0.1),
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: optim.RMSProp(p, lr=0.1, centered=True),
    ],
    ids=["adam", "sgd", "rmsprop"],
)
def test_a_parameter_without_saved_state_starts_afresh_after_loading(make):
    ours, fresh = first_step_after_loading(make)
    np.testing.assert_array_equal(ours, fresh)


def test_adagrad_starts_a_parameter_without_saved_state_at_its_initial_accumulator():
    ours, fresh = first_step_after_loading(
        lambda p: optim.AdaGrad(p, lr=0.1, initial_accumulator_value=0.5)
    )
    np.testing.assert_array_equal(ours, fresh)  # 3 - 0.1 * 2 / sqrt(0.5 + 4)


def test_a_parameter_whose_data_is_replaced_is_updated_in_its_new_array():
    w = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([w], lr=0.5)
    w.grad[...] = 1.0
    opt.step()
    w.data = np.array([5.0, 6.0])
    w.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(w.data, [4.5, 5.5])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flush_subnormals_keeps_the_smallest_normal_number(dtype):
    tiny = np.finfo(dtype).tiny
    buf = np.array([tiny, -tiny, tiny / 2, -tiny / 4, 1.0], dtype=dtype)
    flush_subnormals(buf)
    np.testing.assert_array_equal(buf, np.array([tiny, -tiny, 0.0, 0.0, 1.0], dtype=dtype))


def test_adagrad_remembers_its_initial_accumulator_when_reloaded_into_the_same_optimizer():
    """The optimizer keeps each buffer's first value across rebuilds of its groups: b, frozen
    when the state was saved, starts at initial_accumulator_value after the reload."""
    a = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    b = nb.tensor([3.0], dtype="float64", requires_grad=True)
    b.requires_grad = False
    opt = optim.AdaGrad([("a", a), ("b", b)], lr=0.1, initial_accumulator_value=0.5)
    a.grad[...] = [0.5, 0.25]
    opt.step()
    saved = opt.state_dict()
    b.requires_grad = True
    opt.load_state_dict(saved)
    a.grad[...], b.grad[...] = 0.0, 2.0
    opt.step()
    np.testing.assert_allclose(b.data, [3.0 - 0.1 * 2.0 / np.sqrt(4.5)], rtol=1e-10)  # (eps)


def test_step_counts_are_saved_as_integers():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([("w", w)])
    w.grad[...] = 1.0
    opt.step()
    step = opt.state_dict()["state"]["w"]["step"]
    assert step.dtype.kind == "i" and step == 1


def test_adagrad_fills_each_group_from_its_own_initial_accumulator():
    """Two groups with different r_0: a parameter of the second group loaded without saved state
    starts from the second group's r_0, not from the first's."""

    def make(a, b):
        return optim.AdaGrad(
            [{"params": [a]}, {"params": [b], "initial_accumulator_value": 2.0}],
            lr=0.1,
            initial_accumulator_value=0.5,
        )

    a, b = (nb.tensor([1.0], dtype="float64", requires_grad=True) for _ in range(2))
    b.requires_grad = False
    opt = make(a, b)
    a.grad[...] = 1.0
    opt.step()
    a2, b2 = (nb.tensor([1.0], dtype="float64", requires_grad=True) for _ in range(2))
    loaded = make(a2, b2)
    loaded.load_state_dict(opt.state_dict())
    a2.grad[...], b2.grad[...] = 0.0, 2.0
    loaded.step()
    np.testing.assert_allclose(
        b2.data, [1.0 - 0.1 * 2.0 / (np.sqrt(2.0 + 4.0) + 1e-10)], rtol=1e-12
    )
