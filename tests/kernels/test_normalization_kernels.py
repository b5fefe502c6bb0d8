"""Batch-norm kernels (kernels/normalization.py) against the NumPy reference (ops/normalization.py):
statistics, the fused forward (with residual and ReLU) and backward, and gradchecks on the kernel
path. The kernels sum in float64, the reference in the input's dtype: they agree to rounding."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels
from nabla.ops import normalization as norm

TOLERANCE = {"float32": 2e-5, "float64": 1e-12}


@pytest.fixture(autouse=True)
def compiled_kernels():
    """These tests are about the kernels: they run them also under NABLA_KERNELS=reference."""
    with kernels.reference(False):
        yield


def chwn(a: np.ndarray) -> np.ndarray:
    """a (N, C, H, W) as a view of a (C, H, W, N) array: a convolution output's layout."""
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def normalized(x, residual, relu, seed=1, affine=True):
    """Output, gradients (x, weight, bias, residual) and running statistics of one training step."""
    c, dtype = x.shape[1], x.dtype
    rng = np.random.default_rng(seed)
    xt = nb.from_numpy(x)
    xt.requires_grad = True
    rt = None
    if residual is not None:
        rt = nb.from_numpy(residual)
        rt.requires_grad = True
    w = nb.tensor(rng.standard_normal(c) if affine else np.ones(c), requires_grad=True, dtype=dtype)
    b = nb.tensor(rng.standard_normal(c), requires_grad=True, dtype=dtype)
    running = [nb.tensor(np.zeros(c), dtype=dtype), nb.tensor(np.ones(c), dtype=dtype)]
    y = norm.batch_norm(xt, *running, w, b, True, 0.1, 1e-5, residual=rt, relu=relu)
    g = rng.standard_normal(y.shape).astype(dtype)
    (y * nb.tensor(g, dtype=dtype)).sum().backward()
    results = [y.numpy(), xt.grad, w.grad, b.grad, running[0].numpy(), running[1].numpy()]
    return results + ([] if rt is None else [rt.grad])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(8, 3, 5, 7), (1, 2, 9, 9), (64, 4, 4, 4)])
@pytest.mark.parametrize("residual,relu", [(False, False), (False, True), (True, True)])
def test_batch_norm_kernels_equal_reference(shape, dtype, residual, relu):
    rng = np.random.default_rng(0)
    x = chwn((rng.standard_normal(shape) * 3 + 1).astype(dtype))
    r = chwn(rng.standard_normal(shape).astype(dtype)) if residual else None
    compiled = normalized(x, r, relu)
    with kernels.reference():
        reference = normalized(x, r, relu)
    for got, want in zip(compiled, reference, strict=True):
        scale = max(np.abs(want).max(), 1.0)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("residual,relu", [(False, False), (True, True)])
def test_fused_batch_norm_equals_the_separate_operations(residual, relu):
    rng = np.random.default_rng(4)
    x = chwn(rng.standard_normal((4, 3, 5, 5)).astype(np.float32))
    r = chwn(rng.standard_normal((4, 3, 5, 5)).astype(np.float32))
    for compiled in (True, False):
        with kernels.reference(not compiled):
            bn = nb.nn.BatchNorm2d(3)
            fused = bn.forward_relu(nb.from_numpy(x), nb.from_numpy(r) if residual else None)
            bn = nb.nn.BatchNorm2d(3)
            separate = bn(nb.from_numpy(x))
            separate = (separate + nb.from_numpy(r) if residual else separate).relu()
            np.testing.assert_allclose(fused.numpy(), separate.numpy(), rtol=0, atol=1e-6)


def test_statistics_kernel_against_float64_numpy():
    x = chwn(np.random.default_rng(5).standard_normal((16, 4, 8, 8)).astype(np.float32) + 100)
    mean, var, count, _ = norm._local_statistics(x)
    x64 = x.astype(np.float64)
    assert count == 16 * 8 * 8
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("residual,relu", [(False, False), (False, True), (True, True)])
def test_batch_norm_gradcheck_on_kernel_path(residual, relu, monkeypatch):
    rng = np.random.default_rng(6)
    # (C, H, W, N) leaves, seen as (N, C, H, W) views: gradcheck's float64 copies keep that layout
    x = nb.tensor(rng.standard_normal((2, 4, 5, 3)), requires_grad=True, dtype="float64")
    r = nb.tensor(rng.standard_normal((2, 4, 5, 3)), requires_grad=True, dtype="float64")
    w = nb.tensor(rng.standard_normal(2), requires_grad=True, dtype="float64")
    b = nb.tensor(rng.standard_normal(2), requires_grad=True, dtype="float64")
    calls = []
    original = norm._backward_kernels
    monkeypatch.setattr(norm, "_backward_kernels", lambda *a: calls.append(1) or original(*a))

    def fn(x, w, b, r):
        x, r = x.transpose(3, 0, 1, 2), r.transpose(3, 0, 1, 2)
        return norm.batch_norm(
            x, None, None, w, b, True, residual=r if residual else None, relu=relu
        )

    nb.gradcheck(fn, [x, w, b, r])
    assert calls  # the kernels ran


