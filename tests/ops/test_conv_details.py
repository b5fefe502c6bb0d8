"""conv2d in detail: every code path of nabla/ops/conv.py against torch in float64, the helpers'
rules at their boundaries, and the validation messages.

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
    grads = [t.grad.numpy() if t is not None and need else None
             for t, need in zip((tx, tw, tb), needs)]  # fmt: skip
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


def test_conv2d_casts_input_to_weight_dtype(backend):
    """A float32 input with float64 weights is convolved in float64 (the weight's dtype)."""
    x, w, b = data(1, 2, 3, (5, 5), (3, 3), seed=6)
    w64, b64 = nb.tensor(w, dtype="float64"), nb.tensor(b, dtype="float64")
    y = conv_ops.conv2d(nb.tensor(x, dtype="float32"), w64, b64)
    assert y.dtype == np.float64
    want = TF.conv2d(torch.tensor(x.astype(np.float32).astype(np.float64)), torch.tensor(w),
                     torch.tensor(b))  # fmt: skip
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["always", "never"])
def test_conv2d_reused_scratch_border_is_zero(mode, backend, direct):
    """The padded input and its gradient come from reused scratch arrays: a second call of the
    same shape, after garbage filled them, must still see a zero border."""
    skip_redundant(backend, mode)
    direct(mode)
    x, w, b = data(2, 3, 4, (6, 6), (3, 3), seed=8)
    for _ in range(2):
        for arrays in conv_buffers._pool.values():
            for raw, a in arrays:  # only the free ones, as scratch() would hand out
                if (sys.getrefcount(raw), sys.getrefcount(a)) == conv_buffers._FREE:
                    if a.dtype.kind == "f":
                        a.fill(1e3)
        assert_match(*run_both(x, w, b, padding=(2, 1)))


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
    np.testing.assert_allclose(y.numpy(), TF.conv2d(torch.tensor(x), torch.tensor(w)).numpy(),
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    assert (y.numpy() < 0).any()


# ---------------------------------------------------------------------------------- helpers


def test_pair_accepts_ints_pairs_and_numpy_ints():
    """pair: an int is doubled, a pair kept, NumPy ints accepted, results plain ints."""
    assert conv_ops.pair(3, "s") == (3, 3)
    assert conv_ops.pair((2, 5), "s") == (2, 5)
    assert conv_ops.pair([np.int64(1), np.int32(4)], "s") == (1, 4)
    assert conv_ops.pair(np.int64(2), "s") == (2, 2)
    assert all(type(v) is int for v in conv_ops.pair((np.int64(1), np.int64(2)), "s"))
    assert conv_ops.pair(0, "p", minimum=0) == (0, 0)
    assert conv_ops.pair(1, "s") == (1, 1)  # the default minimum is 1: 1 passes


@pytest.mark.parametrize(
    ("value", "minimum", "match"),
    [
        ((1, 2, 3), 1, r"stride must be an int or a pair of ints, got \(1, 2, 3\)"),
        ((1,), 1, r"stride must be an int or a pair of ints, got \(1,\)"),
        ((1.0, 2), 1, r"stride must be an int or a pair of ints, got \(1.0, 2\)"),
        (0, 1, r"stride must be >= 1, got 0"),
        ((2, 0), 1, r"stride must be >= 1, got \(2, 0\)"),
        (-1, 0, r"stride must be >= 0, got -1"),
    ],
)
def test_pair_rejects(value, minimum, match):
    with pytest.raises(ValueError, match="conv2d: " + match):
        conv_ops.pair(value, "conv2d: stride", minimum=minimum)


def test_output_size_formula():
    """floor((size + 2 p - d (k - 1) - 1) / s) + 1, as torch documents."""
    for size, k, s, p, d in [(7, 3, 1, 0, 1), (10, 3, 2, 1, 2), (9, 4, 3, 2, 1), (5, 5, 1, 0, 1)]:
        want = (size + 2 * p - d * (k - 1) - 1) // s + 1
        assert conv_ops.output_size(size, k, s, p, d) == want
    assert conv_ops.output_size(10, 3, 2, 1, 2) == 4
    assert conv_ops.output_size(9, 4, 3, 2, 1) == 4


def test_offsets_slices():
    """Each kernel offset's rows and columns of the padded input, for stride and dilation."""
    got = list(conv_ops.offsets((2, 2), (2, 3), (3, 1), (2, 3)))
    assert [(p, q) for p, q, _, _ in got] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert got[3][2] == slice(3, 3 + 1 * 2 + 1, 2)
    assert got[3][3] == slice(1, 1 + 2 * 3 + 1, 3)
    assert got[0][2] == slice(0, 3, 2) and got[0][3] == slice(0, 7, 3)


def test_im2col_and_col2im_are_adjoint():
    """<im2col(x), c> == <x, col2im(c)> with col2im at the padded-input positions (reference)."""
    rng = np.random.default_rng(11)
    xp = rng.standard_normal((2, 9, 8, 3))
    kernel, stride, dilation = (2, 3), (2, 1), (2, 2)
    out = tuple(conv_ops.output_size(s, k, st, 0, d)
                for s, k, st, d in zip((9, 8), kernel, stride, dilation))  # fmt: skip
    cols = conv_ops.im2col(xp, kernel, stride, dilation, out)
    assert cols.shape == (2 * 6, out[0] * out[1] * 3)
    assert cols[1 * 3 + 2, (1 * out[1] + 1) * 3 + 2] == xp[0, 1 * 2 + 1 * 2, 1 + 2 * 2, 2]
    c = rng.standard_normal(cols.shape)
    back = conv_ops.col2im(c, xp.shape, kernel, stride, dilation, out)
    np.testing.assert_allclose((cols * c).sum(), (xp * back).sum(), rtol=1e-12)


def test_to_chwn_and_chwn_layouts():
    """to_chwn pads with zeros into (C, Hp, Wp, N); both are free views when x already has the
    (C, H, W, N) layout, and copies (equal values) otherwise."""
    x = np.random.default_rng(12).standard_normal((2, 3, 4, 5))
    view = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    assert np.shares_memory(conv_ops.to_chwn(view, (0, 0)), view)
    assert np.shares_memory(conv_ops.chwn(view), view)
    copy = conv_ops.chwn(x)
    assert not np.shares_memory(copy, x) and copy.flags.c_contiguous
    np.testing.assert_array_equal(copy, x.transpose(1, 2, 3, 0))
    padded = conv_ops.to_chwn(x, (1, 2))
    want = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2))).transpose(1, 2, 3, 0)
    np.testing.assert_array_equal(padded, want)
    unpadded = conv_ops.to_chwn(x, (0, 0))  # NCHW: copied into the layout
    np.testing.assert_array_equal(unpadded, x.transpose(1, 2, 3, 0))
    assert unpadded.flags.c_contiguous


