"""Convolution and pooling through the op harness, against naive NumPy loops and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from harness import OpCase, check_forward, check_gradcheck, check_torch, distinct, params

import nabla as nb
import nabla.nn.functional as F


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def np_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """The definition, one output element at a time."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, _, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    per_group = o // groups
    for k in range(o):
        c0 = (k // per_group) * cg
        for i in range(ho):
            for j in range(wo):
                patch = xp[
                    :,
                    c0 : c0 + cg,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ]
                out[:, k, i, j] = (patch * w[k]).sum(axis=(1, 2, 3))
    return out if b is None else out + b[:, None, None]


def np_pool(x, kernel, stride=None, padding=0, reduce=np.max, pad_value=-np.inf, divisor=None):
    (kh, kw) = _pair(kernel)
    (sh, sw) = _pair(kernel if stride is None else stride)
    (ph, pw) = _pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((*x.shape[:2], ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, :, i, j] = reduce(window, axis=(2, 3))
    return out


def np_avg_pool_exclude_pad(x, kernel, stride, padding):
    total = np_pool(x, kernel, stride, padding, np.sum, 0.0)
    count = np_pool(np.ones_like(x), kernel, stride, padding, np.sum, 0.0)
    return total / count


def np_adaptive_avg(x, out):
    h, w = x.shape[2:]
    result = np.zeros((*x.shape[:2], *out))
    for i in range(out[0]):
        for j in range(out[1]):
            rows = slice(i * h // out[0], -(-(i + 1) * h // out[0]))
            cols = slice(j * w // out[1], -(-(j + 1) * w // out[1]))
            result[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return result


def conv_case(name, shapes, **options):
    bias = len(shapes[0]) == 3
    return OpCase(
        name,
        lambda *t: F.conv2d(*t, **options) if bias else F.conv2d(t[0], t[1], None, **options),
        lambda *a: np_conv2d(*a, **options) if bias else np_conv2d(a[0], a[1], None, **options),
        lambda *t: TF.conv2d(*t, **options) if bias else TF.conv2d(t[0], t[1], None, **options),
        shapes,
    )


CASES = [
    conv_case("conv2d", [((2, 3, 6, 5), (4, 3, 3, 3), (4,)), ((1, 1, 5, 5), (2, 1, 5, 5), (2,))]),
    conv_case("conv2d_no_bias", [((2, 2, 5, 5), (3, 2, 2, 3))]),
    conv_case(
        "conv2d_stride_padding", [((2, 3, 7, 6), (4, 3, 3, 2), (4,))], stride=(2, 1), padding=(1, 2)
    ),
    conv_case("conv2d_dilation", [((1, 2, 8, 7), (3, 2, 3, 3), (3,))], dilation=(2, 1), padding=1),
    conv_case("conv2d_groups", [((2, 4, 5, 5), (6, 2, 3, 3), (6,))], groups=2, padding=1),
    conv_case("conv2d_depthwise", [((1, 3, 5, 6), (3, 1, 3, 3), (3,))], groups=3, stride=2),
    conv_case(
        "conv2d_stride_dilation_padding",
        [((2, 2, 9, 8), (3, 2, 3, 2), (3,))],
        stride=(2, 3),
        padding=(2, 1),
        dilation=(2, 2),
    ),
    conv_case("conv2d_groups_stride", [((2, 4, 7, 7), (4, 2, 2, 2), (4,))], groups=2, stride=2),
    conv_case("conv2d_1x1", [((3, 4, 3, 2), (5, 4, 1, 1), (5,))]),
    conv_case("conv2d_kernel_covers_input", [((2, 2, 3, 4), (3, 2, 3, 4), (3,))]),
    OpCase(
        "max_pool2d",
        lambda x: F.max_pool2d(x, 2),
        lambda x: np_pool(x, 2),
        lambda x: TF.max_pool2d(x, 2),
        [((2, 3, 4, 6),), ((1, 2, 5, 5),)],
        draw=distinct,
    ),
    OpCase(
        "max_pool2d_overlap_padding",
        lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
        lambda x: np_pool(x, 3, 2, 1),
        lambda x: TF.max_pool2d(x, 3, stride=2, padding=1),
        [((2, 2, 7, 6),)],
        draw=distinct,
    ),
    OpCase(
        "max_pool2d_odd_sizes",  # the last row and column belong to no window
        lambda x: F.max_pool2d(x, 2),
        lambda x: np_pool(x, 2),
        lambda x: TF.max_pool2d(x, 2),
        [((2, 2, 5, 7),)],
        draw=distinct,
    ),
    OpCase(
        "max_pool2d_gaps",  # stride > kernel: rows and columns between windows
        lambda x: F.max_pool2d(x, (2, 1), stride=(3, 2)),
        lambda x: np_pool(x, (2, 1), (3, 2)),
        lambda x: TF.max_pool2d(x, (2, 1), stride=(3, 2)),
        [((1, 2, 8, 7),), ((1, 2, 6, 8),)],  # the second: output size * stride == input size
        draw=distinct,
    ),
    OpCase(
        "max_pool2d_disjoint_padding",  # non-overlapping windows over a padded input
        lambda x: F.max_pool2d(x, 2, padding=1),
        lambda x: np_pool(x, 2, 2, 1),
        lambda x: TF.max_pool2d(x, 2, padding=1),
        [((2, 2, 5, 6),)],
        draw=distinct,
    ),
    OpCase(
        "max_pool2d_rectangular_overlap",
        lambda x: F.max_pool2d(x, (3, 2), stride=(1, 2), padding=(1, 0)),
        lambda x: np_pool(x, (3, 2), (1, 2), (1, 0)),
        lambda x: TF.max_pool2d(x, (3, 2), stride=(1, 2), padding=(1, 0)),
        [((2, 3, 6, 6),)],
        draw=distinct,
    ),
    OpCase(
        "avg_pool2d",
        lambda x: F.avg_pool2d(x, (2, 3)),
        lambda x: np_pool(x, (2, 3), reduce=np.mean, pad_value=0.0),
        lambda x: TF.avg_pool2d(x, (2, 3)),
        [((2, 3, 4, 6),)],
    ),
    OpCase(
        "avg_pool2d_padding",
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1),
        lambda x: np_pool(x, 3, 2, 1, np.mean, 0.0),
        lambda x: TF.avg_pool2d(x, 3, stride=2, padding=1),
        [((1, 2, 6, 7),)],
    ),
    OpCase(
        "avg_pool2d_exclude_padding",
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
        lambda x: np_avg_pool_exclude_pad(x, 3, 2, 1),
        lambda x: TF.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
        [((1, 2, 6, 7),)],
    ),
    OpCase(
        "adaptive_avg_pool2d",
        lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
        lambda x: np_adaptive_avg(x, (3, 2)),
        lambda x: TF.adaptive_avg_pool2d(x, (3, 2)),
        [((2, 2, 7, 5),), ((1, 3, 6, 4),)],
    ),
    OpCase(
        "global_avg_pool2d",
        lambda x: F.adaptive_avg_pool2d(x, 1),
        lambda x: x.mean(axis=(2, 3), keepdims=True),
        lambda x: TF.adaptive_avg_pool2d(x, 1),
        [((2, 3, 4, 5),)],
    ),
]

PARAMS = params(CASES)


@pytest.mark.parametrize(("case", "shapes"), PARAMS)
def test_forward_matches_numpy(case, shapes):
    check_forward(case, shapes)


@pytest.mark.parametrize(("case", "shapes"), PARAMS)
def test_backward_passes_gradcheck(case, shapes):
    check_gradcheck(case, shapes)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("case", "shapes"), PARAMS)
def test_matches_torch(case, shapes, dtype):
    check_torch(case, shapes, dtype)


# --- behaviour the table cannot express -----------------------------------------------------------


def _chwn(x: np.ndarray) -> np.ndarray:
    """The same (N, C, H, W) values, stored as (C, H, W, N): the layout conv2d outputs."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def _torch_grads(fn_ours, fn_theirs, *arrays, seed=3):
    """Output and input gradients of nabla and torch for the same inputs and random cotangent."""
    ours = [nb.tensor(a, dtype=a.dtype, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, reference = fn_ours(*ours), fn_theirs(*theirs)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape).astype(arrays[0].dtype)
    out.backward(cotangent)
    reference.backward(torch.from_numpy(cotangent))
    return (out.data, *[t.grad for t in ours]), (
        reference.detach().numpy(),
        *[t.grad.numpy() for t in theirs],
    )


@pytest.mark.parametrize(
    "options",
    [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1}, {"kernel_size": (2, 3)}],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_torch(options, dtype, layout):
    # Few distinct values, many ties: after a ReLU whole windows are 0. PyTorch routes a window's
    # gradient to its first maximum in row-major order; so must we, exactly.
    x = np.random.default_rng(0).integers(0, 3, size=(2, 3, 7, 8)).astype(dtype)
    x[:, :, :2] = 0  # windows of equal values
    if layout == "chwn":  # as a convolution hands it over
        x = _chwn(x)
    ours, theirs = _torch_grads(
        lambda t: F.max_pool2d(t, **options), lambda t: TF.max_pool2d(t, **options), x
    )
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_max_pool_tie_rule_by_hand():
    # A 2x2 window of equal values: the top-left one (first in row-major order) takes it all.
    x = nb.tensor(np.ones((1, 1, 2, 4)), requires_grad=True)
    x.data[0, 0, 1, 3] = 2.0  # the second window's maximum is unique, bottom right
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 0, 0, 0], [0, 0, 0, 1]])


def test_conv_output_is_an_nchw_view_of_a_channel_major_batch_inner_array():
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 5)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = F.conv2d(nb.tensor(x), nb.tensor(w), padding=1)
    assert y.shape == (4, 2, 6, 5)
    assert y.data.transpose(1, 2, 3, 0).flags.c_contiguous
    np.testing.assert_allclose(y.data, np_conv2d(x, w, padding=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["nchw", "chwn", "strided"])
def test_conv_and_pools_give_the_same_results_for_any_input_layout(layout):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 7, 6))
    if layout == "chwn":
        x = _chwn(x)
    elif layout == "strided":  # a non-contiguous slice of a larger array
        x = np.repeat(x, 2, axis=3)[..., ::2]
    w, b = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    for ours, theirs in [
        (
            lambda t, w, b: F.conv2d(t, w, b, padding=1, stride=(1, 2)),
            lambda t, w, b: TF.conv2d(t, w, b, padding=1, stride=(1, 2)),
        ),
        (
            lambda t, w, b: F.max_pool2d(t, 2) * w.sum() + b.sum(),
            lambda t, w, b: TF.max_pool2d(t, 2) * w.sum() + b.sum(),
        ),
        (
            lambda t, w, b: F.avg_pool2d(t, 3, stride=2, padding=1) * w.sum() + b.sum(),
            lambda t, w, b: TF.avg_pool2d(t, 3, stride=2, padding=1) * w.sum() + b.sum(),
        ),
    ]:
        got, expected = _torch_grads(ours, theirs, x, w, b)
        for a, e in zip(got, expected):
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_a_lenet_block_matches_torch():
    # conv - relu - pool - conv - relu - pool - flatten, so that each op receives its input and
    # its gradient in the layout the previous op produced.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1, 12, 12))
    w1, b1 = rng.standard_normal((3, 1, 5, 5)), rng.standard_normal(3)
    w2, b2 = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)

    def block(conv, relu, pool):
        def run(x, w1, b1, w2, b2):
            h = pool(relu(conv(x, w1, b1, padding=2)), 2)
            return pool(relu(conv(h, w2, b2)), 2).reshape(x.shape[0], -1)

        return run

    got, expected = _torch_grads(
        block(F.conv2d, F.relu, F.max_pool2d),
        block(TF.conv2d, TF.relu, TF.max_pool2d),
        x,
        w1,
        b1,
        w2,
        b2,
    )
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("frozen", ["input", "weight"])
def test_conv_gradient_of_one_input_only(frozen):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    xa = nb.tensor(x, dtype="float64", requires_grad=frozen != "input")
    wa = nb.tensor(w, dtype="float64", requires_grad=frozen != "weight")
    xt = torch.tensor(x, requires_grad=frozen != "input")
    wt = torch.tensor(w, requires_grad=frozen != "weight")
    F.conv2d(xa, wa, stride=2, padding=1).sum().backward()
    TF.conv2d(xt, wt, stride=2, padding=1).sum().backward()
    for ours, theirs in [(xa, xt), (wa, wt)]:
        if theirs.grad is None:
            assert ours.grad is None
        else:
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10)


def test_reused_buffers_never_overwrite_live_results():
    # Scratch arrays are reused between calls: an output, a saved im2col matrix or a gradient
    # that something still holds must survive the next call with the same shapes.
    rng = np.random.default_rng(0)
    w = nb.tensor(rng.standard_normal((3, 2, 3, 3)), dtype="float64", requires_grad=True)
    x1, x2 = (
        nb.tensor(rng.standard_normal((2, 2, 6, 6)), dtype="float64", requires_grad=True)
        for _ in "12"
    )
    y1 = F.max_pool2d(F.conv2d(x1, w, padding=1), 2)
    y1_before = y1.data.copy()
    y2 = F.max_pool2d(F.conv2d(x2, w, padding=1), 2)  # same shapes, while y1's graph lives
    np.testing.assert_array_equal(y1.data, y1_before)
    y2.sum().backward()
    x2_grad, w_grad_2 = x2.grad.copy(), w.grad.copy()
    w.grad = None
    y1.sum().backward()  # y1's saved windows and masks must still be x1's
    y3 = F.max_pool2d(F.conv2d(x2, w, padding=1), 2)  # reuses freed arrays ...
    y3.sum().backward()
    np.testing.assert_array_equal(x2.grad, 2 * x2_grad)  # ... and gets the same results
    xt1 = torch.tensor(x1.data, requires_grad=True)
    wt = torch.tensor(w.data, requires_grad=True)
    TF.max_pool2d(TF.conv2d(xt1, wt, padding=1), 2).sum().backward()
    np.testing.assert_allclose(x1.grad, xt1.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(w.grad - w_grad_2, wt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(y1.data, y1_before)


@pytest.mark.parametrize("shape", [(7,), (3, 5, 2), (16, 34, 34, 64)])
def test_scratch_arrays_are_aligned_and_not_handed_out_while_a_view_lives(shape):
    from nabla.ops.conv_buffers import ALIGN, scratch

    a = scratch(shape, np.float32)
    assert a.ctypes.data % ALIGN == 0 and a.flags.c_contiguous
    view, address = a.transpose()[::2], a.ctypes.data
    del a  # only the view refers to the memory now (through the raw block under it)
    b = scratch(shape, np.float32)
    assert b.ctypes.data != address and b.ctypes.data % ALIGN == 0
    kept = (address, b.ctypes.data)
    del view, b
    assert scratch(shape, np.float32).ctypes.data in kept  # free again: reused


def test_no_grad_forward_records_nothing_and_matches():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with nb.no_grad():
        y = F.max_pool2d(F.conv2d(nb.tensor(x), nb.tensor(np.ones((2, 3, 3, 3), np.float32))), 2)
    assert y.grad_fn is None
    expected = TF.max_pool2d(TF.conv2d(torch.tensor(x), torch.ones(2, 3, 3, 3)), 2)
    np.testing.assert_allclose(y.data, expected.numpy(), rtol=1e-5)
