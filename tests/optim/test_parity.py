"""Parity with torch.optim: same model, same initialization, same minibatches, same parameters.

Each case trains nabla's ``mlp([5, 8, 3])`` and the equivalent ``torch.nn.Sequential`` for 100
steps of cross-entropy on identical minibatches, in float64, and requires the parameters to agree
to a relative difference of 1e-6 (in practice they agree to ~1e-14). nabla's RMSProp ``beta`` is
torch's ``alpha``; nabla's SGD velocity carries the learning rate (v = -alpha v'), which is the same
trajectory while the rate is constant.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import models, optim
from nabla.nn import functional as F

STEPS = 100
BATCH = 16

# (id, nabla class, nabla kwargs, torch class, torch kwargs)
CASES = [
    ("sgd", optim.SGD, {"lr": 0.1}, torch.optim.SGD, {"lr": 0.1}),
    (
        "sgd-momentum",
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9},
    ),
    (
        "sgd-nesterov",
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
    (
        "sgd-momentum-wd",
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2},
    ),
    (
        "sgd-nesterov-wd",
        optim.SGD,
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-2},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-2},
    ),
    (
        "sgd-dampening",
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    ),
    ("adagrad", optim.AdaGrad, {"lr": 0.1}, torch.optim.Adagrad, {"lr": 0.1}),
    (
        "adagrad-init-acc",
        optim.AdaGrad,
        {"lr": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 1e-3},
        torch.optim.Adagrad,
        {"lr": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 1e-3},
    ),
    (
        "rmsprop",
        optim.RMSProp,
        {"lr": 1e-2, "beta": 0.9},
        torch.optim.RMSprop,
        {"lr": 1e-2, "alpha": 0.9},
    ),
    (
        "rmsprop-centered",
        optim.RMSProp,
        {"lr": 1e-2, "beta": 0.95, "centered": True},
        torch.optim.RMSprop,
        {"lr": 1e-2, "alpha": 0.95, "centered": True},
    ),
    (
        "rmsprop-momentum",
        optim.RMSProp,
        {"lr": 1e-3, "beta": 0.99, "momentum": 0.9},
        torch.optim.RMSprop,
        {"lr": 1e-3, "alpha": 0.99, "momentum": 0.9},
    ),
    (
        "rmsprop-centered-momentum-wd",
        optim.RMSProp,
        {"lr": 1e-3, "beta": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 1e-2},
        torch.optim.RMSprop,
        {"lr": 1e-3, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 1e-2},
    ),
    ("adam", optim.Adam, {"lr": 1e-2}, torch.optim.Adam, {"lr": 1e-2}),
    (
        "adam-betas",
        optim.Adam,
        {"lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
        torch.optim.Adam,
        {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6},
    ),
    (
        "amsgrad",
        optim.Adam,
        {"lr": 1e-2, "amsgrad": True},
        torch.optim.Adam,
        {"lr": 1e-2, "amsgrad": True},
    ),
    (
        "adam-l2",
        optim.Adam,
        {"lr": 1e-2, "weight_decay": 1e-2},
        torch.optim.Adam,
        {"lr": 1e-2, "weight_decay": 1e-2},
    ),
    (
        "adamw",
        optim.AdamW,
        {"lr": 1e-2, "weight_decay": 0.1},
        torch.optim.AdamW,
        {"lr": 1e-2, "weight_decay": 0.1},
    ),
    (
        "adam-decoupled",
        optim.Adam,
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
        torch.optim.Adam,
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ),
    (
        "adamw-amsgrad",
        optim.AdamW,
        {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True},
        torch.optim.AdamW,
        {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True},
    ),
]


def make_models(dtype: str = "float64", seed: int = 0):
    """nabla's mlp([5, 8, 3]) and the same network in torch, with nabla's initialization copied."""
    nb.manual_seed(seed)
    model = models.mlp([5, 8, 3]).to(dtype)
    reference = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    ).to(getattr(torch, dtype))
    reference.load_state_dict(
        {k: torch.from_numpy(v.data.copy()) for k, v in model.state_dict().items()}
    )
    return model, reference


def minibatches(steps: int = STEPS, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps, BATCH, 5))
    y = rng.integers(0, 3, size=(steps, BATCH))
    return list(zip(x, y))


def train_nabla(model, opt, batches, dtype: str = "float64") -> None:
    for x, y in batches:
        loss = F.cross_entropy(model(nb.tensor(x, dtype=dtype)), nb.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()


def train_torch(model, opt, batches, dtype: str = "float64") -> None:
    for x, y in batches:
        xt = torch.from_numpy(x).to(getattr(torch, dtype))
        loss = torch.nn.functional.cross_entropy(model(xt), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()


def assert_same_parameters(model, reference, rtol: float) -> None:
    """Each tensor's largest difference, relative to its largest entry, is at most rtol."""
    ours = {k: v.data for k, v in model.state_dict().items()}
    theirs = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    assert ours.keys() == theirs.keys()
    for name in ours:
        diff = np.max(np.abs(ours[name] - theirs[name])) / np.max(np.abs(theirs[name]))
        assert diff <= rtol, f"{name}: relative difference {diff:.3g} > {rtol:g}"


