"""Details of the activations: PyTorch's defaults, regimes and fallbacks (no SciPy), the ReLU
backward's compiled pass against its reference on every layout, and softmax's shift."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nabla as nb
import nabla.nn.functional as F
from nabla.ops import activations as act

BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]


# --- activations: PyTorch's defaults, regimes and fallbacks --------------------------------------


def test_activation_defaults_are_torchs():
    data = np.array([-30.0, -2.0, -0.5, 0.0, 0.7, 3.0, 19.0, 20.0, 20.5, 40.0])
    x, t = nb.tensor(data, dtype="float64"), torch.tensor(data)
    pairs = [
        (F.leaky_relu(x), TF.leaky_relu(t)),
        (F.elu(x), TF.elu(t)),
        (F.gelu(x), TF.gelu(t)),
        (F.softplus(x), TF.softplus(t)),
        (F.softplus(x, beta=2.0), TF.softplus(t, beta=2.0)),
        (F.softplus(x, threshold=19.0), TF.softplus(t, threshold=19.0)),
    ]
    for mine, theirs in pairs:
        np.testing.assert_allclose(mine.data, theirs.numpy(), rtol=1e-15, atol=0)


def test_softplus_switches_to_the_identity_strictly_above_the_threshold():
    data = np.array([20.0, 20.5, 10.0, 10.5])
    out = F.softplus(nb.tensor(data, dtype="float64")).data
    assert out[1] == 20.5 and out[0] != 20.0  # beta x > threshold, not >=
    out = F.softplus(nb.tensor(data, dtype="float64"), beta=2.0).data
    assert out[3] == 10.5 and out[2] != 10.0


@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 20.0), (0.5, 3.0)])
def test_softplus_gradient_is_sigmoid_of_beta_x_and_one_in_the_linear_regime(beta, threshold):
    data = np.array([-3.0, -0.5, 0.0, 1.0, 5.9, 6.1, 25.0])
    x = nb.tensor(data, dtype="float64", requires_grad=True)
    F.softplus(x, beta, threshold).sum().backward()
    t = torch.tensor(data, requires_grad=True)
    TF.softplus(t, beta, threshold).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


def test_activation_gradients_at_and_around_zero_follow_torch():
    data = np.array([-2.0, -0.0, 0.0, 1.5])
    for mine, theirs in [
        (lambda v: F.leaky_relu(v), lambda v: TF.leaky_relu(v)),
        (lambda v: F.leaky_relu(v, 0.3), lambda v: TF.leaky_relu(v, 0.3)),
        (lambda v: F.elu(v), lambda v: TF.elu(v)),
        (lambda v: F.elu(v, 0.4), lambda v: TF.elu(v, 0.4)),
        (lambda v: F.gelu(v, approximate="tanh"), lambda v: TF.gelu(v, approximate="tanh")),
        (F.gelu, TF.gelu),
    ]:
        x = nb.tensor(data, dtype="float64", requires_grad=True)
        mine(x).sum().backward()
        t = torch.tensor(data, requires_grad=True)
        theirs(t).sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_gelu_refuses_an_unknown_approximation_and_names_it():
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        F.gelu(nb.ones(2), approximate="fast")


def test_gelu_without_scipy_uses_math_erf_and_keeps_the_dtype(monkeypatch):
    monkeypatch.setattr(act, "_scipy_erf", False)
    data = np.array([-3.0, -0.5, 0.0, 0.5, 2.0], dtype=np.float32)
    out = F.gelu(nb.tensor(data))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, TF.gelu(torch.tensor(data)).numpy(), atol=1e-6)
    erf = act._erf(np.array([0.3, -1.2]))
    np.testing.assert_array_equal(erf, [math.erf(0.3), math.erf(-1.2)])


def test_erf_without_scipy_remembers_that_it_is_missing(monkeypatch):
    """The failed import is recorded (False), so later calls neither retry it nor call SciPy."""
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # import raises ImportError
    monkeypatch.setattr(act, "_scipy_erf", None)
    for _ in range(2):
        erf = act._erf(np.array([0.3, -1.2], dtype=np.float32))
        assert act._scipy_erf is False
        assert erf.dtype == np.float32
        np.testing.assert_allclose(erf, [math.erf(0.3), math.erf(-1.2)], rtol=1e-6)


def test_erf_looks_up_scipy_once_and_keeps_the_dtype(monkeypatch):
    monkeypatch.setattr(act, "_scipy_erf", None)
    out = act._erf(np.array([0.5, -1.5], dtype=np.float32))
    assert out.dtype == np.float32 and act._scipy_erf not in (None, False)
    np.testing.assert_allclose(out, [math.erf(0.5), math.erf(-1.5)], rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_defaults_to_the_last_axis_and_takes_dim(name):
    data = np.random.default_rng(0).standard_normal((3, 4))
    x = nb.tensor(data, dtype="float64", requires_grad=True)
    expected = getattr(torch, name)(torch.tensor(data), dim=-1).numpy()
    np.testing.assert_allclose(getattr(F, name)(x).data, expected, rtol=1e-12)
    along0 = getattr(torch, name)(torch.tensor(data), dim=0).numpy()
    np.testing.assert_allclose(getattr(F, name)(x, dim=0).data, along0, rtol=1e-12)


def test_sigmoid_and_tanh_saturate_without_overflow():
    data = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    x = nb.tensor(data, dtype="float64", requires_grad=True)
    (x.sigmoid() + x.tanh()).sum().backward()
    t = torch.tensor(data, requires_grad=True)
    (t.sigmoid() + t.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.sigmoid().data, t.sigmoid().detach().numpy(), atol=1e-15)


# --- relu_grad: the compiled pass and the reference agree on every layout ------------------------


def _relu_grad_cases(rng):
    out = np.maximum(rng.standard_normal((3, 4, 5)), 0).astype(np.float32)
    g = rng.standard_normal((3, 4, 5)).astype(np.float32)
    yield g, out  # both contiguous
    yield g.transpose(2, 0, 1), out.transpose(2, 0, 1)  # both the same transposed view
    yield g.astype(np.float64), out  # dtypes differ
    yield np.ascontiguousarray(g.transpose(2, 0, 1)), out.transpose(2, 0, 1)  # strides differ
    yield g[:, ::2], out[:, ::2]  # not one block of memory
    yield g[0, 0], out[0, 0]
    yield g.astype(np.float64)[:, 1:], out.astype(np.float64)[:, 1:]


def test_relu_grad_equals_its_reference_for_every_layout():
    for g, out in _relu_grad_cases(np.random.default_rng(1)):
        result = act.relu_grad(g, out)
        np.testing.assert_array_equal(result, g * (out > 0))
        assert result.shape == g.shape and result.dtype == np.result_type(g, out)


def test_dense_views_one_block_of_memory_in_any_axis_order():
    a = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(act.dense(a), np.arange(24.0))
    view = a.transpose(1, 2, 0)
    flat = act.dense(view)
    assert flat is not None and np.shares_memory(flat, a)
    np.testing.assert_array_equal(np.sort(flat), np.arange(24.0))
    assert act.dense(a[:, :, ::2]) is None
    assert act.dense(a[:, 1:].transpose(2, 0, 1)) is None


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_shifts_each_row_by_its_own_maximum(name):
    """Rows of very different scale, and huge values: no overflow, no underflow to -inf."""
    data = np.array([[0.0, 1.0], [-1000.0, -999.0], [1000.0, 999.0]])
    x = nb.tensor(data, dtype="float64", requires_grad=True)
    out = getattr(F, name)(x, axis=-1)
    t = torch.tensor(data, requires_grad=True)
    expected = getattr(torch, name)(t, dim=-1)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    cotangent = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])
    out.backward(nb.tensor(cotangent, dtype="float64"))
    expected.backward(torch.tensor(cotangent))
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_logsumexp_of_a_slice_that_is_all_minus_infinity_is_minus_infinity_without_a_warning():
    """torch gives -inf silently; the project turns nabla's RuntimeWarnings into errors."""
    x = np.array([[-np.inf, -np.inf], [0.0, np.log(3.0)]])
    got = nb.logsumexp(nb.tensor(x, dtype="float64"), axis=1).data
    want = torch.logsumexp(torch.tensor(x), dim=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert got[0] == -np.inf
