"""Batch and layer normalization in detail: nabla/ops/normalization.py against torch in float64,
on the compiled kernels and on the NumPy references, with both memory layouts (NCHW, and a
convolution's (C, H, W, N) view, which picks the kernels' fast path), and the validation messages
at their exact boundaries. dtypes, thread splits and SyncBatchNorm's hooks: test_norm_paths.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import as_layout

import nabla as nb
from nabla.ops import normalization as norm_ops

# ---------------------------------------------------------------------------- batch norm


def bn_both(
    shape,
    layout,
    training,
    weight=True,
    bias=True,
    residual=False,
    relu=False,
    momentum=0.1,
    eps=1e-5,
    seed=0,
):
    """(ours, torch's): output, gradients of x, w, b (and residual), running mean and var."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = 3.0 + 2.0 * rng.standard_normal(shape)
    w = rng.standard_normal(c) if weight else None
    b = rng.standard_normal(c) if bias else None
    r = rng.standard_normal(shape) if residual else None
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    g = rng.standard_normal(shape)

    def ours_params():
        return [
            None if a is None else nb.tensor(a, dtype="float64", requires_grad=True) for a in (w, b)
        ]

    xt = nb.from_numpy(as_layout(x, layout))
    xt.requires_grad = True
    rt = None if r is None else nb.from_numpy(as_layout(r, layout))
    if rt is not None:
        rt.requires_grad = True
    wt, bt = ours_params()
    rmt, rvt = nb.tensor(rm, dtype="float64"), nb.tensor(rv, dtype="float64")
    y = norm_ops.batch_norm(xt, rmt, rvt, wt, bt, training, momentum, eps, residual=rt, relu=relu)
    (y * nb.from_numpy(as_layout(g, layout))).sum().backward()  # G in x's layout too
    grads = [None if t is None else t.grad for t in (xt, wt, bt, rt)]
    ours = [y.numpy(), *grads, rmt.numpy(), rvt.numpy()]

    tx = torch.tensor(x, requires_grad=True)
    tw, tb = [None if a is None else torch.tensor(a, requires_grad=True) for a in (w, b)]
    tr = None if r is None else torch.tensor(r, requires_grad=True)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty = TF.batch_norm(tx, trm, trv, tw, tb, training, momentum, eps)
    ty = ty if tr is None else ty + tr
    ty = ty.relu() if relu else ty
    ty.backward(torch.from_numpy(g))
    grads = [None if t is None else t.grad.numpy() for t in (tx, tw, tb, tr)]
    theirs = [ty.detach().numpy(), *grads, trm.numpy(), trv.numpy()]
    return ours, theirs


def assert_all(ours, theirs, names=("y", "dx", "dw", "db", "dr", "running_mean", "running_var")):
    for name, a, b in zip(names, ours, theirs):
        if b is None:
            assert a is None, name
        else:
            np.testing.assert_allclose(a, b, err_msg=name, rtol=1e-9, atol=1e-10)


BN_SHAPES = [(4, 3, 5, 6), (7, 5), (3, 4, 6)]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_matches_torch(shape, layout, training, backend):
    """Output, the three gradients and the running statistics (unbiased variance, momentum 0.1)
    after one step, in training and in evaluation, for 2-, 3- and 4-D inputs."""
    assert_all(*bn_both(shape, layout, training))


@pytest.mark.parametrize("affine", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_without_weight_or_bias(affine, layout, training, backend):
    """weight or bias None means 1 or 0, as in torch."""
    assert_all(*bn_both((3, 2, 4, 5), layout, training, *affine, seed=1))


@pytest.mark.parametrize("affine", [(True, True), (False, False)])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_residual_relu(residual, affine, layout, training, backend):
    """relu(batch_norm(x) + residual) fused equals the three torch operations, with its
    residual gradient; and relu alone."""
    got = bn_both((4, 3, 5, 5), layout, training, *affine, residual=residual, relu=True, seed=2)
    assert_all(*got)
    assert (got[0][0] == 0).any()


@pytest.mark.parametrize("layout", ["nchw", "chwn"])
def test_batch_norm_residual_without_relu(layout, backend):
    assert_all(*bn_both((4, 3, 5, 5), layout, True, residual=True, seed=3))


def test_batch_norm_momentum_and_eps(backend):
    """momentum and eps are used as given (r <- (1 - m) r + m stat, sqrt(var + eps))."""
    assert_all(*bn_both((4, 3, 2, 2), "chwn", True, momentum=0.7, eps=0.5, seed=4))
    assert_all(*bn_both((4, 3, 2, 2), "nchw", False, momentum=0.7, eps=0.5, seed=4))


def test_batch_norm_defaults_are_torchs(backend):
    """training False, momentum 0.1, eps 1e-5: torch's functional defaults."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 2, 2))
    rm, rv = rng.standard_normal(3), rng.uniform(1e-6, 1e-5, 3)  # a small var shows eps
    y = norm_ops.batch_norm(
        nb.tensor(x, dtype="float64"),
        nb.tensor(rm, dtype="float64"),
        nb.tensor(rv, dtype="float64"),
    )
    want = TF.batch_norm(torch.tensor(x), torch.tensor(rm), torch.tensor(rv))
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-9)
    rm_t, rv_t = nb.tensor(rm, dtype="float64"), nb.tensor(rv, dtype="float64")
    y = norm_ops.batch_norm(nb.tensor(x, dtype="float64"), rm_t, rv_t, training=True)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    want = TF.batch_norm(torch.tensor(x), trm, trv, training=True)
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rm_t.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv_t.numpy(), trv.numpy(), rtol=1e-12)


def test_batch_norm_without_running_buffers(backend):
    """Training with running_mean and running_var None normalizes by the batch alone."""
    x = np.random.default_rng(6).standard_normal((5, 2, 3))
    y = norm_ops.batch_norm(nb.tensor(x, dtype="float64"), None, None, training=True)
    want = TF.batch_norm(torch.tensor(x), None, None, training=True)
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)


def test_batch_norm_eval_uses_the_statistics_of_the_forward(backend):
    """Evaluation saves a copy of running_mean: updating the buffer in place before backward
    does not change dW."""
    rng = np.random.default_rng(7)
    x, rm, rv = rng.standard_normal((3, 2, 4)), rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    w = nb.tensor(rng.standard_normal(2), dtype="float64", requires_grad=True)
    running_mean = nb.tensor(rm, dtype="float64")
    y = norm_ops.batch_norm(
        nb.tensor(x, dtype="float64"), running_mean, nb.tensor(rv, dtype="float64"), w
    )
    running_mean.data += 100.0
    y.sum().backward()
    want = ((x - rm[None, :, None]) / np.sqrt(rv[None, :, None] + 1e-5)).sum(axis=(0, 2))
    np.testing.assert_allclose(w.grad, want, rtol=1e-12)


def test_batch_norm_float32_cotangent_layouts(backend):
    """float32 on the kernel path with a cotangent in NCHW layout (not the input's)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 3, 3, 5)).astype(np.float32)
    xt = nb.from_numpy(as_layout(x, "chwn"))
    xt.requires_grad = True
    w = nb.tensor(rng.standard_normal(3), dtype="float32", requires_grad=True)
    y = norm_ops.batch_norm(xt, None, None, w, None, training=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    (y * nb.from_numpy(g)).sum().backward()
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w.numpy(), requires_grad=True)
    TF.batch_norm(tx, None, None, tw, None, True).backward(torch.from_numpy(g))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_batch_norm_batch_size_boundary(backend):
    """Training needs more than one value per channel: 1 is refused by name with the shape,
    2 passes."""
    for shape in [(1, 3), (1, 3, 1, 1)]:
        with pytest.raises(
            ValueError,
            match=r"batch_norm: expected more than 1 value per "
            rf"channel when training, got input of shape \({shape[0]}, 3",
        ):
            norm_ops.batch_norm(nb.tensor(np.zeros(shape)), None, None, training=True)
    y = norm_ops.batch_norm(nb.tensor(np.array([[1.0], [3.0]])), None, None, training=True)
    np.testing.assert_allclose(y.numpy(), [[-1.0], [1.0]], rtol=1e-4)
    y = norm_ops.batch_norm(nb.tensor(np.array([[[1.0, 3.0]]])), None, None, training=True)
    np.testing.assert_allclose(y.numpy(), [[[-1.0, 1.0]]], rtol=1e-4)


def test_batch_norm_residual_shape_error():
    x, r = nb.tensor(np.zeros((2, 3, 4))), nb.tensor(np.zeros((2, 3, 5)))
    with pytest.raises(
        ValueError,
        match=r"batch_norm: residual of shape \(2, 3, 5\) does not "
        r"match the input of shape \(2, 3, 4\)",
    ):
        norm_ops.batch_norm(x, None, None, training=True, residual=r)


def test_channel_rows():
    """A (C, H, W, N) view as (C, N H W) rows without a copy; None for other layouts/ranks."""
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    view = as_layout(x, "chwn")
    rows = norm_ops._channel_rows(view)
    assert np.shares_memory(rows, view) and rows.shape == (3, 8)
    np.testing.assert_array_equal(rows, np.moveaxis(x, 0, -1).reshape(3, -1))
    assert norm_ops._channel_rows(x) is None
    assert norm_ops._channel_rows(None) is None
    assert norm_ops._channel_rows(np.zeros((3, 4))) is None


# ---------------------------------------------------------------------------- layer norm


@pytest.mark.parametrize(
    ("shape", "normalized"), [((4, 6), 6), ((3, 4, 5), (4, 5)), ((2, 3, 4, 5), [5])]
)
@pytest.mark.parametrize("affine", [(True, True), (False, False), (True, False), (False, True)])
def test_layer_norm_matches_torch(shape, normalized, affine):
    """Output and gradients of x, w, b against torch (weight/bias None mean 1 and 0)."""
    rng = np.random.default_rng(9)
    k = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    x, g = 2.0 + 3.0 * rng.standard_normal(shape), rng.standard_normal(shape)
    w, b = [rng.standard_normal(k) if on else None for on in affine]
    xt = nb.tensor(x, dtype="float64", requires_grad=True)
    wt, bt = [
        None if a is None else nb.tensor(a, dtype="float64", requires_grad=True) for a in (w, b)
    ]
    y = norm_ops.layer_norm(xt, normalized, wt, bt, eps=0.1)
    (y * nb.tensor(g, dtype="float64")).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = [None if a is None else torch.tensor(a, requires_grad=True) for a in (w, b)]
    ty = TF.layer_norm(tx, k, tw, tb, eps=0.1)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for ours, theirs in [(wt, tw), (bt, tb)]:
        if ours is not None:
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-11)


def test_layer_norm_default_eps():
    """eps defaults to 1e-5, torch's: visible on a nearly constant input."""
    x = np.array([[1.0, 1.0 + 1e-3, 1.0 - 1e-3]])
    y = norm_ops.layer_norm(nb.tensor(x, dtype="float64"), 3)
    np.testing.assert_allclose(y.numpy(), TF.layer_norm(torch.tensor(x), (3,)).numpy(), rtol=1e-9)


def test_layer_norm_shape_errors():
    """A trailing shape that differs, or an input of too few axes, is refused with both."""
    with pytest.raises(
        ValueError,
        match=r"LayerNorm\(\(4, 5\)\): expected input \(\*, 4, 5\), "
        r"got shape \(3, 5, 4\)",
    ):
        norm_ops.layer_norm(nb.tensor(np.zeros((3, 5, 4))), (4, 5))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(2, 4, 5\)\).*got shape \(4, 5\)"):
        norm_ops.layer_norm(nb.tensor(np.zeros((4, 5))), (2, 4, 5))
    assert norm_ops.layer_norm(nb.tensor(np.zeros((4, 5))), (4, 5)).shape == (4, 5)
