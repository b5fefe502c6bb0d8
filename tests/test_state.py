"""Nested training state through one safetensors file: optimizers resume bit-identically."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import models, nn, optim
from nabla.optim import schedules

OPTIMIZERS = [
    lambda p: optim.Adam(p, lr=schedules.CosineDecay(1e-2, decay_steps=50), amsgrad=True),
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda p: optim.RMSProp(p, lr=1e-3, centered=True, momentum=0.5),
    lambda p: optim.AdaGrad(p, lr=0.05, initial_accumulator_value=0.1),
]


def batches():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((16, 6)), rng.integers(0, 3, 16)) for _ in range(20)]


def train(model, opt, data):
    for x, y in data:
        opt.zero_grad()
        nn.functional.cross_entropy(model(nb.tensor(x, dtype="float64")), y).backward()
        opt.step()


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_model_and_optimizer_resume_bit_identically_through_a_file(tmp_path, make):
    data = batches()
    nb.manual_seed(0)
    straight = models.mlp([6, 8, 3]).double()
    opt = make(straight.named_parameters())
    train(straight, opt, data)

    nb.manual_seed(0)
    first = models.mlp([6, 8, 3]).double()
    opt1 = make(first.named_parameters())
    train(first, opt1, data[:10])
    nb.save_state(
        {"model": first.state_dict(), "optimizer": opt1.state_dict(), "epoch": 1}, tmp_path / "ckpt"
    )

    nb.manual_seed(99)  # a different initialization, overwritten by the checkpoint
    second = models.mlp([6, 8, 3]).double()
    opt2 = make(second.named_parameters())
    state = nb.load_state(tmp_path / "ckpt")
    second.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    assert state["epoch"] == 1
    train(second, opt2, data[10:])
    for (name, a), b in zip(straight.state_dict().items(), second.state_dict().values()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_lbfgs_state_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 4)), rng.integers(0, 2, 64)

    def run(model, opt, steps):
        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(nb.tensor(x, dtype="float64")), y)
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)

    nb.manual_seed(0)
    straight = nn.Linear(4, 2).double()
    run(straight, optim.LBFGS(straight.named_parameters(), history_size=3, max_iter=2), 6)
    nb.manual_seed(0)
    first = nn.Linear(4, 2).double()
    opt = optim.LBFGS(first.named_parameters(), history_size=3, max_iter=2)
    run(first, opt, 3)
    nb.save_state({"model": first.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "l")
    second = nn.Linear(4, 2).double()
    opt2 = optim.LBFGS(second.named_parameters(), history_size=3, max_iter=2)
    state = nb.load_state(tmp_path / "l")
    second.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    run(second, opt2, 3)
    np.testing.assert_array_equal(straight.weight.data, second.weight.data)


def test_structure_keeps_types_and_refuses_functions(tmp_path):
    obj = {"a/b": [1, 2.5, None, True, "s", float("inf")], "t": (np.int64(3),), "x": nb.ones(2)}
    nb.save_state(obj, tmp_path / "s")
    back = nb.load_state(tmp_path / "s")
    assert back["a/b"] == [1, 2.5, None, True, "s", float("inf")] and back["t"] == [3]
    assert back["x"].tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="schedule object"):
        nb.save_state({"lr": lambda step: 0.1}, tmp_path / "f")
    nb.save({"w": np.ones(2)}, tmp_path / "plain")
    with pytest.raises(nb.CheckpointError, match="not a nabla state file"):
        nb.load_state(tmp_path / "plain")
