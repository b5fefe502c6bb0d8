"""The Optimizer base: flat buffers, PyTorch habits, freezing, schedules, saving and resuming,
gradient clipping and argument checking."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import models, optim
from nabla.nn import functional as F
from nabla.optim import schedules

ALL = [
    (optim.SGD, {"lr": 0.1}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    (optim.AdaGrad, {"lr": 0.1, "initial_accumulator_value": 0.1}),
    (optim.RMSProp, {"lr": 1e-2, "momentum": 0.5, "centered": True}),
    (optim.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-3}),
    (optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
]
ALL_IDS = ["sgd", "nesterov-wd", "adagrad", "rmsprop", "amsgrad-l2", "adamw"]


def make_model(seed: int = 0, sizes=(5, 8, 3)):
    nb.manual_seed(seed)
    return models.mlp(list(sizes)).double()


def batches(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [
        (nb.tensor(rng.normal(size=(16, 5)), dtype="float64"), nb.tensor(rng.integers(0, 3, 16)))
        for _ in range(n)
    ]


def train(model, opt, data, zero=None) -> None:
    for x, y in data:
        if zero is None:
            opt.zero_grad()
        else:
            zero()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def parameters(model) -> dict:
    return {k: v.data.copy() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --- flat buffers and PyTorch habits ------------------------------------------------------------


def test_parameters_and_gradients_are_views_into_one_flat_buffer():
    model = make_model()
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    params = list(model.parameters())
    total = sum(p.data.size for p in params)
    for attr in ("data", "grad"):
        bases = {id(getattr(p, attr).base) for p in params}
        assert len(bases) == 1, f"every .{attr} views the same buffer"
        flat = getattr(params[0], attr).base
        assert flat.ndim == 1 and flat.size == total and flat.flags.c_contiguous
    train(model, opt, batches(1))
    flat = params[0].grad.base
    assert np.any(flat != 0)
    np.testing.assert_array_equal(flat, np.concatenate([p.grad.reshape(-1) for p in params]))


def test_zero_grad_fills_in_place_and_keeps_the_arrays():
    model = make_model()
    opt = optim.Adam(model.named_parameters(), lr=1e-2)
    train(model, opt, batches(2))
    before = [p.grad for p in model.parameters()]
    assert any(np.any(g != 0) for g in before)
    opt.zero_grad(set_to_none=False)
    after = [p.grad for p in model.parameters()]
    assert all(a is b for a, b in zip(before, after))
    assert all(np.all(g == 0) for g in after)


def test_zero_grad_sets_none_and_backward_writes_into_the_flat_buffer():
    model = make_model()
    opt = optim.Adam(model.named_parameters(), lr=1e-2)
    train(model, opt, batches(2))
    flat = opt.gradient_vectors()[0]
    views = [p.grad for p in model.parameters()]
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is v for p, v in zip(model.parameters(), views))  # the same slots
    expected = np.concatenate([p.grad.reshape(-1) for p in model.parameters()])
    np.testing.assert_array_equal(flat, expected)
    # the same gradient as a fresh model computes without an optimizer
    twin = make_model()
    twin.load_state_dict(model.state_dict())
    F.cross_entropy(twin(x), y).backward()
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_a_parameter_without_gradient_is_zero_at_the_step():
    """After zero_grad, a parameter that backward never reached (an unused layer) must enter the
    update with a zero gradient, not with last step's value left in its slot."""
    used, unused = nb.ones(3, requires_grad=True), nb.ones(2, requires_grad=True)
    opt = optim.SGD([used, unused], lr=0.5)
    (used.sum() + unused.sum()).backward()
    opt.step()  # both moved by 0.5
    opt.zero_grad()
    used.sum().backward()
    opt.step()
    np.testing.assert_array_equal(unused.data, [0.5, 0.5])
    np.testing.assert_array_equal(used.data, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(unused.grad, [0.0, 0.0])


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=ALL_IDS)
def test_setting_grad_to_none_still_trains(cls, kwargs):
    """The torch habit ``p.grad = None`` (or model.zero_grad(set_to_none)) gives the same run:
    the fresh gradient arrays backward creates are brought back into the flat buffer."""
    data = batches(5)
    reference = make_model()
    train(reference, cls(reference.named_parameters(), **kwargs), data)

    model = make_model()
    opt = cls(model.named_parameters(), **kwargs)

    def set_to_none():
        for p in model.parameters():
            p.grad = None

    train(model, opt, data, zero=set_to_none)
    assert_same(parameters(model), parameters(reference))
    bases = {id(p.grad.base) for p in model.parameters()}
    assert bases == {id(opt.gradient_vectors()[0])}  # the gradients view the flat buffer again


