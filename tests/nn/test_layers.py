"""Layers against torch with copied weights (float32 and float64), gradcheck, and Dropout's
statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import nn

TOL = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


def copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    theirs.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()}
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "bias"), [((5, 4), True), ((2, 3, 4), True), ((5, 4), False)])
def test_linear_matches_torch(dtype, shape, bias):
    ours = nn.Linear(4, 3, bias=bias, dtype=dtype)
    theirs = torch.nn.Linear(4, 3, bias=bias, dtype=getattr(torch, dtype))
    copy_weights(ours, theirs)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    xa, xt = nb.tensor(x, dtype=dtype, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = ours(xa), theirs(xt)
    np.testing.assert_allclose(ya.data, yt.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(1).standard_normal(ya.shape).astype(dtype)
    ya.backward(g)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), **TOL[dtype])
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(
            p.grad, dict(theirs.named_parameters())[name].grad.numpy(), **TOL[dtype]
        )


def test_linear_passes_gradcheck_in_its_parameters():
    layer = nn.Linear(3, 2, dtype="float64")
    x = nb.randn(4, 3, dtype="float64")
    for p in layer.parameters():
        assert nb.gradcheck(
            lambda w, p=p: nn.functional.linear(
                x, *(w if q is p else q for q in (layer.weight, layer.bias))
            ),
            p,
        )


def test_linear_default_init_is_torchs_uniform_bound():
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    # uniform on [-b, b] has standard deviation b / sqrt(3)
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.02 * bound


def test_linear_names_the_wrong_input_shape():
    with pytest.raises(
        ValueError, match=r"Linear\(4, 3\): expected input \(\.\.\., 4\), got shape \(2, 5\)"
    ):
        nn.Linear(4, 3)(nb.ones(2, 5))


ACTIVATIONS = [
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (nn.ELU(0.7), torch.nn.ELU(0.7)),
    (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    (nn.Softplus(2.0), torch.nn.Softplus(2.0)),
    (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=0), torch.nn.LogSoftmax(dim=0)),
    (nn.Flatten(), torch.nn.Flatten()),
    (nn.Identity(), torch.nn.Identity()),
]


@pytest.mark.parametrize(
    ("ours", "theirs"), ACTIVATIONS, ids=[type(a).__name__ for a, _ in ACTIVATIONS]
)
def test_activation_modules_match_torch(ours, theirs):
    x = np.random.default_rng(2).standard_normal((3, 4, 2))
    xa, xt = nb.tensor(x, dtype="float64", requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = ours(xa), theirs(xt)
    np.testing.assert_allclose(ya.data, yt.detach().numpy(), **TOL["float64"])
    (ya * ya).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), **TOL["float64"])
    assert repr(ours) == repr(theirs)


def test_dropout_keeps_the_expected_value_and_is_identity_in_eval():
    nb.manual_seed(0)
    p, n = 0.3, 200_000
    layer = nn.Dropout(p)
    x = nb.ones(n, requires_grad=True)
    y = layer(x)
    kept = y.data != 0
    # the kept fraction is Binomial(n, 1-p)/n: 5 standard errors is a generous bound
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.data[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(y.data.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # the gradient is the same scaled mask
    layer.eval()
    assert layer(x) is x


def test_dropout_is_reproducible_and_handles_the_extremes():
    x = nb.ones(100)
    nb.manual_seed(3)
    a = nn.Dropout(0.5)(x)
    nb.manual_seed(3)
    b = nn.Dropout(0.5)(x)
    np.testing.assert_array_equal(a.data, b.data)
    assert not nn.Dropout(1.0)(x).data.any()
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        nn.Dropout(1.5)


def test_dropout_passes_gradcheck_with_a_fixed_mask():
    x = nb.randn(4, 5, dtype="float64", requires_grad=True)

    def fn(t):  # a fresh generator per call: every evaluation draws the same mask
        return nn.Dropout(0.4, generator=np.random.default_rng(3))(t)

    assert nb.gradcheck(fn, x)
