"""The same float64 values in nabla and in torch, and checks that the two agree on values and
gradients: the helpers of the op detail tests (tests/ops/test_*_details.py and friends)."""

from __future__ import annotations

import numpy as np
import torch

import nabla as nb


def data(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def both(array, grad=True):
    """The same float64 values as a nabla tensor and a torch tensor, both requiring grad."""
    array = np.asarray(array, dtype=np.float64)
    return nb.tensor(array, dtype="float64", requires_grad=grad), torch.tensor(
        array, requires_grad=grad
    )


def check(nb_fn, torch_fn, *arrays, rtol=1e-12):
    """nb_fn and torch_fn agree on the value and, for a random cotangent, on every gradient."""
    pairs = [both(a) for a in arrays]
    mine = nb_fn(*[p[0] for p in pairs])
    theirs = torch_fn(*[p[1] for p in pairs])
    np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=rtol, atol=1e-14)
    assert mine.shape == tuple(theirs.shape)
    cotangent = data(mine.shape, seed=7)
    mine.backward(nb.tensor(cotangent, dtype="float64"))
    theirs.backward(torch.tensor(cotangent))
    for x, t in pairs:
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=rtol, atol=1e-14)


def match(ours, theirs, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=rtol, atol=atol)
    assert ours.shape == tuple(theirs.shape)


def against_torch(ours_fn, theirs_fn, *arrays, rtol=1e-12):
    """Forward of both on float64 copies of ``arrays``, then the same random output gradient
    (away from 0) into both graphs: every input's gradient must agree. Returns our output."""
    pairs = [both(a) for a in arrays]
    ours, theirs = ours_fn(*(o for o, _ in pairs)), theirs_fn(*(t for _, t in pairs))
    match(ours, theirs, rtol=rtol)
    cotangent = np.random.default_rng(0).standard_normal(ours.shape) + 1.5
    ours.backward(cotangent)
    theirs.backward(torch.from_numpy(np.asarray(cotangent)))
    for o, t in pairs:
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-10, atol=1e-13)
    return ours


def chwn(a: np.ndarray) -> np.ndarray:
    """a (N, C, ...) as a view of a (C, ..., N) array: a convolution output's layout (the layout
    that takes the kernels)."""
    return np.ascontiguousarray(np.moveaxis(a, 0, -1)).transpose(a.ndim - 1, *range(a.ndim - 1))


def as_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """a itself ("nchw"), or the same values in a convolution output's layout ("chwn")."""
    return chwn(a) if layout == "chwn" else a
