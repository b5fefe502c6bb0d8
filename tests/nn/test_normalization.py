"""BatchNorm1d/2d and LayerNorm against torch with copied state (outputs, gradients, running
statistics, state_dict layout), finite-difference gradient checks, and the error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm, batch_norm, layer_norm

TOL = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-9, "atol": 1e-11}}
OURS = {"BatchNorm1d": BatchNorm1d, "BatchNorm2d": BatchNorm2d, "LayerNorm": LayerNorm}

# (layer, its first argument, input shape)
CASES = [
    ("BatchNorm1d", 5, (8, 5)),
    ("BatchNorm1d", 5, (6, 5, 7)),
    ("BatchNorm2d", 3, (4, 3, 5, 6)),
    ("LayerNorm", 6, (4, 6)),
    ("LayerNorm", (4, 5), (3, 4, 5)),
    ("LayerNorm", (5,), (2, 3, 4, 5)),
]


def make_pair(kind: str, arg, dtype: str, seed: int = 0, **kwargs):
    """A nabla layer with random parameters (and running statistics), and torch's copy of it."""
    ours = OURS[kind](arg, dtype=dtype, **kwargs)
    rng = np.random.default_rng(seed)
    for name, t in [*ours.named_parameters(), *ours.named_buffers()]:
        if name == "running_var":
            t.data[...] = rng.uniform(0.5, 2.0, t.shape)
        elif t.data.dtype.kind == "f":
            t.data[...] = rng.standard_normal(t.shape)
    theirs = getattr(torch.nn, kind)(arg, dtype=getattr(torch, dtype), **kwargs)
    theirs.load_state_dict(to_torch(ours.state_dict()))
    return ours, theirs


def to_torch(state) -> dict:
    return {k: torch.from_numpy(np.array(v.numpy())) for k, v in state.items()}


def to_numpy(state) -> dict:
    return {k: v.detach().numpy().copy() for k, v in state.items()}


def batch(shape, dtype, seed):
    # an offset and scale far from (0, 1) so that the normalization visibly does something
    return (3.0 + 2.0 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def assert_state_equal(ours, theirs, dtype):
    theirs_state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs_state[key].numpy(), **TOL[dtype])


def forward_backward_both(ours, theirs, x, dtype, seed=1):
    xa = nb.tensor(x, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ya, yt = ours(xa), theirs(xt)
    np.testing.assert_allclose(ya.data, yt.detach().numpy(), **TOL[dtype])
    assert ya.dtype == np.dtype(dtype)
    g = np.random.default_rng(seed).standard_normal(ya.shape).astype(dtype)
    ya.backward(g)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), **TOL[dtype])
    assert xa.grad.dtype == np.dtype(dtype)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, theirs_params[name].grad.numpy(), **TOL[dtype])
        assert p.grad.dtype == np.dtype(dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("kind", "arg", "shape"), CASES, ids=[f"{c[0]}{c[2]}" for c in CASES])
def test_forward_and_backward_match_torch(kind, arg, shape, dtype, training):
    ours, theirs = make_pair(kind, arg, dtype)
    ours.train(training)
    theirs.train(training)
    forward_backward_both(ours, theirs, batch(shape, dtype, seed=2), dtype)
    assert_state_equal(ours, theirs, dtype)  # running statistics updated alike (BatchNorm)