def test_a_grad_of_none_counts_as_zero():
    w = nb.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = None
    opt.step()
    np.testing.assert_array_equal(w.data, [1.0, 2.0])


# --- frozen parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
        (optim.Adam, {"lr": 1e-2, "weight_decay": 0.1}),
        (optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    ],
    ids=["sgd-momentum-wd", "adam-l2", "adamw"],
)
def test_frozen_before_building_are_never_updated(cls, kwargs):
    model = make_model()
    model[0].requires_grad_(False)
    frozen = parameters(model)
    opt = cls(model.named_parameters(), **kwargs)
    train(model, opt, batches(5))
    after = parameters(model)
    for k in ("0.weight", "0.bias"):
        np.testing.assert_array_equal(after[k], frozen[k])
    for k in ("2.weight", "2.bias"):
        assert not np.allclose(after[k], frozen[k])

    model[0].requires_grad_(True)  # unfreezing: they train from here on
    train(model, opt, batches(2, seed=2))
    assert not np.allclose(model[0].weight.data, frozen["0.weight"])


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
        (optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    ],
    ids=["sgd-momentum-wd", "adamw"],
)
def test_frozen_after_building_stop_and_resume_with_their_state(cls, kwargs):
    """Freezing mid-training stops the updates (momentum and decay included); unfreezing resumes
    with the state the parameter had, as in PyTorch: same run as never having frozen it, except
    for the steps it sat out."""
    model = make_model()
    opt = cls(model.named_parameters(), **kwargs)
    train(model, opt, batches(3))
    state = copy.deepcopy(opt.state_dict()["state"]["0.weight"])
    assert state and all(np.any(v != 0) for v in state.values())

    model[0].requires_grad_(False)
    frozen = parameters(model)
    train(model, opt, batches(4, seed=2))
    np.testing.assert_array_equal(model[0].weight.data, frozen["0.weight"])
    np.testing.assert_array_equal(model[0].bias.data, frozen["0.bias"])
    assert not np.allclose(model[2].weight.data, frozen["2.weight"])
    saved = opt.state_dict()["state"]["0.weight"]  # still saved while frozen
    for key in state:
        np.testing.assert_array_equal(saved[key], state[key])

    model[0].requires_grad_(True)
    for key in state:
        np.testing.assert_array_equal(opt.state_dict()["state"]["0.weight"][key], state[key])
    if cls is optim.SGD:  # check the resumed update by hand: v <- beta v - alpha (g + wd theta)
        ((x, y),) = batches(1, seed=3)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        w, g = model[0].weight.data.copy(), model[0].weight.grad.copy()
        opt.step()
        v = 0.9 * state["velocity"] - 0.1 * (g + 0.1 * w)
        np.testing.assert_allclose(model[0].weight.data, w + v, rtol=1e-12, atol=1e-15)
    else:
        train(model, opt, batches(1, seed=3))
        assert not np.allclose(model[0].weight.data, frozen["0.weight"])


# --- schedules ------------------------------------------------------------------------------------