def test_compiled_for_dtypes():
    """The kernels handle float32 and float64, only with kernels on."""
    with kernels.reference(False):
        if not kernels.compiled():
            pytest.skip("numba unavailable")
        assert conv_ops.compiled_for(np.float32) and conv_ops.compiled_for(np.float64)
        assert not conv_ops.compiled_for(np.float16) and not conv_ops.compiled_for(np.int64)
    with kernels.reference(True):
        assert not conv_ops.compiled_for(np.float64)


def test_use_direct_rule(direct):
    """Direct for stride 1, groups 1, at most 64 output channels, rows >= 1024 and a padded G
    at most 1.3x the output; "always"/"never" override where it applies."""
    direct("auto")
    assert conv_ops.use_direct(64, 1, (1, 1), 1024)
    assert not conv_ops.use_direct(65, 1, (1, 1), 1024)
    assert not conv_ops.use_direct(64, 1, (1, 1), 1023)
    assert not conv_ops.use_direct(64, 2, (1, 1), 4096)
    assert not conv_ops.use_direct(64, 1, (2, 1), 4096)
    assert not conv_ops.use_direct(64, 1, (1, 2), 4096)
    assert conv_ops.use_direct(8, 1, (1, 1), 2048, 13, 10)  # size == 1.3 out_size
    assert not conv_ops.use_direct(8, 1, (1, 1), 2048, 14, 10)
    direct("always")
    assert conv_ops.use_direct(500, 1, (1, 1), 1)
    assert not conv_ops.use_direct(8, 2, (1, 1), 2048)
    assert not conv_ops.use_direct(8, 1, (2, 2), 2048)
    direct("never")
    assert not conv_ops.use_direct(8, 1, (1, 1), 2048)


def test_use_direct_weight_grad_rule(direct):
    """dW directly for 3x3, stride 1, groups 1 and rows >= 1024 (or "always")."""
    direct("auto")
    assert conv_ops.use_direct_weight_grad((3, 3), 1, (1, 1), 1024)
    assert not conv_ops.use_direct_weight_grad((3, 3), 1, (1, 1), 1023)
    assert not conv_ops.use_direct_weight_grad((3, 5), 1, (1, 1), 4096)
    assert not conv_ops.use_direct_weight_grad((3, 3), 2, (1, 1), 4096)
    assert not conv_ops.use_direct_weight_grad((3, 3), 1, (1, 2), 4096)
    direct("always")
    assert conv_ops.use_direct_weight_grad([3, 3], 1, (1, 1), 1)
    assert not conv_ops.use_direct_weight_grad((5, 5), 1, (1, 1), 4096)
    direct("never")
    assert not conv_ops.use_direct_weight_grad((3, 3), 1, (1, 1), 4096)


