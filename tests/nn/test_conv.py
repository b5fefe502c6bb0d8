"""Convolution and pooling modules: torch parity with copied weights, printing, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import nn

LAYERS = [
    (lambda: nn.Conv2d(3, 4, 3), lambda: torch.nn.Conv2d(3, 4, 3)),
    (
        lambda: nn.Conv2d(3, 6, (3, 2), stride=2, padding=1, groups=3, bias=False),
        lambda: torch.nn.Conv2d(3, 6, (3, 2), stride=2, padding=1, groups=3, bias=False),
    ),
    (
        lambda: nn.Conv2d(3, 4, 3, padding="same", dilation=2),
        lambda: torch.nn.Conv2d(3, 4, 3, padding="same", dilation=2),
    ),
    (lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2)),
    (
        lambda: nn.MaxPool2d(3, stride=1, padding=1),
        lambda: torch.nn.MaxPool2d(3, stride=1, padding=1),
    ),
    (lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2)),
    (lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("make_ours", "make_theirs"), LAYERS)
def test_layers_match_torch(make_ours, make_theirs, dtype):
    ours, theirs = make_ours().to(dtype), make_theirs().to(getattr(torch, dtype))
    theirs.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()}
    )
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(dtype)
    xa, xt = nb.tensor(x, dtype=dtype, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = ours(xa), theirs(xt)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(ya.data, yt.detach().numpy(), **tol)
    g = np.random.default_rng(1).standard_normal(ya.shape).astype(dtype)
    ya.backward(g)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), **tol)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(
            p.grad, dict(theirs.named_parameters())[name].grad.numpy(), **tol
        )


def test_conv_default_init_bound_uses_the_grouped_fan_in():
    layer = nn.Conv2d(8, 16, 3, groups=2)
    bound = 1 / np.sqrt(4 * 3 * 3)
    assert layer.weight.shape == (16, 4, 3, 3)
    assert (
        np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.9 * bound
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: nn.Conv2d(3, 4, 3)(nb.ones(2, 1, 8, 8)),
            r"Conv2d\(3, 4\): expected input \(N, 3, H, W\), got shape \(2, 1, 8, 8\)",
        ),
        (lambda: nn.Conv2d(3, 4, 5)(nb.ones(1, 3, 4, 4)), "smaller than the kernel"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), "groups=2 must divide"),
        (
            lambda: nn.MaxPool2d(2)(nb.ones(3, 4, 4)),
            r"expected input \(N, C, H, W\), got shape \(3, 4, 4\)",
        ),
        (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same")(nb.ones(1, 3, 5, 5)), "same"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