VARIANTS = [
    ("BatchNorm1d", 4, (5, 4, 3), {"affine": False}),
    ("BatchNorm2d", 3, (2, 3, 4, 4), {"affine": False, "track_running_stats": False}),
    ("BatchNorm2d", 3, (2, 3, 4, 4), {"track_running_stats": False}),
    ("BatchNorm1d", 4, (5, 4), {"momentum": None}),
    ("BatchNorm1d", 4, (5, 4), {"bias": False}),
    ("BatchNorm1d", 4, (5, 4), {"eps": 1e-1}),
    ("LayerNorm", (3, 4), (2, 3, 4), {"elementwise_affine": False}),
    ("LayerNorm", 4, (2, 3, 4), {"bias": False}),
    ("LayerNorm", 4, (2, 3, 4), {"eps": 1e-1}),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("kind", "arg", "shape", "kwargs"), VARIANTS, ids=[f"{v[0]}-{v[3]}" for v in VARIANTS]
)
def test_options_match_torch(kind, arg, shape, kwargs, training):
    ours, theirs = make_pair(kind, arg, "float64", **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.train(training)
    theirs.train(training)
    forward_backward_both(ours, theirs, batch(shape, "float64", seed=3), "float64")
    assert_state_equal(ours, theirs, "float64")


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("kind", "shape"), [("BatchNorm1d", (6, 4, 3)), ("BatchNorm2d", (3, 4, 2, 2))]
)
def test_running_statistics_follow_torch_over_many_steps(kind, shape, dtype, momentum):
    ours, theirs = make_pair(kind, 4, dtype, momentum=momentum)
    ours.reset_running_stats()
    theirs.reset_running_stats()
    for step in range(20):
        x = batch(shape, dtype, seed=100 + step)
        ours(nb.tensor(x, dtype=dtype))
        theirs(torch.from_numpy(x))
    assert int(ours.num_batches_tracked.data) == int(theirs.num_batches_tracked) == 20
    assert ours.num_batches_tracked.dtype == np.int64
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), **TOL[dtype])
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), **TOL[dtype])
    if momentum is None:  # the cumulative average is the plain mean of the 20 batch means
        means = [
            batch(shape, dtype, 100 + s).mean(axis=(0, *range(2, len(shape)))) for s in range(20)
        ]
        np.testing.assert_allclose(ours.running_mean.data, np.mean(means, axis=0), **TOL[dtype])
    # evaluation now normalizes with those statistics, not the batch's
    ours.eval()
    theirs.eval()
    x = batch(shape, dtype, seed=7)
    y = ours(nb.tensor(x, dtype=dtype)).data
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), **TOL[dtype])
    axes = (0, *range(2, len(shape)))
    c = (1, -1) + (1,) * (len(shape) - 2)
    expected = (x - ours.running_mean.data.reshape(c)) / np.sqrt(
        ours.running_var.data.reshape(c) + ours.eps
    ) * ours.weight.data.reshape(c) + ours.bias.data.reshape(c)
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    assert not np.allclose(y.mean(axis=axes), ours.bias.data)  # not batch-normalized
    assert int(ours.num_batches_tracked.data) == 20  # eval does not count batches


def test_running_variance_is_unbiased_while_the_output_uses_the_biased_one():
    x = np.array([[1.0], [2.0], [6.0]])  # mean 3, biased variance 14/3, unbiased 7
    bn = BatchNorm1d(1, momentum=1.0, dtype="float64")
    y = bn(nb.tensor(x, dtype="float64")).data
    np.testing.assert_allclose(bn.running_mean.data, [3.0])
    np.testing.assert_allclose(bn.running_var.data, [7.0])
    np.testing.assert_allclose(y, (x - 3.0) / np.sqrt(14 / 3 + 1e-5))


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (3, 3, 2)), ("BatchNorm2d", (2, 3, 2, 3))],
)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_passes_gradcheck(kind, shape, training):
    layer = OURS[kind](3, dtype="float64")
    rng = np.random.default_rng(4)
    layer.weight.data[...] = rng.uniform(0.5, 2.0, 3)
    layer.bias.data[...] = rng.standard_normal(3)
    layer.running_var.data[...] = rng.uniform(0.5, 2.0, 3)
    layer.train(training)
    x = nb.tensor(batch(shape, "float64", 5), dtype="float64", requires_grad=True)
    assert nb.gradcheck(layer, x)  # the module itself (it updates its running stats: harmless)
    w = nb.tensor(layer.weight.data, dtype="float64", requires_grad=True)
    b = nb.tensor(layer.bias.data, dtype="float64", requires_grad=True)
    assert nb.gradcheck(
        lambda x, w, b: batch_norm(
            x, layer.running_mean, layer.running_var, w, b, training, 0.0, layer.eps
        ),
        [x, w, b],
    )


@pytest.mark.parametrize(("normalized_shape", "shape"), [(4, (3, 4)), ((2, 3), (2, 2, 3))])
def test_layer_norm_passes_gradcheck(normalized_shape, shape):
    rng = np.random.default_rng(6)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    x = nb.tensor(batch(shape, "float64", 7), dtype="float64", requires_grad=True)
    w = nb.tensor(rng.uniform(0.5, 2.0, ns), dtype="float64", requires_grad=True)
    b = nb.tensor(rng.standard_normal(ns), dtype="float64", requires_grad=True)
    assert nb.gradcheck(lambda x, w, b: layer_norm(x, normalized_shape, w, b), [x, w, b])


