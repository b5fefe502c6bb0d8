"""conv2d in detail: every code path of nabla/ops/conv.py against torch in float64. The helpers
and the validation messages are in test_conv_helpers.py, the scratch buffers in
test_conv_buffers.py, which kernel each path runs in test_conv_dispatch.py.

A convolution has three forward paths (direct kernel, im2col kernel + GEMM, NumPy im2col +
GEMM) and as many for each gradient; which one runs depends on the backend, on ``DIRECT`` and
on which inputs need a gradient. Each test below names the path it pins.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nabla as nb
from nabla import kernels
from nabla.ops import conv as conv_ops
from nabla.ops import conv_buffers

BACKENDS = ["compiled", "reference"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test on the compiled kernels and on the NumPy references, whatever the
    environment says (both must agree with torch)."""
    with kernels.reference(request.param == "reference"):
        yield request.param


def skip_redundant(backend, mode):
    """On the references DIRECT changes nothing: run one mode only."""
    if backend == "reference" and mode not in ("auto", "never"):
        pytest.skip("DIRECT applies to the compiled kernels only")


@pytest.fixture
def direct():
    """Sets conv.DIRECT for one test and restores it."""
    previous = conv_ops.DIRECT
    yield lambda mode: setattr(conv_ops, "DIRECT", mode)
    conv_ops.DIRECT = previous


def run_both(x, w, b, needs=(True, True, True), layout="nchw", relu=False, **options):
    """(ours, torch's) output and gradients of conv2d (relu optional) for a random cotangent;
    ``needs`` says which of x, w, b require a gradient (None where not)."""
    if layout == "chwn":  # a convolution's output layout
        data = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    else:
        data = x
    xt = nb.from_numpy(data)
    xt.requires_grad = needs[0]
    wt = nb.tensor(w, requires_grad=needs[1], dtype=w.dtype)
    bt = None if b is None else nb.tensor(b, requires_grad=needs[2], dtype=b.dtype)
    y = conv_ops.conv2d(xt, wt, bt, relu=relu, **options)
    g = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    if any(needs[: 2 if b is None else 3]):
        (y * nb.tensor(g, dtype=x.dtype)).sum().backward()
    ours = [y.numpy(), xt.grad, wt.grad, None if bt is None else bt.grad]

    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = TF.conv2d(tx, tw, tb, **options)
    ty = ty.relu() if relu else ty
    ty.backward(torch.from_numpy(g))
    grads = [
        t.grad.numpy() if t is not None and need else None for t, need in zip((tx, tw, tb), needs)
    ]
    return ours, [ty.detach().numpy(), *grads]


def assert_match(ours, theirs, tol=1e-10):
    for name, a, b in zip(["y", "dx", "dw", "db"], ours, theirs):
        if b is None:
            assert a is None, f"{name}: expected no gradient"
        else:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=name)


def data(n, c, o, hw, k, groups=1, bias=True, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *hw)).astype(dtype)
    w = rng.standard_normal((o, c // groups, *k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    return x, w, b


# (N, C, O, (H, W), kernel, options): odd sizes, every geometry argument off its default
GEOMETRIES = [
    (2, 3, 4, (7, 6), (3, 3), dict(padding=1)),
    (2, 3, 5, (9, 8), (3, 2), dict(stride=(2, 1), padding=(1, 0))),
    (1, 2, 3, (10, 11), (3, 3), dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1))),
    (2, 4, 6, (7, 9), (2, 3), dict(stride=(1, 2), dilation=(1, 2), groups=2)),
    (3, 4, 4, (6, 5), (3, 3), dict(padding=(0, 1), groups=4)),
    (2, 2, 3, (8, 7), (1, 1), dict(stride=2)),
    (2, 3, 2, (7, 8), (4, 3), dict(padding=(2, 1), dilation=(1, 2))),
]


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv2d_matches_torch_on_every_path(geometry, mode, backend, direct):
    """Output and the three gradients against torch in float64, on each forward/backward path."""
    skip_redundant(backend, mode)
    n, c, o, hw, k, options = geometry
    direct(mode)
    x, w, b = data(n, c, o, hw, k, options.get("groups", 1))
    assert_match(*run_both(x, w, b, **options))