def test_a_schedule_as_lr_is_called_with_the_number_of_updates_made():
    def schedule(step):
        return 0.5 / (1 + step)

    g = np.array([1.0, -2.0, 4.0])
    w = nb.tensor(np.zeros(3), dtype="float64", requires_grad=True)
    opt = optim.SGD([w], lr=schedule)
    assert opt.lr == schedule(0)  # before any step: the rate the first step will use
    for step in range(6):
        before = w.data.copy()
        w.grad[...] = g
        opt.step()
        assert opt.iterations == step + 1
        assert opt.lr == schedule(step)  # the rate the last step used
        np.testing.assert_allclose(before - w.data, schedule(step) * g, rtol=1e-14)


def test_a_manual_lr_change_applies_to_the_next_step():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad[...] = 1.0
    opt.step()
    opt.param_groups[0]["lr"] = 0.01
    opt.step()
    assert opt.lr == 0.01
    np.testing.assert_allclose(w.data, [1.0 - 0.1 - 0.01])


# --- state_dict -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=ALL_IDS)
def test_resuming_from_a_state_dict_is_bit_identical(cls, kwargs):
    data = batches(20)
    straight = make_model()
    train(straight, cls(straight.named_parameters(), **kwargs), data)

    first = make_model()
    opt = cls(first.named_parameters(), **kwargs)
    train(first, opt, data[:10])
    model_state, opt_state = parameters(first), copy.deepcopy(opt.state_dict())
    train(first, opt, batches(3, seed=9))  # what happens after saving must not leak into it

    resumed = make_model(seed=5)  # a different initialization, overwritten by the load
    opt = cls(resumed.named_parameters(), **kwargs)
    resumed.load_state_dict(model_state)
    opt.load_state_dict(opt_state)
    assert opt.iterations == 10
    train(resumed, opt, data[10:])
    assert_same(parameters(resumed), parameters(straight))


def test_resuming_keeps_the_schedule_position():
    def schedule(step):
        return 0.1 * 0.5**step

    data = batches(8)
    straight = make_model()
    train(straight, optim.Adam(straight.named_parameters(), lr=schedule), data)

    first = make_model()
    opt = optim.Adam(first.named_parameters(), lr=schedule)
    train(first, opt, data[:4])
    saved, model_state = copy.deepcopy(opt.state_dict()), parameters(first)
    resumed = make_model(seed=3)
    resumed.load_state_dict(model_state)
    opt = optim.Adam(resumed.named_parameters(), lr=0.5)  # the saved group settings win
    opt.load_state_dict(saved)
    assert opt.lr == schedule(3)
    train(resumed, opt, data[4:])
    assert opt.lr == schedule(7)
    assert_same(parameters(resumed), parameters(straight))


def test_a_schedule_is_saved_as_a_config_and_restored():
    data = batches(8)
    straight = make_model()
    lr = schedules.CosineDecay(0.1, decay_steps=10)
    train(straight, optim.SGD(straight.named_parameters(), lr=lr, momentum=0.9), data)

    first = make_model()
    opt = optim.SGD(first.named_parameters(), lr=lr, momentum=0.9)
    train(first, opt, data[:4])
    saved = opt.state_dict()
    groups = json.loads(json.dumps(saved["param_groups"]))  # the settings are JSON-ready
    saved = {**saved, "param_groups": groups}
    resumed = make_model(seed=3)
    resumed.load_state_dict(parameters(first))
    opt = optim.SGD(resumed.named_parameters(), lr=0.5, momentum=0.9)
    opt.load_state_dict(saved)
    assert callable(opt.param_groups[0]["lr"])
    train(resumed, opt, data[4:])
    assert opt.lr == lr(7)
    assert_same(parameters(resumed), parameters(straight))


