"""Module system: registration, names, modes, freezing, state_dict in both directions with torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import nn


def nabla_mlp(seed=0):
    nb.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)
    )


def torch_mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(6, 5),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(5, 4),
        torch.nn.Tanh(),
        torch.nn.Linear(4, 3),
    )


def test_names_and_shapes_match_torch():
    ours, theirs = nabla_mlp(), torch_mlp()
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_repr_matches_torch():
    assert repr(nabla_mlp()) == repr(torch_mlp())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_state_dict_loads_into_torch_and_back(dtype):
    ours = nabla_mlp().to(dtype).eval()
    theirs = torch_mlp().to(getattr(torch, dtype)).eval()
    theirs.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()}
    )
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(dtype)
    np.testing.assert_allclose(
        ours(nb.tensor(x, dtype=dtype)).data,
        theirs(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-5,
    )
    # and the reverse direction: torch's weights into a fresh nabla model
    fresh = nabla_mlp(seed=5).to(dtype).eval()
    fresh.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(
        fresh(nb.tensor(x, dtype=dtype)).data, ours(nb.tensor(x, dtype=dtype)).data
    )


def test_load_state_dict_copies_in_place_and_reports_every_problem():
    model = nabla_mlp()
    weight = model[0].weight
    view = weight.data
    state = {k: v.numpy() * 0 + 1 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model[0].weight is weight and weight.data is view  # optimizer views stay valid
    np.testing.assert_array_equal(view, 1)

    bad = dict(state)
    del bad["0.bias"]
    bad["9.weight"] = np.zeros(2)
    bad["3.weight"] = np.zeros((5, 4))
    with pytest.raises(ValueError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert "0.bias" in message and "9.weight" in message
    assert "3.weight: expected (4, 5), got (5, 4)" in message
    del bad["3.weight"]
    result = model.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["0.bias", "3.weight"] and result.unexpected_keys == ["9.weight"]


def test_non_strict_loading_reports_what_it_skipped_as_torch_does():
    model, theirs = nabla_mlp(), torch_mlp()
    state = {k: v.numpy() * 0 + 2 for k, v in model.state_dict().items()}
    del state["5.bias"]
    state["encoder.weight"] = np.zeros(3)
    result = model.load_state_dict(state, strict=False)
    expected = theirs.load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=False
    )
    assert result.missing_keys == expected.missing_keys == ["5.bias"]
    assert result.unexpected_keys == expected.unexpected_keys == ["encoder.weight"]
    np.testing.assert_array_equal(model[0].weight.data, 2)  # the keys that fit were loaded
    assert not np.all(model[5].bias.data == 2)  # the missing one kept its value


def test_non_strict_loading_still_refuses_a_shape_mismatch_and_loads_nothing():
    model = nabla_mlp()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = {k: v * 0 + 2 for k, v in before.items()}
    state["3.weight"] = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"3\.weight: expected \(4, 5\), got \(5, 4\)"):
        model.load_state_dict(state, strict=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)


def test_train_eval_reach_every_submodule():
    model = nabla_mlp()
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_freezing_stops_gradients_for_frozen_layers():
    model = nabla_mlp().eval()
    model[0].requires_grad_(False)
    loss = model(nb.randn(4, 6)).sum()
    loss.backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[3].weight.grad is not None and model[5].weight.grad is not None


def test_zero_grad_keeps_the_gradient_arrays():
    model = nabla_mlp().eval()
    model(nb.randn(4, 6)).sum().backward()
    grad = model[0].weight.grad
    model.zero_grad()
    assert model[0].weight.grad is grad and not grad.any()


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2


def test_containers_register_their_modules():
    blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    heads = nn.ModuleDict({"a": nn.Linear(2, 1)})

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks, self.heads = blocks, heads
            self.scale = nn.Parameter([1.0])
            self.register_buffer("steps", nb.tensor(0))

        def forward(self, x):
            for block in self.blocks:
                x = block(x).relu()
            return self.heads["a"](x) * self.scale

    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
        "heads.a.weight",
        "heads.a.bias",
    ]
    assert "steps" in net.state_dict() and net(nb.ones(5, 2)).shape == (5, 1)


def test_sequential_indexing_slicing_and_append():
    model = nabla_mlp()
    assert isinstance(model[0], nn.Linear) and isinstance(model[-1], nn.Linear)
    head = model[3:]
    assert isinstance(head, nn.Sequential) and len(head) == 3 and head[0] is model[3]
    model.append(nn.Softmax(dim=1))
    assert len(model) == 7 and list(model)[-1] is model[6]


def test_to_double_converts_parameters():
    model = nabla_mlp().double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.eval()(nb.randn(2, 6, dtype="float64")).dtype == np.float64


def test_module_without_super_init_gets_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Broken()
