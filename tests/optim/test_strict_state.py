"""Optimizer.load_state_dict is strict: every way a state_dict does not fit the optimizer is
refused in one message that names each problem, and nothing is loaded. What an optimizer itself
writes (before its first step, with frozen parameters, after a checkpoint file) still loads."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import nabla as nb
from nabla import models, optim
from nabla.nn import functional as F

# Every algorithm and variant, with the buffers its state_dict holds after a step: the same
# lists as docs/optimizers.md ("State buffers, by algorithm").
BUFFERS = [
    (optim.SGD, {"lr": 0.1}, []),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9}, ["velocity"]),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, ["velocity"]),
    (optim.AdaGrad, {"lr": 0.1}, ["sum_squares"]),
    (optim.RMSProp, {"lr": 0.01}, ["square_avg"]),
    (optim.RMSProp, {"lr": 0.01, "centered": True}, ["square_avg", "grad_avg"]),
    (optim.RMSProp, {"lr": 0.01, "momentum": 0.5}, ["square_avg", "momentum_buffer"]),
    (optim.Adam, {"lr": 0.01}, ["exp_avg", "exp_avg_sq"]),
    (optim.Adam, {"lr": 0.01, "amsgrad": True}, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    (optim.AdamW, {"lr": 0.01}, ["exp_avg", "exp_avg_sq"]),
]
IDS = [
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "rmsprop-centered",
    "rmsprop-momentum",
    "adam",
    "amsgrad",
    "adamw",
]


def make_model(seed: int = 0, sizes=(5, 8, 3)):
    nb.manual_seed(seed)
    return models.mlp(list(sizes)).double()


def train(model, opt, steps: int = 2, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = nb.tensor(rng.normal(size=(16, 5)), dtype="float64")
        y = nb.tensor(rng.integers(0, 3, 16))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def trained(cls=optim.Adam, steps: int = 2, **kwargs):
    """A model, its optimizer after ``steps`` updates, and a deep copy of its state_dict."""
    model = make_model()
    opt = cls(model.named_parameters(), **(kwargs or {"lr": 0.01}))
    train(model, opt, steps)
    return model, opt, copy.deepcopy(opt.state_dict())


def fresh(cls=optim.Adam, **kwargs):
    return cls(make_model(seed=3).named_parameters(), **(kwargs or {"lr": 0.01}))


def refusal(opt, saved) -> str:
    """The message of the ValueError that loading ``saved`` raises; the optimizer is unchanged."""
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(saved)
    after = opt.state_dict()
    assert after["iterations"] == before["iterations"]
    assert after["param_groups"] == before["param_groups"]
    for name, buffers in before["state"].items():
        for key, value in buffers.items():
            np.testing.assert_array_equal(after["state"][name][key], value, err_msg=key)
    message = str(info.value)
    assert message.startswith(f"{type(opt).__name__}.load_state_dict")
    return message


# --- what the optimizer writes loads --------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs", "buffers"), BUFFERS, ids=IDS)
def test_each_algorithm_keeps_the_documented_buffers_and_loads_them(cls, kwargs, buffers):
    _, _, saved = trained(cls, **kwargs)
    for name, state in saved["state"].items():
        assert sorted(state) == sorted(["step", *buffers]), name
    opt = fresh(cls, **kwargs)
    opt.load_state_dict(saved)
    assert opt.state_dict()["state"].keys() == saved["state"].keys()


@pytest.mark.parametrize(("cls", "kwargs", "buffers"), BUFFERS, ids=IDS)
def test_a_state_saved_before_the_first_step_loads(cls, kwargs, buffers):
    model = make_model()
    saved = cls(model.named_parameters(), **kwargs).state_dict()
    assert all(set(state) == {"step"} for state in saved["state"].values())  # no buffers yet
    opt = fresh(cls, **kwargs)
    opt.load_state_dict(saved)
    assert opt.iterations == 0


def test_parameters_without_state_and_float_buffers_of_another_precision_load():
    _, _, saved = trained()
    del saved["state"]["2.bias"]  # a parameter that never took a step (frozen, say): no state
    saved["state"]["0.bias"] = {}
    saved["state"]["0.weight"]["exp_avg"] = saved["state"]["0.weight"]["exp_avg"].astype(np.float32)
    saved["state"]["2.weight"]["step"] = 2.0  # PyTorch keeps step as a float tensor
    opt = fresh()
    opt.load_state_dict(saved)
    state = opt.state_dict()["state"]
    assert state["0.weight"]["exp_avg"].dtype == np.float64  # cast to the parameter's dtype
    assert int(state["2.weight"]["step"]) == 2 and int(state["2.bias"]["step"]) == 0


def test_a_checkpoint_file_loads(tmp_path):
    _, opt, _ = trained(optim.RMSProp, lr=0.01, centered=True, momentum=0.5)
    nb.save_state({"optimizer": opt.state_dict()}, tmp_path / "state.safetensors")
    other = fresh(optim.RMSProp, lr=0.01, centered=True, momentum=0.5)
    other.load_state_dict(nb.load_state(tmp_path / "state.safetensors")["optimizer"])
    assert other.iterations == 2


# --- buffers ------------------------------------------------------------------------------------


def test_a_misspelt_buffer_is_refused_naming_it_and_the_algorithms_buffers():
    _, _, saved = trained()
    for state in saved["state"].values():
        state["exp_avg_sqr"] = state.pop("exp_avg_sq")
    message = refusal(fresh(), saved)
    assert "'exp_avg_sqr'" in message
    assert "'exp_avg', 'exp_avg_sq'" in message  # what Adam keeps
    assert "0.weight" in message and "2.bias" in message


def test_another_optimizers_buffers_are_refused():
    _, _, saved = trained(optim.SGD, lr=0.1, momentum=0.9)
    adam_groups = fresh().state_dict()["param_groups"]
    message = refusal(fresh(), {**saved, "param_groups": adam_groups})
    assert "'velocity'" in message and "exp_avg" in message


def test_amsgrads_buffer_only_with_amsgrad():
    _, _, saved = trained(optim.Adam, lr=0.01, amsgrad=True)
    saved["param_groups"][0]["amsgrad"] = False
    message = refusal(fresh(), saved)
    assert "'max_exp_avg_sq'" in message


def test_a_missing_buffer_after_steps_is_refused():
    _, _, saved = trained(optim.Adam, lr=0.01, amsgrad=True)
    del saved["state"]["0.weight"]["exp_avg_sq"]
    del saved["state"]["2.bias"]["max_exp_avg_sq"]
    message = refusal(fresh(optim.Adam, lr=0.01, amsgrad=True), saved)
    assert "'exp_avg_sq'" in message and "0.weight" in message
    assert "'max_exp_avg_sq'" in message and "2.bias" in message


def test_buffers_without_a_step_count_are_refused():
    _, _, saved = trained()
    del saved["state"]["0.weight"]["step"]
    assert "'step'" in refusal(fresh(), saved)


def test_wrong_shapes_are_refused():
    _, _, saved = trained()
    saved["state"]["0.weight"]["exp_avg"] = np.zeros((5, 8))
    saved["state"]["2.bias"]["step"] = np.array([2, 2])
    message = refusal(fresh(), saved)
    assert "'exp_avg' of 0.weight has shape (5, 8)" in message and "(8, 5)" in message
    assert "2.bias" in message and "step" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("exp_avg", np.zeros((8, 5), dtype=np.int64), "int64"),
        ("exp_avg", np.zeros((8, 5), dtype=bool), "bool"),
        ("exp_avg", np.zeros((8, 5), dtype=np.complex128), "complex128"),
        ("exp_avg", "zeros", "str"),
        ("step", 2.5, "2.5"),
        ("step", -1, "-1"),
        ("step", "2", "'2'"),
    ],
)
def test_wrong_dtypes_are_refused(key, value, expected):
    _, _, saved = trained()
    saved["state"]["0.weight"][key] = value
    message = refusal(fresh(), saved)
    assert "0.weight" in message and key in message and expected in message


# --- parameters and groups ------------------------------------------------------------------------


def test_state_for_an_unknown_parameter_is_refused():
    _, _, saved = trained()
    saved["state"]["fc.weight"] = saved["state"].pop("0.weight")
    message = refusal(fresh(), saved)
    assert "'fc.weight'" in message and "'0.weight'" in message


def test_missing_and_unexpected_parameters_of_a_group_are_refused():
    _, _, saved = trained()
    other = optim.Adam(make_model(sizes=(5, 8, 8, 3)).named_parameters(), lr=0.01)
    message = refusal(other, saved)
    assert "missing ['4.weight', '4.bias']" in message
    reordered = copy.deepcopy(saved)
    reordered["param_groups"][0]["params"].reverse()
    assert "order" in refusal(fresh(), reordered)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.pop("iterations"), "'iterations'"),
        (lambda s: s.update(extra=1), "'extra'"),
        (lambda s: s.update(iterations=-2), "iterations"),
        (lambda s: s.update(param_groups={"params": []}), "param_groups"),
        (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "2 parameter groups"),
        (lambda s: s["param_groups"][0].pop("params"), "'params'"),
        (lambda s: s["param_groups"][0].update(momentum=0.9), "another optimizer"),
        (lambda s: s["param_groups"][0].update(beta1=1.5), "beta1"),
        (lambda s: s.update(state=[]), "state"),
        (lambda s: s["state"].update({"0.bias": np.zeros(8)}), "0.bias"),
    ],
    ids=[
        "no-iterations",
        "extra-entry",
        "negative-iterations",
        "groups-not-a-list",
        "group-count",
        "group-without-params",
        "foreign-setting",
        "invalid-setting",
        "state-not-a-dict",
        "entry-not-a-dict",
    ],
)
def test_a_wrong_structure_is_refused(change, expected):
    _, _, saved = trained()
    change(saved)
    assert expected in refusal(fresh(), saved)


def test_every_problem_is_named_in_one_message():
    _, _, saved = trained()
    saved["state"]["0.weight"]["exp_avg_sqr"] = saved["state"]["0.weight"].pop("exp_avg_sq")
    saved["state"]["0.bias"]["exp_avg"] = np.zeros(3)
    saved["state"]["ghost"] = {"step": 1}
    message = refusal(fresh(), saved)
    assert "exp_avg_sqr" in message and "0.bias" in message and "ghost" in message
    # the heading, then: unknown exp_avg_sqr, missing exp_avg_sq, 0.bias's shape, ghost
    assert len(message.splitlines()) == 5


# --- L-BFGS ---------------------------------------------------------------------------------------


def lbfgs_trained(steps: int = 3):
    model = make_model()
    opt = optim.LBFGS(model.named_parameters(), max_iter=3, history_size=2)
    rng = np.random.default_rng(0)
    x = nb.tensor(rng.normal(size=(32, 5)), dtype="float64")
    y = nb.tensor(rng.integers(0, 3, 32))

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return opt, copy.deepcopy(opt.state_dict())


def test_lbfgs_state_loads_and_its_history_is_checked():
    _, saved = lbfgs_trained()
    assert len(saved["lbfgs"]["rho"]) == 2
    assert sorted(saved["state"]["0.weight"]) == [
        "d",
        "prev_flat_grad",
        "s.0",
        "s.1",
        "step",
        "y.0",
        "y.1",
    ]
    fresh_lbfgs = optim.LBFGS(make_model(seed=3).named_parameters(), max_iter=3, history_size=2)
    fresh_lbfgs.load_state_dict(saved)
    fresh_lbfgs.load_state_dict(optim.LBFGS(make_model().named_parameters()).state_dict())

    broken = copy.deepcopy(saved)
    del broken["state"]["0.bias"]["y.1"]
    broken["state"]["2.bias"]["s.7"] = broken["state"]["2.bias"]["s.0"]
    broken["lbfgs"]["n_iters"] = broken["lbfgs"].pop("n_iter")
    message = refusal(fresh_lbfgs, broken)
    assert "'y.1'" in message and "0.bias" in message
    assert "'s.7'" in message and "2.bias" in message
    assert "'n_iters'" in message and "'n_iter'" in message
