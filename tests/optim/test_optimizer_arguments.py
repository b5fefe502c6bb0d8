"""The optimizers' arguments: default hyperparameters (PyTorch's, read from torch.optim's
signatures), the exact boundaries of every argument check (the boundary value passes, the first
invalid one is refused with a message naming the optimizer, the setting and the value), PyTorch's
names of settings and the error paths of building an optimizer.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import optim

# --- defaults: PyTorch's --------------------------------------------------------------------------


def torch_defaults(cls) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def one_param(values=(1.0, -2.0), dtype="float64"):
    return [nb.tensor(list(values), dtype=dtype, requires_grad=True)]


# (ours, theirs, {our setting: a function of torch's defaults giving its value})
DEFAULTS = [
    (
        optim.Adam,
        torch.optim.Adam,
        {
            "lr": lambda d: d["lr"],
            "beta1": lambda d: d["betas"][0],
            "beta2": lambda d: d["betas"][1],
            "eps": lambda d: d["eps"],
            "weight_decay": lambda d: d["weight_decay"],
            "amsgrad": lambda d: d["amsgrad"],
            "decoupled_weight_decay": lambda d: d["decoupled_weight_decay"],
        },
    ),
    (
        optim.AdamW,
        torch.optim.AdamW,
        {
            "lr": lambda d: d["lr"],
            "beta1": lambda d: d["betas"][0],
            "beta2": lambda d: d["betas"][1],
            "eps": lambda d: d["eps"],
            "weight_decay": lambda d: d["weight_decay"],
            "amsgrad": lambda d: d["amsgrad"],
        },
    ),
    (
        optim.Adagrad,
        torch.optim.Adagrad,
        {
            "lr": lambda d: d["lr"],
            "eps": lambda d: d["eps"],
            "weight_decay": lambda d: d["weight_decay"],
            "initial_accumulator_value": lambda d: d["initial_accumulator_value"],
        },
    ),
    (
        optim.RMSprop,
        torch.optim.RMSprop,
        {
            "lr": lambda d: d["lr"],
            "beta": lambda d: d["alpha"],
            "eps": lambda d: d["eps"],
            "weight_decay": lambda d: d["weight_decay"],
            "momentum": lambda d: d["momentum"],
            "centered": lambda d: d["centered"],
        },
    ),
    (
        optim.SGD,
        torch.optim.SGD,
        {
            "momentum": lambda d: d["momentum"],
            "dampening": lambda d: d["dampening"],
            "weight_decay": lambda d: d["weight_decay"],
            "nesterov": lambda d: d["nesterov"],
        },
    ),
    (
        optim.LBFGS,
        torch.optim.LBFGS,
        {
            "lr": lambda d: d["lr"],
            "max_iter": lambda d: d["max_iter"],
            "max_eval": lambda d: d["max_eval"],
            "tolerance_grad": lambda d: d["tolerance_grad"],
            "tolerance_change": lambda d: d["tolerance_change"],
            "history_size": lambda d: d["history_size"],
            "line_search": lambda d: d["line_search_fn"],
        },
    ),
]


@pytest.mark.parametrize(
    "ours, theirs, expected", DEFAULTS, ids=lambda x: getattr(x, "__name__", "")
)
def test_defaults_are_pytorchs(ours, theirs, expected):
    group = ours(one_param()).param_groups[0]
    their_defaults = torch_defaults(theirs)
    for name, value in expected.items():
        assert group[name] == value(their_defaults), name


def test_sgd_default_lr_is_keras_001_not_torchs():
    """SGD's lr defaults to 0.01, Keras' value (PyTorch's 1e-3 arrived only when torch made lr
    optional); the difference is stated in docs/optimizers.md, and this pins it."""
    assert optim.SGD(one_param()).param_groups[0]["lr"] == 0.01
    assert torch_defaults(torch.optim.SGD)["lr"] == 1e-3


def test_rmsprop_keeps_the_lectures_decay_rate():
    assert optim.RMSProp(one_param()).param_groups[0]["beta"] == 0.9
    assert optim.RMSprop(one_param()).param_groups[0]["beta"] == 0.99


def test_lbfgs_max_eval_defaults_to_max_iter_times_five_quarters():
    """PyTorch's max_eval = max_iter * 5 // 4: with a line search that keeps failing, the
    closure calls stop there (the same count as torch.optim.LBFGS)."""

    def count_calls(make, max_iter, **kwargs):
        calls = []
        w = make()
        opt = (optim.LBFGS if isinstance(w, nb.Tensor) else torch.optim.LBFGS)(
            [w], max_iter=max_iter, line_search_fn="strong_wolfe", **kwargs
        )

        def closure():
            calls.append(1)
            opt.zero_grad()
            loss = ((w - 1.0) ** 4).sum() + (w**2).sum() * 0.1
            loss.backward()
            return loss

        opt.step(closure)
        return len(calls)

    for max_iter in (1, 4, 9):
        ours = count_calls(
            lambda: nb.tensor([5.0, -3.0], dtype="float64", requires_grad=True), max_iter
        )
        theirs = count_calls(
            lambda: torch.tensor([5.0, -3.0], dtype=torch.float64, requires_grad=True), max_iter
        )
        assert ours == theirs


# --- argument checks: each boundary on both sides -----------------------------------------------

# (class, valid settings, invalid settings, the message the invalid ones raise)
BOUNDARIES = [
    (optim.SGD, {"lr": 0.0}, {"lr": -1e-12}, r"SGD: lr must be >= 0, got -1e-12"),
    (
        optim.SGD,
        {"weight_decay": 0.0},
        {"weight_decay": -0.5},
        r"SGD: weight_decay must be >= 0, got -0.5",
    ),
    (optim.Adam, {"eps": 0.0}, {"eps": -1e-9}, r"Adam: eps must be >= 0, got -1e-09"),
    (
        optim.SGD,
        {"decoupled_weight_decay": np.bool_(True)},
        {"decoupled_weight_decay": 1},
        r"SGD: decoupled_weight_decay must be True or False, got 1",
    ),
    (
        optim.AdaGrad,
        {"eps_inside_sqrt": True},
        {"eps_inside_sqrt": "yes"},
        r"AdaGrad: eps_inside_sqrt must be True or False, got 'yes'",
    ),
    (
        optim.SGD,
        {"momentum": 0.0},
        {"momentum": -0.1},
        r"SGD: momentum must be in \[0, 1\), got -0.1",
    ),
    (
        optim.SGD,
        {"momentum": 0.999},
        {"momentum": 1.0},
        r"SGD: momentum must be in \[0, 1\), got 1.0",
    ),
    (
        optim.SGD,
        {"momentum": lambda t: 0.0 if t == 0 else 0.9, "nesterov": True},
        {"momentum": 0.0, "nesterov": True},
        r"SGD: nesterov=True needs momentum > 0",
    ),
    (
        optim.SGD,
        {"dampening": 0.0},
        {"dampening": -0.1},
        r"SGD: dampening must be in \[0, 1\], got -0.1",
    ),
    (
        optim.SGD,
        {"dampening": 1.0},
        {"dampening": 1.5},
        r"SGD: dampening must be in \[0, 1\], got 1.5",
    ),
    (
        optim.SGD,
        {"momentum": 0.9, "nesterov": True, "dampening": 0.0},
        {"momentum": 0.9, "nesterov": True, "dampening": 0.1},
        r"SGD: nesterov=True needs dampening = 0 \(as in PyTorch\)",
    ),
    (
        optim.SGD,
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.9, "nesterov": True, "dampening": lambda t: 0.0},
        r"SGD: nesterov=True needs dampening = 0",
    ),
    (optim.Adam, {"beta1": 0.0}, {"beta1": -0.1}, r"Adam: beta1 must be in \[0, 1\), got -0.1"),
    (optim.Adam, {"beta2": 0.0}, {"beta2": 1.0}, r"Adam: beta2 must be in \[0, 1\), got 1.0"),
    (optim.AdamW, {"beta1": 0.5}, {"beta1": 1.0}, r"AdamW: beta1 must be in \[0, 1\), got 1.0"),
    (
        optim.Adam,
        {"bias_correction": "none"},
        {"bias_correction": "None"},
        r"Adam: bias_correction must be one of \('explicit', 'folded', 'none'\), got 'None'",
    ),
    (
        optim.AdamW,
        {"decoupled_weight_decay": True},
        {"decoupled_weight_decay": False},
        r"AdamW: decoupled_weight_decay=False is Adam with L2; use Adam\(weight_decay=...\)",
    ),
    (
        optim.AdaGrad,
        {"initial_accumulator_value": 0.0},
        {"initial_accumulator_value": -0.1},
        r"AdaGrad: initial_accumulator_value must be a number >= 0, got -0.1",
    ),
    (
        optim.AdaGrad,
        {"initial_accumulator_value": 0.5},
        {"initial_accumulator_value": lambda t: 0.1},
        r"AdaGrad: initial_accumulator_value must be a number >= 0, got <function",
    ),
    (optim.RMSProp, {"beta": 0.0}, {"beta": -0.1}, r"RMSProp: beta must be in \[0, 1\), got -0.1"),
    (
        optim.RMSprop,
        {"momentum": 0.0},
        {"momentum": 1.0},
        r"RMSprop: momentum must be in \[0, 1\), got 1.0",
    ),
    (
        optim.LBFGS,
        {"max_iter": 1},
        {"max_iter": 0},
        r"LBFGS: max_iter must be an integer >= 1, got 0",
    ),
    (
        optim.LBFGS,
        {"max_iter": np.int64(3)},
        {"max_iter": 3.0},
        r"LBFGS: max_iter must be an integer >= 1, got 3.0",
    ),
    (
        optim.LBFGS,
        {"history_size": 1},
        {"history_size": 0},
        r"LBFGS: history_size must be an integer >= 1, got 0",
    ),
    (
        optim.LBFGS,
        {"max_eval": 1},
        {"max_eval": 0},
        r"LBFGS: max_eval must be None or an integer >= 1, got 0",
    ),
    (
        optim.LBFGS,
        {"max_eval": np.int32(2)},
        {"max_eval": 2.0},
        r"LBFGS: max_eval must be None or an integer >= 1, got 2.0",
    ),
    (
        optim.LBFGS,
        {"tolerance_grad": 0.0},
        {"tolerance_grad": -1e-9},
        r"LBFGS: tolerance_grad must be >= 0, got -1e-09",
    ),
    (
        optim.LBFGS,
        {"tolerance_change": 0.0},
        {"tolerance_change": -1e-9},
        r"LBFGS: tolerance_change must be >= 0, got -1e-09",
    ),
    (
        optim.LBFGS,
        {"line_search": "strong_wolfe"},
        {"line_search": "wolfe"},
        r"LBFGS: line_search must be one of \(None, 'strong_wolfe'\), got 'wolfe'",
    ),
]


@pytest.mark.parametrize("cls, valid, invalid, match", BOUNDARIES)
def test_argument_boundaries(cls, valid, invalid, match):
    cls(one_param(), **valid)
    with pytest.raises(ValueError, match=match):
        cls(one_param(), **invalid)


def test_pytorch_names_of_settings():
    """``alpha`` is PyTorch's name for RMSProp's beta and ``line_search_fn`` for L-BFGS'
    line_search; given under both names, the values must agree."""
    assert optim.RMSProp(one_param(), alpha=0.5).param_groups[0]["beta"] == 0.5
    assert optim.RMSProp(one_param(), alpha=0.5, beta=0.5).param_groups[0]["beta"] == 0.5
    with pytest.raises(
        TypeError,
        match=r"RMSProp: alpha=0.5 \(PyTorch's name for beta\) and "
        r"beta=0.7 disagree; give one of them",
    ):
        optim.RMSProp(one_param(), alpha=0.5, beta=0.7)
    opt = optim.LBFGS(one_param(), line_search="strong_wolfe", line_search_fn="strong_wolfe")
    assert opt.param_groups[0]["line_search"] == "strong_wolfe"
    with pytest.raises(ValueError, match=r"LBFGS: give line_search or line_search_fn, not both"):
        optim.LBFGS(one_param(), line_search="x", line_search_fn="strong_wolfe")


def test_building_errors_name_the_optimizer_and_the_parameter():
    w = one_param()[0]
    with pytest.raises(TypeError, match=r"^Adam: unknown hyperparameters \['betas', 'foo'\]$"):
        optim.Adam([w], betas=(0.9, 0.99), foo=1)
    with pytest.raises(TypeError, match=r"^SGD: unknown hyperparameters \['beta'\]$"):
        optim.SGD([{"params": [w], "beta": 0.5}])
    with pytest.raises(ValueError, match=r"^Adagrad|^AdaGrad got an empty parameter list$"):
        optim.Adagrad([])
    with pytest.raises(ValueError, match=r"^RMSprop got an empty parameter list$"):
        optim.RMSprop([])
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match=r"a parameter group needs a 'params' entry"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(TypeError, match=r"optimizer parameters must be Tensors, got ndarray"):
        optim.SGD([np.zeros(2)])
    message = r"^parameter 0\.1 has dtype int64; only float tensors can be optimized$"
    with pytest.raises(TypeError, match=message):
        optim.SGD([nb.tensor([1.0], requires_grad=True), nb.tensor([1, 2])])
    with pytest.raises(TypeError, match=r"parameter layer\.w has dtype int64"):
        optim.SGD([("layer.w", nb.tensor([1, 2]))])
    with pytest.raises(ValueError, match=r"parameter 1\.0 is not a leaf tensor"):
        opt.add_param_group({"params": [one_param()[0] * 2]})
    with pytest.raises(ValueError, match=r"LBFGS supports exactly one parameter group"):
        optim.LBFGS([{"params": one_param()}, {"params": one_param()}])


def test_a_single_tensor_is_a_group_of_one():
    w, b = one_param()[0], one_param()[0]
    opt = optim.SGD([w], lr=0.5)
    opt.add_param_group({"params": b, "lr": 0.25})
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["lr"] == 0.25
    assert opt.state_dict()["param_groups"][1]["params"] == ["1.0"]
    b.grad[...] = 1.0
    w.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(b.data, [0.75, -2.25])
    np.testing.assert_array_equal(w.data, [0.5, -2.5])