@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_batch_norm_same_with_one_or_two_threads(monkeypatch):
    monkeypatch.setattr("nabla.ops.conv.PARALLEL_MIN", 1)  # the parallel copies at 2 threads
    rng = np.random.default_rng(7)
    x = chwn(rng.standard_normal((32, 8, 16, 16)).astype(np.float32))
    r = chwn(rng.standard_normal((32, 8, 16, 16)).astype(np.float32))
    threads = kernels.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            kernels.set_num_threads(n)
            results.append(normalized(x, r, True))
    finally:
        kernels.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("residual,relu", [(False, False), (True, True)])
@pytest.mark.parametrize("weight,bias", [(True, True), (False, True), (False, False)])
def test_float32_step_is_the_documented_formula_bit_for_bit(weight, bias, residual, relu):
    """The kernels' promise (kernels/normalization.py): statistics and the two backward sums in
    float64, everything else in float32 in the reference's order. The data make every float64
    sum exact (float32 values k/8 around 2^20, 64 per channel, and gradients j/4), so the float32
    result of each step is one number, computed here with NumPy; float32 sums (the reference's)
    or a float64 intermediate (a weight or a mean left in float64) would round differently."""
    rng = np.random.default_rng(9)
    f32, shape, c, eps = np.float32, (4, 2, 4, 4), 2, 1e-5
    x = (2.0**20 + rng.integers(-64, 65, shape) / 8).astype(f32)
    r = (rng.integers(-16, 17, shape) / 8).astype(f32) if residual else None
    g = (rng.integers(-8, 9, shape) / 4).astype(f32)
    w = rng.integers(1, 9, c).astype(f32) / 4 if weight else None
    b = (rng.integers(-8, 9, c) / 8).astype(f32) if bias else None

    # the formula, in NumPy
    col = (1, c, 1, 1)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=(0, 2, 3))  # exact: every partial sum fits in 53 bits
    mean, var = mu.astype(f32), ((x64 - mu.reshape(col)) ** 2).mean(axis=(0, 2, 3)).astype(f32)
    s = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(col)) * s.reshape(col)
    wf = np.ones(c, f32) if w is None else w
    bf = np.zeros(c, f32) if b is None else b
    y = xhat * wf.reshape(col) + bf.reshape(col)
    y = y if r is None else y + r
    y = np.maximum(y, f32(0)) if relu else y
    gm = np.where(y > 0, g, f32(0)) if relu else g
    sums = np.stack(
        [
            gm.astype(np.float64).sum(axis=(0, 2, 3)),
            (gm * xhat).astype(np.float64).sum(axis=(0, 2, 3)),
        ]
    )
    n = x.size // c
    md, mdx = (sums * wf).astype(f32) / n
    dx = s.reshape(col) * ((gm * wf.reshape(col) - md.reshape(col)) - xhat * mdx.reshape(col))
    rm, rv = np.zeros(c, f32), np.ones(c, f32)
    rm *= 1.0 - 0.1
    rm += 0.1 * mean
    rv *= 1.0 - 0.1
    rv += (0.1 * n / (n - 1)) * var

    xt = nb.from_numpy(chwn(x))
    xt.requires_grad = True
    rt = None if r is None else nb.from_numpy(chwn(r))
    wt, bt = [
        None if a is None else nb.tensor(a, dtype="float32", requires_grad=True) for a in (w, b)
    ]
    running = [nb.zeros(c, dtype="float32"), nb.ones(c, dtype="float32")]
    out = norm.batch_norm(xt, *running, wt, bt, True, 0.1, eps, residual=rt, relu=relu)
    out.backward(g)
    np.testing.assert_array_equal(out.numpy(), y)
    np.testing.assert_array_equal(xt.grad, dx)
    np.testing.assert_array_equal(running[0].numpy(), rm)
    np.testing.assert_array_equal(running[1].numpy(), rv)
    if weight:
        np.testing.assert_array_equal(wt.grad, sums[1].astype(f32))
    if bias:
        np.testing.assert_array_equal(bt.grad, sums[0].astype(f32))