@pytest.mark.parametrize("frozen_at", ["save", "load"])
def test_resuming_with_a_frozen_layer(frozen_at):
    """A layer frozen when saving (its state kept aside) or when loading (the saved state kept
    aside) resumes, once unfrozen, exactly as if the state had never left the flat buffer."""
    data = batches(12)
    kwargs = {"lr": 0.1, "momentum": 0.9}
    straight = make_model()
    opt = optim.SGD(straight.named_parameters(), **kwargs)
    train(straight, opt, data[:6])
    if frozen_at == "save":
        straight[0].requires_grad_(False)
    train(straight, opt, data[6:9])
    straight[0].requires_grad_(True)
    train(straight, opt, data[9:])

    first = make_model()
    opt = optim.SGD(first.named_parameters(), **kwargs)
    train(first, opt, data[:6])
    if frozen_at == "save":
        first[0].requires_grad_(False)
    saved, model_state = copy.deepcopy(opt.state_dict()), parameters(first)
    assert set(saved["state"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}

    resumed = make_model(seed=7)
    resumed.load_state_dict(model_state)
    resumed[0].requires_grad_(False)
    opt = optim.SGD(resumed.named_parameters(), **kwargs)
    opt.load_state_dict(saved)
    if frozen_at == "load":
        resumed[0].requires_grad_(True)
    train(resumed, opt, data[6:9])
    resumed[0].requires_grad_(True)
    train(resumed, opt, data[9:])
    assert_same(parameters(resumed), parameters(straight))


def test_state_dict_is_keyed_by_parameter_names():
    model = make_model()
    opt = optim.Adam(model.named_parameters())
    train(model, opt, batches(1))
    sd = opt.state_dict()
    assert list(sd["state"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sd["state"]["0.weight"]["exp_avg"].shape == (8, 5)
    assert sd["iterations"] == 1


def test_load_state_dict_refuses_different_names():
    model = make_model()
    opt = optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    train(model, opt, batches(1))
    other = make_model(sizes=(5, 8, 8, 3))  # an extra layer: 4.weight, 4.bias
    with pytest.raises(ValueError, match=r"4\.weight"):
        optim.SGD(other.named_parameters(), lr=0.1, momentum=0.9).load_state_dict(opt.state_dict())
    unnamed = make_model()
    with pytest.raises(ValueError, match="different parameters"):
        optim.SGD(unnamed.parameters(), lr=0.1, momentum=0.9).load_state_dict(opt.state_dict())


def test_load_state_dict_refuses_different_shapes():
    model = make_model()
    opt = optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    train(model, opt, batches(1))
    wider = make_model(sizes=(5, 9, 3))  # same names, other shapes
    other = optim.SGD(wider.named_parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"0\.weight.*\(8, 5\)|0\.weight.*\(9, 5\)"):
        other.load_state_dict(opt.state_dict())


def test_load_state_dict_refuses_a_different_number_of_groups():
    model = make_model()
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    named = dict(make_model().named_parameters())
    two = optim.SGD(
        [
            {"params": [(k, named[k]) for k in ("0.weight", "0.bias")]},
            {"params": [(k, named[k]) for k in ("2.weight", "2.bias")]},
        ],
        lr=0.1,
    )
    with pytest.raises(ValueError, match="group"):
        two.load_state_dict(opt.state_dict())


# --- gradient clipping ----------------------------------------------------------------------------


def paired_grads(scale: float, seed: int = 0):
    """An optimizer over nabla tensors and torch tensors holding the same random gradients."""
    rng = np.random.default_rng(seed)
    shapes = [(8, 5), (8,), (3, 8), (3,)]
    ours = [nb.tensor(rng.normal(size=s), dtype="float64", requires_grad=True) for s in shapes]
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = optim.SGD(ours, lr=0.1)
    for p, q in zip(ours, theirs):
        g = scale * rng.normal(size=p.shape)
        p.grad[...] = g
        q.grad = torch.from_numpy(g.copy())
    return opt, ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("scale", [10.0, 1e-3])  # clipped, and left alone
def test_clip_grad_norm_matches_torch(norm_type, scale):
    opt, ours, theirs = paired_grads(scale)
    total = opt.clip_grad_norm_(1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    assert total == pytest.approx(float(expected), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clip_grad_value_matches_torch():
    opt, ours, theirs = paired_grads(1.0)
    opt.clip_grad_value_(0.5)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())
    assert max(np.abs(p.grad).max() for p in ours) == 0.5


def test_clipping_acts_on_the_next_step():
    w = nb.tensor([0.0, 0.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    w.grad[...] = [3.0, 4.0]
    assert opt.clip_grad_norm_(1.0) == pytest.approx(5.0)
    opt.step()
    np.testing.assert_allclose(w.data, [-0.6, -0.8], rtol=1e-6)


# --- argument checking ----------------------------------------------------------------------------


def one_param():
    return [nb.tensor([1.0], requires_grad=True)]


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (optim.SGD, {"lr": -0.1}, "lr"),
        (optim.SGD, {"lr": 0.1, "momentum": 1.0}, "momentum"),
        (optim.SGD, {"lr": 0.1, "momentum": -0.5}, "momentum"),
        (optim.SGD, {"lr": 0.1, "nesterov": True}, "nesterov"),
        (optim.SGD, {"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
        (optim.AdaGrad, {"lr": 0.1, "eps": -1e-10}, "eps"),
        (
            optim.AdaGrad,
            {"lr": 0.1, "initial_accumulator_value": -0.1},
            "initial_accumulator_value",
        ),
        (optim.RMSProp, {"lr": 0.1, "beta": 1.0}, "beta"),
        (optim.RMSProp, {"lr": 0.1, "momentum": 1.5}, "momentum"),
        (optim.Adam, {"beta1": 1.0}, "beta1"),
        (optim.Adam, {"beta2": -0.1}, "beta2"),
        (optim.Adam, {"eps": -1.0}, "eps"),
        (optim.Adam, {"lr": float("nan")}, "lr"),
        (optim.Adam, {"bias_correction": "sometimes"}, "bias_correction"),
        (optim.AdamW, {"weight_decay": -0.01}, "weight_decay"),
    ],
)
def test_invalid_hyperparameters_raise_value_error_naming_them(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(one_param(), **kwargs)


def test_invalid_hyperparameter_in_a_group_raises():
    w, b = nb.tensor([1.0], requires_grad=True), nb.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([{"params": [w]}, {"params": [b], "lr": -1.0}], lr=0.1)


def test_unknown_hyperparameter_raises_type_error():
    with pytest.raises(TypeError, match="betas"):
        optim.Adam(one_param(), betas=(0.9, 0.999))  # nabla spells them beta1, beta2


def test_empty_parameter_list_raises():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def test_mixing_dtypes_in_one_group_raises_type_error():
    a = nb.tensor([1.0], dtype="float32", requires_grad=True)
    b = nb.tensor([1.0], dtype="float64", requires_grad=True)
    with pytest.raises(TypeError, match=r"float32.*float64|float64.*float32"):
        optim.SGD([a, b], lr=0.1)
    opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)  # separate groups are fine
    a.grad[...] = 1.0
    b.grad[...] = 1.0
    opt.step()
    assert a.data.dtype == np.float32 and b.data.dtype == np.float64
    np.testing.assert_allclose(a.data, [0.9], rtol=1e-6)
    np.testing.assert_allclose(b.data, [0.9], rtol=1e-15)


def test_a_parameter_in_two_groups_raises():
    w, b = nb.tensor([1.0], requires_grad=True), nb.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": [w, b]}, {"params": [w]}], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([w, w], lr=0.1)
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [w]})


def test_non_leaf_and_integer_tensors_are_refused():
    w = nb.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(TypeError, match="int64"):
        optim.SGD([nb.tensor([1, 2])], lr=0.1)


def test_a_converted_model_does_not_write_into_the_old_gradient_buffer():
    model = make_model().float()
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = batches(1)[0]
    F.cross_entropy(model(x.astype("float32")), y).backward()
    old_buffer = opt.gradient_vectors()[0]
    snapshot = old_buffer.copy()
    assert np.any(snapshot != 0)
    opt.zero_grad()
    model.double()
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad.dtype == np.float64 for p in model.parameters())
    np.testing.assert_array_equal(old_buffer, snapshot)  # untouched: no stale slot was used
