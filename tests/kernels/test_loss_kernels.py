"""The cross-entropy kernels against the NumPy reference of nabla.ops.losses: equal to rounding
(the C library's exp and log, and a left-to-right row sum, against NumPy's), NaN where it is NaN,
and only where the kernels apply."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels
from nabla.kernels import runtime
from nabla.ops.losses import CrossEntropy

TOLERANCE = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-13)}


class Context:
    """What Function.apply hands forward and backward: a plain attribute holder."""


def forward_backward(logits, target, reduction, smoothing, compiled, g=1.5):
    with kernels.reference(not compiled):
        ctx = Context()
        loss = CrossEntropy.forward(ctx, logits, target, reduction, smoothing)
        grad = CrossEntropy.backward(ctx, np.asarray(g, logits.dtype))[0]
    assert ctx.kernel == compiled
    return loss, ctx.log_p, grad


def logits_with_extremes(rows, classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((rows, classes)) * 6).astype(dtype)
    if rows >= 4 and classes >= 2:
        z[1, 0] = np.nan  # a NaN logit: the whole row's loss and gradient are NaN
        z[2, :] = 80  # equal large logits: uniform probabilities, nothing overflows
        z[3, -1] = -np.inf  # probability exactly 0 for one class
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 10, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_kernels_equal_the_reference_to_rounding(dtype, classes, reduction, smoothing):
    z = logits_with_extremes(37, classes, dtype)
    target = np.random.default_rng(1).integers(0, classes, 37)
    target[3] = classes - 1  # the -inf logit's class: an infinite loss for that row
    got = forward_backward(z, target, reduction, smoothing, compiled=True)
    want = forward_backward(z, target, reduction, smoothing, compiled=False)
    finite = np.ones(37, bool)
    if classes >= 2:
        finite[[1, 3]] = False
    for a, b in zip(got[1:], want[1:]):  # log p and the gradient, row by row
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
        np.testing.assert_allclose(a[finite], b[finite], **TOLERANCE[dtype])
    assert got[0].dtype == want[0].dtype == dtype
    assert np.isnan(got[0]) == np.isnan(want[0])  # the NaN row makes the mean NaN
    if classes >= 2:  # the finite rows' loss alone, through the per-row values
        rows, classes_of = z[finite], target[finite]
        got_loss = forward_backward(rows, classes_of, reduction, smoothing, compiled=True)[0]
        want_loss = forward_backward(rows, classes_of, reduction, smoothing, compiled=False)[0]
        np.testing.assert_allclose(got_loss, want_loss, **TOLERANCE[dtype])


@pytest.mark.parametrize("target_dtype", [np.int32, np.int64, np.uint8])
def test_any_integer_target_dtype(target_dtype):
    z = logits_with_extremes(16, 7, np.float32, seed=3)[4:]
    target = np.arange(12).astype(target_dtype) % 7
    got = forward_backward(z, target, "mean", 0.0, compiled=True)
    want = forward_backward(z, target, "mean", 0.0, compiled=False)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.float32])


def test_the_gradient_is_p_minus_onehot_times_the_scale():
    """The kernel's backward on its own against the formula, with a smoothed target."""
    rng = np.random.default_rng(4)
    log_p = np.log(rng.dirichlet(np.ones(5), size=6))
    target = rng.integers(0, 5, 6)
    eps, scale = 0.2, 0.75
    grad = np.empty_like(log_p)
    kernels.kernel("losses.cross_entropy_backward", grad.size)(
        log_p, target, 1 - eps, eps / 5, scale, grad
    )
    q = (1 - eps) * np.eye(5)[target] + eps / 5
    np.testing.assert_allclose(grad, (np.exp(log_p) - q) * scale, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "case",
    ["none", "non-contiguous", "float16", "3-D", "probabilities", "reference switch"],
)
def test_the_reference_runs_where_the_kernels_do_not_apply(case):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 4)).astype(np.float32)
    target, reduction = rng.integers(0, 4, 6), "mean"
    if case == "none":
        reduction = "none"
    elif case == "non-contiguous":
        z = np.asfortranarray(z)
    elif case == "float16":
        z = z.astype(np.float16)
    elif case == "3-D":
        z, target = z.reshape(6, 4, 1), target.reshape(6, 1)
    elif case == "probabilities":
        target = rng.dirichlet(np.ones(4), size=6).astype(np.float32)
    ctx = Context()
    with kernels.reference(case == "reference switch"):
        CrossEntropy.forward(ctx, z, target, reduction, 0.0)
    assert ctx.kernel is False


def test_eager_cross_entropy_uses_the_kernels_and_matches_the_reference():
    rng = np.random.default_rng(6)
    z = rng.standard_normal((32, 10)).astype(np.float32)
    target = rng.integers(0, 10, 32)
    results = []
    for compiled in (True, False):
        with kernels.reference(not compiled):
            x = nb.tensor(z, requires_grad=True)
            loss = nb.nn.functional.cross_entropy(x, target, label_smoothing=0.05)
            loss.backward()
            results.append((loss.item(), x.grad))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-9)


@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_the_parallel_variant_equals_the_serial_one():
    z = logits_with_extremes(runtime.PARALLEL_MIN // 10 + 3, 10, np.float32, seed=7)
    target = np.random.default_rng(8).integers(0, 10, len(z))
    runs = []
    before = kernels.get_num_threads()
    for threads in (1, 2):
        try:
            kernels.set_num_threads(threads)
            runs.append(forward_backward(z, target, "sum", 0.1, compiled=True))
        finally:
            kernels.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