@pytest.mark.parametrize("mode", ["always", "never"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize(
    "needs", [(True, False, False), (False, True, False), (False, False, True), (True, True, True)]
)
def test_conv2d_partial_gradients(needs, layout, mode, backend, direct):
    """Only the gradients asked for are computed, and each alone is right: dW without dx takes
    the kept windows (or, direct, the kept padded input), dx alone keeps neither."""
    skip_redundant(backend, mode)
    direct(mode)
    x, w, b = data(2, 3, 4, (6, 7), (3, 3), seed=1)
    assert_match(*run_both(x, w, b, needs=needs, layout=layout, padding=1))


@pytest.mark.parametrize("mode", ["always", "never"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_relu_fused(bias, mode, backend, direct):
    """relu=True equals torch's relu(conv2d(...)), forward and backward, with and without bias."""
    skip_redundant(backend, mode)
    direct(mode)
    x, w, b = data(2, 3, 4, (7, 6), (3, 3), bias=bias, seed=2)
    assert_match(*run_both(x, w, b, needs=(True, True, bias), relu=True, padding=1))


def test_conv2d_auto_direct_sizes(backend):
    """Rows of Wo*N >= 1024 (the auto rule picks the direct kernels, forward, dW and dx)."""
    x, w, b = data(33, 2, 3, (5, 32), (3, 3), seed=3)
    assert_match(*run_both(x, w, b, padding=1))


@pytest.mark.parametrize("mode", ["always", "never"])
def test_conv2d_float32(mode, backend, direct):
    """float32 through every path (the kernels' other dtype), to float32 rounding."""
    skip_redundant(backend, mode)
    direct(mode)
    x, w, b = data(2, 3, 4, (7, 6), (3, 3), seed=4, dtype=np.float32)
    ours, theirs = run_both(x, w, b, padding=1, stride=1)
    assert all(a.dtype == np.float32 for a in ours)
    assert_match(ours, theirs, tol=1e-4)


@pytest.mark.parametrize("wrap", ["tensor", "array"])
@pytest.mark.parametrize(("x_dtype", "w_dtype"), [("float32", "float64"), ("float64", "float32")])
def test_conv2d_casts_input_to_weight_dtype(x_dtype, w_dtype, wrap, backend):
    """An input of another dtype, Tensor or NumPy array, is convolved in the weight's dtype
    (torch refuses mixed dtypes: its oracle gets the input already cast)."""
    x, w, b = data(1, 2, 3, (5, 5), (3, 3), seed=6)
    x = x.astype(x_dtype)
    wt, bt = nb.tensor(w, dtype=w_dtype), nb.tensor(b, dtype=w_dtype)
    y = conv_ops.conv2d(nb.tensor(x, dtype=x_dtype) if wrap == "tensor" else x, wt, bt)
    assert y.dtype == np.dtype(w_dtype)
    want = TF.conv2d(
        torch.tensor(x.astype(w_dtype)),
        torch.tensor(w.astype(w_dtype)),
        torch.tensor(b.astype(w_dtype)),
    )
    tol = 1e-12 if w_dtype == "float64" else 1e-5
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize(("hw", "padding"), [((6, 6), (2, 1)), ((3, 3), (2, 2)), ((3, 5), (1, 3))])
@pytest.mark.parametrize("mode", ["always", "never"])
def test_conv2d_reused_scratch_border_is_zero(mode, hw, padding, backend, direct):
    """The padded input and its gradient come from reused scratch arrays: a second call of the
    same shape, after garbage filled them, must still see a zero border (also a border wider
    than half the image)."""
    skip_redundant(backend, mode)
    direct(mode)
    x, w, b = data(2, 3, 4, hw, (3, 3), seed=8)
    for _ in range(2):
        for arrays in conv_buffers._pool.values():
            for raw, a in arrays:  # only the free ones, as scratch() would hand out
                if (sys.getrefcount(raw), sys.getrefcount(a)) == conv_buffers._FREE:
                    if a.dtype.kind == "f":
                        a.fill(1e3)
        assert_match(*run_both(x, w, b, padding=padding))


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("dilation", [1, (2, 1)])
def test_conv2d_string_padding(padding, dilation, backend):
    """'same' keeps H and W (stride 1, odd effective kernel), 'valid' pads nothing: as torch."""
    x, w, b = data(2, 2, 3, (7, 6), (3, 5), seed=9)
    ours, theirs = run_both(x, w, b, padding=padding, dilation=dilation)
    assert_match(ours, theirs)
    if padding == "same":
        assert ours[0].shape[2:] == x.shape[2:]


def test_conv2d_defaults_are_torchs():
    """stride 1, padding 0, dilation 1, groups 1, no bias, no relu: torch's defaults."""
    x, w, _ = data(1, 2, 3, (6, 5), (3, 2), seed=10)
    x[0, 0, 0, 0] = -50.0  # some outputs negative: a default relu would show
    y = conv_ops.conv2d(nb.tensor(x, dtype="float64"), nb.tensor(w, dtype="float64"))
    np.testing.assert_allclose(
        y.numpy(), TF.conv2d(torch.tensor(x), torch.tensor(w)).numpy(), rtol=1e-12, atol=1e-12
    )
    assert (y.numpy() < 0).any()
