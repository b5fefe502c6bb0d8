"""The fused relu(linear(x)) that Sequential runs for a Linear followed by a ReLU."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels, nn
from nabla.ops.linalg import LinearReLU, linear_relu


def unfused(model, x):
    for module in model:
        x = module(x)
    return x


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
def test_sequential_fuses_and_matches_the_unfused_layers_bit_for_bit(dtype, bias, compiled):
    nb.manual_seed(0)
    layers = nn.Linear(6, 5, bias=bias), nn.ReLU(), nn.Linear(5, 3, bias=bias)
    model = nn.Sequential(*layers).to(dtype)
    x = nb.randn(7, 6, dtype=dtype)
    results = []
    with kernels.reference(not compiled):
        for run in (model, lambda x: unfused(model, x)):
            for p in model.parameters():
                p.grad = None
            xr = nb.tensor(x.numpy(), requires_grad=True)
            out = run(xr)
            (out * nb.tensor(np.arange(21.0).reshape(7, 3), dtype=dtype)).sum().backward()
            grads = [xr.grad, *(p.grad for p in model.parameters())]
            results.append([out.numpy().copy(), *(g.copy() for g in grads)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    hidden = model[0].forward_relu(x)
    assert type(hidden._node) is LinearReLU
    assert np.any(results[0][1] != 0)


def test_the_fused_op_is_what_sequential_records():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    out = model(nb.randn(2, 4))
    assert type(out._node.inputs[0]._node) is LinearReLU


def test_gradcheck_float64():
    rng = np.random.default_rng(0)
    x = nb.tensor(rng.standard_normal((5, 4)), dtype="float64", requires_grad=True)
    w = nb.tensor(rng.standard_normal((3, 4)), dtype="float64", requires_grad=True)
    b = nb.tensor(rng.standard_normal(3), dtype="float64", requires_grad=True)
    assert nb.gradcheck(linear_relu, (x, w, b))


def test_shape_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Linear\(4, 3\): expected input"):
        nn.Sequential(nn.Linear(4, 3), nn.ReLU())(nb.randn(2, 5))