STATE_CASES = [
    ("BatchNorm1d", 4, {}),
    ("BatchNorm2d", 4, {"affine": False}),
    ("BatchNorm1d", 4, {"bias": False}),
    ("BatchNorm2d", 4, {"track_running_stats": False}),
    ("LayerNorm", (2, 3), {}),
    ("LayerNorm", 3, {"bias": False}),
    ("LayerNorm", 3, {"elementwise_affine": False}),
]


@pytest.mark.parametrize(("kind", "arg", "kwargs"), STATE_CASES)
def test_state_dict_layout_and_repr_equal_torchs(kind, arg, kwargs):
    ours = OURS[kind](arg, **kwargs)
    theirs = getattr(torch.nn, kind)(arg, **kwargs)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in ours_state.items():
        assert value.shape == tuple(theirs_state[key].shape)
        assert value.dtype == theirs_state[key].numpy().dtype
        np.testing.assert_array_equal(value.numpy(), theirs_state[key].numpy())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize(
    ("kind", "shape"), [("BatchNorm1d", (6, 3, 4)), ("BatchNorm2d", (4, 3, 2, 2))]
)
def test_torch_state_dict_loads_into_nabla_and_back(kind, shape):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 2.0)
        theirs.bias.normal_()
    for step in range(3):  # real running statistics and num_batches_tracked = 3
        theirs(torch.from_numpy(batch(shape, "float32", step)))
    theirs.eval()
    ours = OURS[kind](3).eval()
    ours.load_state_dict(to_numpy(theirs.state_dict()))
    assert int(ours.num_batches_tracked.data) == 3
    x = batch(shape, "float32", 9)
    y = ours(nb.tensor(x)).data
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), **TOL["float32"])
    back = getattr(torch.nn, kind)(3).eval()
    back.load_state_dict(to_torch(ours.state_dict()))
    assert int(back.num_batches_tracked) == 3
    np.testing.assert_allclose(back(torch.from_numpy(x)).detach().numpy(), y, **TOL["float32"])


def test_wrong_shapes_name_the_layer_and_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"BatchNorm1d\(3\): expected input \(N, 3\) or \(N, 3, L\), got shape \(2, 3, 4, 5\)",
    ):
        BatchNorm1d(3)(nb.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): .* got shape \(2, 4\)"):
        BatchNorm1d(3)(nb.ones(2, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): .* got shape \(3,\)"):
        BatchNorm1d(3)(nb.ones(3))
    with pytest.raises(
        ValueError, match=r"BatchNorm2d\(3\): expected input \(N, 3, H, W\), got shape \(2, 3, 4\)"
    ):
        BatchNorm2d(3)(nb.ones(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): .* got shape \(2, 2, 4, 4\)"):
        BatchNorm2d(3)(nb.ones(2, 2, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"LayerNorm\(\(4, 5\)\): expected input \(\*, 4, 5\), got shape \(2, 5, 4\)",
    ):
        LayerNorm((4, 5))(nb.ones(2, 5, 4))
    with pytest.raises(ValueError, match=r"num_features must be positive"):
        BatchNorm2d(0)


def test_training_needs_more_than_one_value_per_channel_as_in_torch():
    for layer, theirs, shape in [
        (BatchNorm1d(3), torch.nn.BatchNorm1d(3), (1, 3)),
        (BatchNorm1d(3), torch.nn.BatchNorm1d(3), (1, 3, 1)),
        (BatchNorm2d(3), torch.nn.BatchNorm2d(3), (1, 3, 1, 1)),
    ]:
        with pytest.raises(ValueError, match=r"more than 1 value per channel when training"):
            layer(nb.ones(*shape))
        with pytest.raises(ValueError, match=r"more than 1 value per channel when training"):
            theirs(torch.ones(*shape))
        assert int(layer.num_batches_tracked.data) == 0  # a rejected batch is not counted
        layer.eval()
        assert layer(nb.ones(*shape)).shape == shape  # fine with running statistics
    BatchNorm1d(3)(nb.randn(1, 3, 2))  # one example of length 2 is two values per channel


def test_gradients_flow_only_where_needed_and_parameters_can_be_frozen():
    bn = BatchNorm2d(2).requires_grad_(False)
    x = nb.randn(3, 2, 2, 2, requires_grad=True)
    bn(x).sum().backward()
    assert bn.weight.grad is None and bn.bias.grad is None
    # sum(y) = sum(b) regardless of x: normalizing makes the output's mean independent of x
    np.testing.assert_allclose(x.grad, 0.0, atol=1e-5)
    with nb.no_grad():
        assert not bn(x).requires_grad