def assert_moved(model, seed: int = 0) -> None:
    """Guard against a vacuous pass: training changed the parameters."""
    start, _ = make_models(seed=seed)
    moved = [
        not np.allclose(p.data, q.data) for p, q in zip(model.parameters(), start.parameters())
    ]
    assert all(moved)


@pytest.mark.parametrize(
    ("ours", "our_kwargs", "theirs", "their_kwargs"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_matches_torch_float64(ours, our_kwargs, theirs, their_kwargs):
    model, reference = make_models()
    batches = minibatches()
    train_nabla(model, ours(model.named_parameters(), **our_kwargs), batches)
    train_torch(reference, theirs(reference.parameters(), **their_kwargs), batches)
    assert_moved(model)
    assert_same_parameters(model, reference, rtol=1e-6)


@pytest.mark.parametrize(
    ("ours", "our_kwargs", "theirs", "their_kwargs"),
    [
        (optim.SGD, {"momentum": 0.9}, torch.optim.SGD, {"momentum": 0.9}),
        (optim.Adam, {}, torch.optim.Adam, {}),
        (optim.RMSProp, {"beta": 0.9}, torch.optim.RMSprop, {"alpha": 0.9}),
    ],
    ids=["sgd-momentum", "adam", "rmsprop"],
)
def test_parameter_groups_with_different_lr(ours, our_kwargs, theirs, their_kwargs):
    """The first layer trains at 0.05, the second at 0.005, in both frameworks."""
    model, reference = make_models()
    named = dict(model.named_parameters())
    opt = ours(
        [
            {"params": [(k, named[k]) for k in ("0.weight", "0.bias")], "lr": 0.05},
            {"params": [(k, named[k]) for k in ("2.weight", "2.bias")], "lr": 0.005},
        ],
        **our_kwargs,
    )
    torch_opt = theirs(
        [
            {"params": reference[0].parameters(), "lr": 0.05},
            {"params": reference[2].parameters(), "lr": 0.005},
        ],
        **their_kwargs,
    )
    batches = minibatches()
    train_nabla(model, opt, batches)
    train_torch(reference, torch_opt, batches)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.005]
    assert_same_parameters(model, reference, rtol=1e-6)


def test_adam_float32_matches_torch_loosely():
    """In float32 the two implementations round differently; after 100 steps they still agree to
    ~1e-5 relative (each step is O(lr) whatever the rounding, so errors grow slowly)."""
    model, reference = make_models("float32")
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    batches = minibatches()
    train_nabla(model, optim.Adam(model.named_parameters(), lr=1e-2), batches, "float32")
    train_torch(reference, torch.optim.Adam(reference.parameters(), lr=1e-2), batches, "float32")
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    assert_same_parameters(model, reference, rtol=1e-5)


@pytest.mark.parametrize("how", ["frozen-from-start", "frozen-mid-way", "group-added-later"])
@pytest.mark.parametrize(
    ("ours", "our_kwargs", "theirs", "their_kwargs"),
    [
        (optim.SGD, {"lr": 0.05, "momentum": 0.9}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
        (optim.RMSProp, {"lr": 1e-2}, torch.optim.RMSprop, {"lr": 1e-2, "alpha": 0.9}),
        (optim.Adam, {"lr": 1e-2}, torch.optim.Adam, {"lr": 1e-2}),
    ],
    ids=["sgd-momentum", "rmsprop", "adam"],
)
def test_a_layer_that_sat_out_resumes_as_in_torch(how, ours, our_kwargs, theirs, their_kwargs):
    """The first layer sits out steps 20-59 (frozen, or only added to the optimizer at step 60),
    then trains again: torch skips a parameter without a gradient, so its state (Adam's step
    count included, kept per parameter) resumes where it stopped."""
    model, reference = make_models()
    batches = minibatches()
    if how == "group-added-later":
        named = dict(model.named_parameters())
        opt = ours([(k, named[k]) for k in ("2.weight", "2.bias")], **our_kwargs)
        torch_opt = theirs(reference[2].parameters(), **their_kwargs)
    else:
        if how == "frozen-from-start":
            model[0].requires_grad_(False)
            reference[0].requires_grad_(False)
        opt = ours(model.named_parameters(), **our_kwargs)
        torch_opt = theirs(reference.parameters(), **their_kwargs)
    train_nabla(model, opt, batches[:20])
    train_torch(reference, torch_opt, batches[:20])
    if how == "frozen-mid-way":
        model[0].requires_grad_(False)
        reference[0].requires_grad_(False)
    train_nabla(model, opt, batches[20:60])
    train_torch(reference, torch_opt, batches[20:60])
    if how == "group-added-later":
        named = dict(model.named_parameters())
        opt.add_param_group({"params": [(k, named[k]) for k in ("0.weight", "0.bias")]})
        torch_opt.add_param_group({"params": list(reference[0].parameters())})
    else:
        model[0].requires_grad_(True)
        reference[0].requires_grad_(True)
    train_nabla(model, opt, batches[60:])
    train_torch(reference, torch_opt, batches[60:])
    assert_same_parameters(model, reference, rtol=1e-6)