def test_parallel_threshold_constants():
    """The documented work units: 2^20 values before a kernel is split, 16 MACs per unit."""
    assert conv_ops.PARALLEL_MIN == 1 << 20
    assert conv_ops.MACS_PER_UNIT == 16


# ------------------------------------------------------------------------------- validation


def tensors(xshape, wshape, bshape=None):
    b = None if bshape is None else nb.tensor(np.zeros(bshape))
    return nb.tensor(np.zeros(xshape)), nb.tensor(np.zeros(wshape)), b


@pytest.mark.parametrize(
    ("xshape", "wshape", "bshape", "options", "match"),
    [
        ((2, 3, 5), (4, 3, 3, 3), None, {}, r"expected input \(N, C, H, W\), got shape \(2, 3, 5\)"),
        ((1, 3, 5, 5), (4, 3, 3), None, {}, r"expected weight .*got shape \(4, 3, 3\)"),
        ((1, 4, 5, 5), (6, 2, 3, 3), None, {"groups": 3},
         r"groups=3 must divide the input channels 4 and the output channels 6"),
        ((1, 4, 5, 5), (5, 2, 3, 3), None, {"groups": 2},
         r"groups=2 must divide the input channels 4 and the output channels 5"),
        ((1, 4, 5, 5), (4, 4, 3, 3), None, {"groups": 0}, r"groups=0 must divide"),
        ((1, 4, 5, 5), (4, 3, 3, 3), None, {},
         r"input of shape \(1, 4, 5, 5\) has 4 channels, weight of shape \(4, 3, 3, 3\) expects 3"),
        ((1, 4, 5, 5), (4, 1, 3, 3), None, {"groups": 2}, r"has 4 channels.*expects 2"),
        ((1, 1, 5, 5), (1, 1, 2, 3), None, {"padding": "same"},
         r"padding='same' needs an odd effective kernel size"),
        ((1, 1, 5, 5), (1, 1, 3, 2), None, {"padding": "same"}, r"needs an odd effective kernel"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"padding": "same", "stride": 2},
         r"padding must be 'valid', 'same' \(stride 1\) or ints, got 'same'"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"padding": "full"}, r"got 'full'"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"padding": -1}, r"padding must be >= 0"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"stride": 0}, r"stride must be >= 1"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"dilation": 0}, r"dilation must be >= 1"),
        ((1, 1, 4, 5), (1, 1, 3, 3), None, {"dilation": 2},
         r"input of shape \(1, 1, 4, 5\) is smaller than the kernel \(3, 3\) "
         r"\(dilation \(2, 2\), padding \(0, 0\)\)"),
        ((1, 1, 5, 4), (1, 1, 3, 3), None, {"dilation": 2}, r"smaller than the kernel"),
        ((1, 1, 5, 5), (2, 1, 3, 3), (3,), {}, r"bias must have shape \(2,\), got \(3,\)"),
        ((1, 1, 5, 5), (2, 1, 3, 3), (2, 1), {}, r"bias must have shape \(2,\), got \(2, 1\)"),
    ],
)  # fmt: skip
def test_conv2d_validation(xshape, wshape, bshape, options, match):
    """Each mistake raises where it is made, naming conv2d and the shapes or values involved."""
    with pytest.raises(ValueError, match="conv2d: .*" + match):
        conv_ops.conv2d(*tensors(xshape, wshape, bshape), **options)


def test_conv2d_smallest_valid_geometry(backend):
    """The boundary cases that must pass: an output of exactly 1x1, groups equal to the
    channels, and 'same' for a 2x2 kernel dilated by 2 (an even total padding of 2)."""
    x, w, b = data(1, 2, 2, (5, 5), (5, 5), groups=2, seed=13)
    ours, theirs = run_both(x, w, b, padding=0, groups=2)
    assert ours[0].shape == (1, 2, 1, 1)
    assert_match(ours, theirs)
    x, w, b = data(1, 1, 1, (5, 6), (2, 2), seed=14)
    ours, theirs = run_both(x, w, b, padding="same", dilation=2)
    assert ours[0].shape == (1, 1, 5, 6)
    assert_match(ours, theirs)


