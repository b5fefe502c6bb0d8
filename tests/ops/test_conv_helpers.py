"""conv2d's helpers at their boundaries (pair, output_size, offsets, im2col/col2im, the layouts,
the direct-convolution rules) and its validation: each error names conv2d and the values."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_details import assert_match, data, run_both

import nabla as nb
from nabla import kernels
from nabla.ops import conv as conv_ops


@pytest.fixture(params=["compiled", "reference"])
def backend(request):
    """The compiled kernels and the NumPy references (both must agree with torch)."""
    with kernels.reference(request.param == "reference"):
        yield request.param


@pytest.fixture
def direct():
    """Sets conv.DIRECT for one test and restores it."""
    previous = conv_ops.DIRECT
    yield lambda mode: setattr(conv_ops, "DIRECT", mode)
    conv_ops.DIRECT = previous


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
    out = tuple(
        conv_ops.output_size(s, k, st, 0, d)
        for s, k, st, d in zip((9, 8), kernel, stride, dilation)
    )
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
        (
            (2, 3, 5),
            (4, 3, 3, 3),
            None,
            {},
            r"expected input \(N, C, H, W\), got shape \(2, 3, 5\)",
        ),
        ((1, 3, 5, 5), (4, 3, 3), None, {}, r"expected weight .*got shape \(4, 3, 3\)"),
        (
            (1, 4, 5, 5),
            (6, 2, 3, 3),
            None,
            {"groups": 3},
            r"groups=3 must divide the input channels 4 and the output channels 6",
        ),
        (
            (1, 4, 5, 5),
            (5, 2, 3, 3),
            None,
            {"groups": 2},
            r"groups=2 must divide the input channels 4 and the output channels 5",
        ),
        ((1, 4, 5, 5), (4, 4, 3, 3), None, {"groups": 0}, r"groups=0 must divide"),
        (
            (1, 4, 5, 5),
            (4, 3, 3, 3),
            None,
            {},
            r"input of shape \(1, 4, 5, 5\) has 4 channels, "
            r"weight of shape \(4, 3, 3, 3\) expects 3",
        ),
        ((1, 4, 5, 5), (4, 1, 3, 3), None, {"groups": 2}, r"has 4 channels.*expects 2"),
        (
            (1, 1, 5, 5),
            (1, 1, 2, 3),
            None,
            {"padding": "same"},
            r"padding='same' needs an odd effective kernel size$",
        ),
        ((1, 1, 5, 5), (1, 1, 3, 2), None, {"padding": "same"}, r"needs an odd effective kernel"),
        (
            (1, 1, 5, 5),
            (1, 1, 3, 3),
            None,
            {"padding": "same", "stride": 2},
            r"padding must be 'valid', 'same' \(stride 1\) or ints, got 'same'",
        ),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"padding": "full"}, r"got 'full'"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"padding": -1}, r"padding must be >= 0"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"stride": 0}, r"stride must be >= 1"),
        ((1, 1, 5, 5), (1, 1, 3, 3), None, {"dilation": 0}, r"dilation must be >= 1"),
        (
            (1, 1, 4, 5),
            (1, 1, 3, 3),
            None,
            {"dilation": 2},
            r"input of shape \(1, 1, 4, 5\) is smaller than the kernel \(3, 3\) "
            r"\(dilation \(2, 2\), padding \(0, 0\)\)",
        ),
        ((1, 1, 5, 4), (1, 1, 3, 3), None, {"dilation": 2}, r"smaller than the kernel"),
        ((1, 1, 5, 5), (2, 1, 3, 3), (3,), {}, r"bias must have shape \(2,\), got \(3,\)"),
        ((1, 1, 5, 5), (2, 1, 3, 3), (2, 1), {}, r"bias must have shape \(2,\), got \(2, 1\)"),
    ],
)
def test_conv2d_validation(xshape, wshape, bshape, options, match):
    """Each mistake raises where it is made, naming conv2d and the shapes or values involved."""
    with pytest.raises(ValueError, match="^conv2d: .*" + match):  # case-sensitive, anchored
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


@pytest.mark.parametrize(
    ("hw", "kernel", "options", "out"),
    [
        ((1, 5), (3, 3), dict(padding=(1, 0)), (1, 3)),  # H fits only with its own padding
        ((5, 1), (3, 3), dict(padding=(0, 1)), (3, 1)),
        ((3, 5), (3, 3), dict(dilation=(1, 2)), (1, 1)),  # H fits only with its own dilation
        ((5, 3), (3, 3), dict(dilation=(2, 1)), (1, 1)),
        ((3, 3), (3, 3), dict(stride=(1, 5)), (1, 1)),
    ],
)
def test_conv2d_each_axis_checked_with_its_own_geometry(hw, kernel, options, out, backend):
    """The "smaller than the kernel" check takes each axis's own padding and dilation: these
    inputs fit, and give torch's result."""
    x, w, b = data(2, 2, 3, hw, kernel, seed=15)
    ours, theirs = run_both(x, w, b, **options)
    assert ours[0].shape == (2, 3, *out)
    assert_match(ours, theirs)
