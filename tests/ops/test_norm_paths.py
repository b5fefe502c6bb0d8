"""Batch norm's paths in detail (nabla/ops/normalization.py): the hook SyncBatchNorm gives backward
for its global batch means, a residual in another memory layout than the input, the thread split
of each kernel, and float32 kept on the kernel path. Numbers against torch in float64; the
kernels bit for bit against the formula: tests/kernels/test_normalization_kernels.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import as_layout, chwn

import nabla as nb
from nabla import kernels
from nabla.ops import normalization as norm_ops

AXES = (0, 2, 3)


@pytest.mark.parametrize("layout", ["nchw", "chwn"])
def test_batch_gradient_uses_the_means_hook_of_a_split_batch(layout, backend):
    """SyncBatchNorm's contract with ``_batch_norm_train``: ``statistics`` returns the global
    batch's mean and variance and a ``means`` hook that turns this rank's sums of dx̂ and dx̂ x̂
    into global means. Emulated here for two ranks in one process: rank 0's input gradient must
    be torch's gradient of batch norm over the whole batch, restricted to rank 0's rows."""
    rng = np.random.default_rng(4)
    x_full = 2.0 + rng.standard_normal((6, 3, 4, 5))
    g_full = rng.standard_normal(x_full.shape)
    w, b, eps = rng.standard_normal(3), rng.standard_normal(3), 1e-5
    x0, x1, g1 = x_full[:2], x_full[2:], g_full[2:]
    mean, var = x_full.mean(axis=AXES), x_full.var(axis=AXES)
    count = x_full.size // 3
    shape = (1, 3, 1, 1)
    xhat1 = (x1 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    dxhat1 = g1 * w.reshape(shape)
    other = np.stack([dxhat1.sum(axis=AXES), (dxhat1 * xhat1).sum(axis=AXES)])  # rank 1's sums

    def statistics(data):
        assert data.shape == x0.shape  # rank 0's batch only
        return mean, var, count, lambda totals: (totals + other) / count

    xt = nb.from_numpy(as_layout(x0, layout))
    xt.requires_grad = True
    wt = nb.tensor(w, dtype="float64", requires_grad=True)
    bt = nb.tensor(b, dtype="float64", requires_grad=True)
    y = norm_ops._batch_norm_train(xt, None, None, wt, bt, 0.1, eps, statistics, None, False)
    (y * nb.from_numpy(as_layout(g_full[:2], layout))).sum().backward()

    tx = torch.tensor(x_full, requires_grad=True)
    ty = TF.batch_norm(tx, None, None, torch.tensor(w), torch.tensor(b), True, 0.1, eps)
    ty.backward(torch.from_numpy(g_full))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy()[:2], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy()[:2], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize(("x_layout", "r_layout"), [("chwn", "nchw"), ("nchw", "chwn")])
def test_batch_norm_residual_in_another_layout(x_layout, r_layout, relu, backend):
    """relu(bn(x) + r) with r in another memory layout than x: the kernels need both as channel
    rows, so this takes the reference; the numbers are torch's either way."""
    rng = np.random.default_rng(5)
    x, r = rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((3, 2, 4, 5))
    g = rng.standard_normal(x.shape)
    xt, rt = nb.from_numpy(as_layout(x, x_layout)), nb.from_numpy(as_layout(r, r_layout))
    xt.requires_grad = rt.requires_grad = True
    y = norm_ops.batch_norm(xt, None, None, training=True, residual=rt, relu=relu)
    (y * nb.from_numpy(g)).sum().backward()
    tx, tr = torch.tensor(x, requires_grad=True), torch.tensor(r, requires_grad=True)
    ty = TF.batch_norm(tx, None, None, None, None, True) + tr
    ty = ty.relu() if relu else ty
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(rt.grad, tr.grad.numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_keeps_float32_on_the_kernel_path(affine, residual, backend):
    """A float32 input in the convolution layout gives a float32 output and float32 gradients
    (running buffers included), with or without weight, bias and residual."""
    rng = np.random.default_rng(6)
    x = chwn(rng.standard_normal((4, 3, 2, 5)).astype(np.float32))
    xt = nb.from_numpy(x)
    xt.requires_grad = True
    params = (
        [nb.tensor(rng.standard_normal(3), dtype="float32", requires_grad=True) for _ in range(2)]
        if affine
        else [None, None]
    )
    rt = nb.from_numpy(chwn(rng.standard_normal(x.shape).astype(np.float32))) if residual else None
    running = nb.zeros(3, dtype="float32"), nb.ones(3, dtype="float32")
    y = norm_ops.batch_norm(xt, *running, *params, training=True, residual=rt, relu=True)
    assert y.dtype == np.float32
    y.sum().backward()
    for t in (xt, *running, *(p for p in params if p is not None)):
        got = t.grad if t.requires_grad else t.data
        assert got.dtype == np.float32


def test_each_kernel_is_split_by_the_values_it_touches(monkeypatch):
    """The thread split of every batch-norm kernel (conv.launch) is chosen by the number of
    values the kernel passes over: the whole input, or the whole output gradient."""
    calls = []

    def spy(name, work):
        calls.append((name, work))
        return launch(name, work)

    launch = norm_ops.launch
    monkeypatch.setattr(norm_ops, "launch", spy)
    x = nb.from_numpy(chwn(np.random.default_rng(7).standard_normal((3, 2, 4, 5))))
    x.requires_grad = True
    with kernels.reference(False):
        norm_ops.batch_norm(x, None, None, training=True).sum().backward()
    names = ["statistics", "forward", "backward_sums", "backward"]
    assert calls == [(f"normalization.batch_norm_{name}", x.size) for name in names]