# ------------------------------------------------------------------------- scratch buffers


@pytest.fixture
def pool(monkeypatch):
    """An empty scratch pool for one test (the real one is restored afterwards)."""
    monkeypatch.setattr(conv_buffers, "_pool", {})
    monkeypatch.setattr(conv_buffers, "_kept", 0)
    return monkeypatch


@pytest.mark.parametrize(("shape", "dtype"), [((3, 5), np.float64), ((7,), np.float32),
                                              ((2, 1, 3), np.uint8), ((0,), np.float32)])  # fmt: skip
def test_aligned_empty(shape, dtype):
    """Every array starts on a 64-byte boundary, has the shape and dtype asked for, and is a view
    of a uint8 block 64 bytes longer than its data."""
    for _ in range(6):  # several blocks: NumPy places most of them off the boundary
        a = conv_buffers.aligned_empty(shape, dtype)
        assert a.size == 0 or a.ctypes.data % 64 == 0  # (an empty view points anywhere)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.base.dtype == np.uint8 and a.base.size == a.nbytes + 64


def test_scratch_reuses_only_free_arrays(pool):
    """An array is handed out again once nothing else refers to it; one in use, or of another
    dtype, is not."""
    a = conv_buffers.scratch((2, 3), np.float32)
    b = conv_buffers.scratch((2, 3), np.float32)
    assert a is not b
    assert conv_buffers.scratch((2, 3), np.float64) is not a
    a_id = id(a)
    del a
    c = conv_buffers.scratch((2, 3), np.float32)
    assert id(c) == a_id and c.shape == (2, 3) and c.dtype == np.float32
    assert c.ctypes.data % 64 == 0
    del c  # free now, but a float64 request of the same shape must not get it
    assert conv_buffers.scratch((2, 3), np.float64).dtype == np.float64


def test_scratch_keeps_at_most_per_key(pool):
    """PER_KEY (16) arrays are kept per shape and dtype; the 17th in use at once is not kept."""
    held = [conv_buffers.scratch((4,), np.float64) for _ in range(conv_buffers.PER_KEY + 1)]
    kept = conv_buffers._pool[((4,), np.dtype(np.float64))]
    assert conv_buffers.PER_KEY == 16 and len(kept) == 16
    assert conv_buffers._kept == 16 * 32
    assert len({id(a) for a in held}) == 17


def test_scratch_budget_drops_the_oldest_shapes(pool):
    """Past BUDGET bytes the least recently added shapes are forgotten and their bytes
    subtracted; reaching the budget exactly drops nothing; an array above it is not kept."""
    pool.setattr(conv_buffers, "BUDGET", 1200)
    conv_buffers.scratch((100,), np.float64)  # 800 bytes
    assert conv_buffers._kept == 800
    conv_buffers.scratch((50,), np.float64)  # 800 + 400 == BUDGET: both kept
    assert conv_buffers._kept == 1200 and len(conv_buffers._pool) == 2
    conv_buffers.scratch((25,), np.float64)  # 200 more: the oldest shape goes
    assert ((100,), np.dtype(np.float64)) not in conv_buffers._pool
    assert conv_buffers._kept == 600
    conv_buffers.scratch((150,), np.float64)  # exactly the budget: kept, everything else goes
    assert conv_buffers._kept == 1200
    assert list(conv_buffers._pool) == [((150,), np.dtype(np.float64))]
    conv_buffers.scratch((151,), np.float64)  # above the budget: never kept
    assert conv_buffers._pool.get(((151,), np.dtype(np.float64))) == []  # its key, no array
    assert conv_buffers._kept == 1200


def test_scratch_like_keeps_the_memory_layout(pool):
    """scratch_like of a (C, H, W, N)-stored NCHW view has that layout too; of an NCHW array,
    NCHW."""
    x = np.zeros((5, 2, 3, 4)).transpose(3, 0, 1, 2)  # (N, C, H, W) view of (C, H, W, N)
    a = conv_buffers.scratch_like(x, (4, 5, 2, 3), np.float32)
    assert a.shape == (4, 5, 2, 3) and a.dtype == np.float32
    assert a.transpose(1, 2, 3, 0).flags.c_contiguous
    b = conv_buffers.scratch_like(np.zeros((2, 3, 4)), (2, 3, 4), np.float64)
    assert b.flags.c_contiguous


def test_clear_forgets_everything(pool):
    conv_buffers.scratch((8,), np.float64)
    conv_buffers.clear()
    assert conv_buffers._pool == {} and conv_buffers._kept == 0
    conv_buffers.scratch((8,), np.float64)
    assert conv_buffers._kept == 64
