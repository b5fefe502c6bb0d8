"""Initializers: sample statistics match the documented formulas; gains and fans match PyTorch.

Statistical tolerances, for n = 512 · 1024 draws with a fixed seed: the sample mean's standard
error is std / sqrt(n) and we allow 5 of them; the sample std's relative standard error is at
most 1 / sqrt(2n) ≈ 0.001 (normal; less for uniform) and we allow 1 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.nn import init

SHAPE = (512, 1024)  # (out, in): fan_in = 1024, fan_out = 512
N = SHAPE[0] * SHAPE[1]
FAN_IN, FAN_OUT = 1024, 512
STD_RTOL = 0.01

NONLINEARITIES = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]


def _gen(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_stats(w: np.ndarray, mean: float, std: float) -> None:
    assert abs(w.mean() - mean) < 5 * std / math.sqrt(w.size)
    assert w.std() == pytest.approx(std, rel=STD_RTOL)


# --- distributions -------------------------------------------------------------------------------

SQ3 = math.sqrt(3.0)
XAVIER_STD = math.sqrt(2.0 / (FAN_IN + FAN_OUT))
CASES = {
    # name: (call, expected std, uniform bound or None)
    "uniform": (lambda t, g: init.uniform_(t, -2.0, 2.0, generator=g), 4 / math.sqrt(12), 2.0),
    "normal": (lambda t, g: init.normal_(t, 0.0, 0.3, generator=g), 0.3, None),
    "xavier_uniform": (
        lambda t, g: init.xavier_uniform_(t, gain=2.0, generator=g),
        2.0 * XAVIER_STD,
        SQ3 * 2.0 * XAVIER_STD,
    ),
    "xavier_normal": (
        lambda t, g: init.xavier_normal_(t, gain=2.0, generator=g),
        2.0 * XAVIER_STD,
        None,
    ),
    "kaiming_uniform_relu": (
        lambda t, g: init.kaiming_uniform_(t, nonlinearity="relu", generator=g),
        math.sqrt(2.0 / FAN_IN),
        SQ3 * math.sqrt(2.0 / FAN_IN),
    ),
    "kaiming_uniform_default": (  # a=0, leaky_relu: gain sqrt(2)
        lambda t, g: init.kaiming_uniform_(t, generator=g),
        math.sqrt(2.0 / FAN_IN),
        SQ3 * math.sqrt(2.0 / FAN_IN),
    ),
    "kaiming_uniform_sqrt5": (  # nn.Linear's default in PyTorch: bound = 1 / sqrt(fan_in)
        lambda t, g: init.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
        1 / math.sqrt(3 * FAN_IN),
        1 / math.sqrt(FAN_IN),
    ),
    "kaiming_normal_fan_out_tanh": (
        lambda t, g: init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh", generator=g),
        (5 / 3) / math.sqrt(FAN_OUT),
        None,
    ),
    "kaiming_normal_leaky": (
        lambda t, g: init.kaiming_normal_(t, a=0.2, generator=g),
        math.sqrt(2 / 1.04) / math.sqrt(FAN_IN),
        None,
    ),
    "lecun_normal": (
        lambda t, g: init.lecun_normal_(t, generator=g),
        1 / math.sqrt(FAN_IN),
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_distribution_matches_formula(name):
    call, std, bound = CASES[name]
    t = nb.zeros(*SHAPE)
    assert call(t, _gen()) is t  # in place, returns the tensor
    w = t.data.astype(np.float64)
    _check_stats(w, 0.0, std)  # every case is centred on 0
    if bound is not None:
        assert w.min() >= -bound and w.max() <= bound
        assert w.min() < -0.99 * bound and w.max() > 0.99 * bound  # fills the whole interval


def test_uniform_and_normal_defaults_and_offsets():
    t = init.uniform_(nb.zeros(*SHAPE), generator=_gen())  # U(0, 1)
    _check_stats(t.data.astype(np.float64), 0.5, 1 / math.sqrt(12))
    assert t.data.min() >= 0 and t.data.max() <= 1
    t = init.normal_(nb.zeros(*SHAPE), mean=3.0, std=2.0, generator=_gen())
    _check_stats(t.data.astype(np.float64), 3.0, 2.0)


def test_conv_weight_uses_receptive_field():
    # (out, in, kh, kw) = (64, 32, 3, 3): fan_in = 288, fan_out = 576
    t = init.kaiming_normal_(nb.zeros(64, 32, 3, 3), nonlinearity="relu", generator=_gen())
    _check_stats(t.data.astype(np.float64), 0.0, math.sqrt(2 / 288))
    t = init.xavier_normal_(nb.zeros(64, 32, 3, 3), generator=_gen())
    _check_stats(t.data.astype(np.float64), 0.0, math.sqrt(2 / (288 + 576)))


def test_constant_fills():
    t = nb.ones(3, 4)
    assert init.zeros_(t) is t
    np.testing.assert_array_equal(t.data, np.zeros((3, 4)))
    np.testing.assert_array_equal(init.ones_(t).data, np.ones((3, 4)))
    np.testing.assert_array_equal(init.constant_(t, -1.5).data, np.full((3, 4), -1.5))
    assert t.dtype == np.float32
    assert init.constant_(nb.zeros(2, dtype="int64"), 7).data.tolist() == [7, 7]


# --- orthogonal ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (128, 128), (16, 4, 3, 3)])
def test_orthogonal(shape):
    gain = 1.5
    t = init.orthogonal_(nb.zeros(*shape, dtype="float64"), gain=gain, generator=_gen())
    w = t.data.reshape(shape[0], -1)
    rows, cols = w.shape
    product = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(product, gain**2 * np.eye(min(rows, cols)), atol=1e-10)


def test_orthogonal_float32_is_orthogonal_to_float32_precision():
    w = init.orthogonal_(nb.zeros(100, 300), generator=_gen()).data
    assert w.dtype == np.float32
    np.testing.assert_allclose(w @ w.T, np.eye(100), atol=1e-5)


# --- gains and fans against PyTorch --------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_gain_matches_torch(nonlinearity):
    assert init.calculate_gain(nonlinearity) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity), rel=1e-15
    )


@pytest.mark.parametrize("slope", [0, 0.2, 1, math.sqrt(5)])
def test_leaky_relu_gain_matches_torch(slope):
    assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-15
    )


@pytest.mark.parametrize(
    "shape", [(3, 5), (5, 3), (1, 1), (16, 3, 5, 5), (8, 4, 3), (2, 3, 2, 2, 2)]
)
def test_fans_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.fan_in_and_fan_out(nb.zeros(*shape)) == expected


# --- dtypes, seeds, autograd interplay -----------------------------------------------------------

RANDOM_INITS = [
    init.uniform_,
    init.normal_,
    init.xavier_uniform_,
    init.xavier_normal_,
    init.kaiming_uniform_,
    init.kaiming_normal_,
    init.lecun_normal_,
    init.orthogonal_,
]


@pytest.mark.parametrize("fn", RANDOM_INITS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_preserved_and_seed_reproduces(fn, dtype):
    a = fn(nb.zeros(8, 6, dtype=dtype), generator=_gen(7))
    b = fn(nb.zeros(8, 6, dtype=dtype), generator=_gen(7))
    c = fn(nb.zeros(8, 6, dtype=dtype), generator=_gen(8))
    assert a.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_default_generator_follows_manual_seed():
    nb.manual_seed(3)
    a = init.kaiming_uniform_(nb.zeros(4, 5)).data.copy()
    nb.manual_seed(3)
    b = init.kaiming_uniform_(nb.zeros(4, 5)).data
    np.testing.assert_array_equal(a, b)


def test_parameter_that_requires_grad_can_be_initialized():
    w = nb.zeros(3, 4, requires_grad=True)
    init.xavier_uniform_(w, generator=_gen())
    assert w.requires_grad and w.is_leaf and np.any(w.data != 0)
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad, 2 * w.data)


def test_reinitializing_a_tensor_a_graph_saved_is_caught_at_backward():
    w = nb.ones(2, 2, requires_grad=True)
    y = (w * w).sum()  # saves w for the gradient
    init.normal_(w, generator=_gen())
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_empty_tensor_is_a_no_op():
    for fn in RANDOM_INITS:
        assert fn(nb.zeros(0, 3)).shape == (0, 3)


# --- errors --------------------------------------------------------------------------------------


def test_unknown_nonlinearity_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown nonlinearity 'gelu'.*leaky_relu.*selu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.kaiming_normal_(nb.zeros(3, 3), nonlinearity="swish")


def test_bad_leaky_relu_slope():
    with pytest.raises(ValueError, match="negative slope"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="negative slope"):
        init.calculate_gain("leaky_relu", "0.1")


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of fan_in, fan_out, got 'fan_avg'"):
        init.kaiming_uniform_(nb.zeros(3, 3), mode="fan_avg")


@pytest.mark.parametrize(
    "fn", [init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.lecun_normal_]
)
def test_fans_need_two_dimensions(fn):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fn(nb.zeros(5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fan_in_and_fan_out(nb.zeros(()))


def test_orthogonal_needs_two_dimensions():
    with pytest.raises(ValueError, match="orthogonal_ needs a tensor with at least 2 dimensions"):
        init.orthogonal_(nb.zeros(5))


def test_type_errors():
    with pytest.raises(TypeError, match="nabla Tensor"):
        init.normal_(np.zeros(3))
    with pytest.raises(TypeError, match="float tensor"):
        init.uniform_(nb.zeros(2, 2, dtype="int64"))


def test_bad_parameters():
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(nb.zeros(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="std >= 0"):
        init.normal_(nb.zeros(2), std=-1.0)
