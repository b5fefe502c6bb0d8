"""Which kernels conv2d runs, and in which dtype.

Each product of a convolution has several implementations (nabla/ops/conv.py): the direct
kernel, the im2col kernel + GEMM, the weight-gradient kernel, col2im, the NumPy reference;
test_conv_details.py holds each one to torch. These tests pin the choice, where the speed comes
from: the rules of ``use_direct`` and ``use_direct_weight_grad`` applied to the sizes their
docstrings name, the compiled kernels whenever they are on and none on the references, and
float32 gradients computed in float32 (a float64 temporary doubles memory and time).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_details import assert_match, data, run_both

import nabla as nb
from nabla import kernels
from nabla.ops import conv as conv_ops


@pytest.fixture
def launched(monkeypatch):
    """The names of the convolution kernels asked for, in order (they still run)."""
    names = []
    real = kernels.kernel

    def spy(name, *args):
        if name.startswith("conv."):
            names.append(name)
        return real(name, *args)

    monkeypatch.setattr(kernels, "kernel", spy)
    return names


@pytest.fixture
def compiled():
    with kernels.reference(False):
        if not kernels.compiled():
            pytest.skip("numba unavailable")
        yield


@pytest.fixture
def direct():
    previous = conv_ops.DIRECT
    yield lambda mode: setattr(conv_ops, "DIRECT", mode)
    conv_ops.DIRECT = previous


# name: ((N, C, O, (H, W), kernel), bias, options, the kernels run by forward and backward)
CASES = {
    "short rows: im2col, bias pass, col2im": (
        (2, 3, 4, (7, 6), (3, 3)),
        True,
        dict(padding=1),
        ["conv.im2col", "conv.bias_relu", "conv.col2im"],
    ),
    "no bias, no relu: no bias pass": (
        (2, 3, 4, (7, 6), (3, 3)),
        False,
        dict(padding=1),
        ["conv.im2col", "conv.col2im"],
    ),
    "rows of Wo*N >= 1024: direct forward, dW and dx": (
        (33, 2, 3, (5, 32), (3, 3)),
        False,
        dict(padding=1),
        ["conv.direct", "conv.weight_grad", "conv.direct"],
    ),
    "'valid': the padded G is 1.37x x, so dx by col2im": (
        (35, 2, 3, (9, 32), (3, 3)),
        True,
        {},
        ["conv.direct", "conv.weight_grad", "conv.col2im"],
    ),
    "1x1: G unpadded (border 0), dx direct; dW from the kept padded input": (
        (33, 2, 3, (4, 32), (1, 1)),
        True,
        {},
        ["conv.direct", "conv.im2col", "conv.direct"],
    ),
    "65 output channels: im2col + GEMM forward, direct dW and dx": (
        (33, 2, 65, (3, 32), (3, 3)),
        True,
        dict(padding=1),
        ["conv.im2col", "conv.bias_relu", "conv.weight_grad", "conv.direct"],
    ),
    "stride 2: im2col and col2im whatever the rows": (
        (64, 2, 3, (6, 64), (3, 3)),
        False,
        dict(stride=2, padding=1),
        ["conv.im2col", "conv.col2im"],
    ),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_auto_rule_picks_the_kernels(case, dtype, compiled, launched):
    (n, c, o, hw, k), bias, options, want = CASES[case]
    x, w, b = data(n, c, o, hw, k, bias=bias, seed=20, dtype=np.dtype(dtype))
    ours, theirs = run_both(x, w, b, needs=(True, True, bias), **options)
    assert launched == want
    assert_match(ours, theirs, tol=1e-10 if dtype == "float64" else 2e-4)


@pytest.mark.parametrize(
    ("needs", "want"),
    [
        ((True, False, False), ["conv.direct", "conv.direct"]),
        ((False, True, False), ["conv.direct", "conv.weight_grad"]),
        ((False, False, True), ["conv.direct"]),
    ],
)
def test_only_the_gradients_asked_for_run_kernels(needs, want, compiled, launched):
    x, w, b = data(33, 2, 3, (5, 32), (3, 3), seed=21)
    assert_match(*run_both(x, w, b, needs=needs, padding=1))
    assert launched == want


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_references_run_no_compiled_kernel(mode, direct, launched):
    """NABLA_KERNELS=reference (or kernels.reference()) means NumPy only, whatever DIRECT says."""
    direct(mode)
    with kernels.reference(True):
        for case in CASES.values():
            (n, c, o, hw, k), bias, options, _ = case
            x, w, b = data(n, c, o, hw, k, bias=bias, seed=22)
            for relu in (False, True):
                assert_match(*run_both(x, w, b, relu=relu, **options))
    assert launched == []


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("case", list(CASES)[:5])
def test_float32_gradients_are_computed_in_float32(case, backend):
    """Conv2d.backward hands back float32 gradients for float32 tensors on every path: no
    float64 temporaries (the engine would round them back, after paying for them)."""
    (n, c, o, hw, k), _, options, _ = CASES[case]
    x, w, b = data(n, c, o, hw, k, seed=23, dtype=np.float32)
    with kernels.reference(backend == "reference"):
        xt, wt, bt = (nb.tensor(a, dtype="float32", requires_grad=True) for a in (x, w, b))
        y = conv_ops.conv2d(xt, wt, bt, **options)
        g = np.random.default_rng(24).standard_normal(y.shape).astype(np.float32)
        node = y.grad_fn
        grads = type(node).backward(node, g)
    assert [a.dtype for a in grads[:3]] == [np.float32] * 3


@pytest.mark.parametrize("mode", ["always", "never"])
def test_a_node_keeps_and_returns_only_what_backward_needs(mode, compiled, direct):
    """With only x needing a gradient the node keeps neither the windows (9x the input) nor the
    padded input, and backward returns no dW or db; with W too, it keeps one of them."""
    direct(mode)
    x, w, b = data(2, 3, 4, (6, 7), (3, 3), seed=25)
    for need_w in (False, True):
        xt = nb.tensor(x, dtype="float64", requires_grad=True)
        wt, bt = nb.tensor(w, dtype="float64", requires_grad=need_w), nb.tensor(b, dtype="float64")
        node = conv_ops.conv2d(xt, wt, bt, padding=1).grad_fn
        kept = [a is not None for a in (node.cols, node.xp)]
        grads = type(node).backward(node, np.ones((2, 4, 6, 7)))
        assert [a is not None for a in grads[:3]] == [True, need_w, False]
        assert kept == ([False, False] if not need_w else [mode == "never", mode == "always"])
