"""Convolution and pooling through the op harness, against naive NumPy loops and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from harness import OpCase, check_forward, check_gradcheck, check_torch, distinct, params

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
