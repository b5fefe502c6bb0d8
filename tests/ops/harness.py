"""One harness for every operation: describe an op once, get four checks.

An :class:`OpCase` names an operation three ways (nabla, a NumPy reference, torch) together with
the input shapes to try and how to draw inputs. ``test_ops.py`` then checks, for every case and
shape:

1. forward against the NumPy reference (float64, tight tolerance);
2. backward by ``nabla.gradcheck`` (central differences in float64);
3. forward and backward against torch in float64 (tight) and float32 (loose), with the same
   random output gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import nabla as nb


def normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def away_from(*points: float, margin: float = 0.1):
    """Normal draws kept ``margin`` away from kinks (relu at 0, clip at its bounds)."""

    def draw(rng: np.random.Generator, shape: tuple) -> np.ndarray:
        x = rng.standard_normal(shape)
        for p in points:
            close = np.abs(x - p) < margin
            x = np.where(close, p + np.copysign(margin + rng.uniform(0, 0.5, shape), x - p), x)
        return x

    return draw


def distinct(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Well-separated values (no near-ties), for max/min reductions."""
    n = int(np.prod(shape, dtype=int))
    return (rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)


@dataclass
class OpCase:
    name: str
    nabla: Callable  # (*nabla tensors) -> Tensor
    numpy: Callable  # (*arrays) -> ndarray, the reference forward
    torch: Callable  # (*torch tensors) -> torch.Tensor
    shapes: list  # each entry: a tuple with one shape per input
    draw: list | Callable = field(default=normal)  # one sampler for all inputs, or one per input
    gradcheck_atol: float = 1e-5

    def inputs(self, shapes: tuple, seed: int = 0) -> list:
        rng = np.random.default_rng(seed)
        draws = self.draw if isinstance(self.draw, list) else [self.draw] * len(shapes)
        return [d(rng, s) for d, s in zip(draws, shapes, strict=True)]

    def ids(self) -> list:
        return [f"{self.name}-{'-'.join(str(s) for s in shapes)}" for shapes in self.shapes]


def params(cases: list) -> list:
    """pytest parameters: one (case, shapes) pair per case and shape."""
    return [
        pytest.param(case, shapes, id=ident)
        for case in cases
        for shapes, ident in zip(case.shapes, case.ids(), strict=True)
    ]


def check_forward(case: OpCase, shapes) -> None:
    """Forward in float64 equals the NumPy reference."""
    arrays = case.inputs(shapes)
    out = case.nabla(*[nb.tensor(a, dtype="float64") for a in arrays])
    expected = np.asarray(case.numpy(*arrays))
    assert out.shape == expected.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


def check_gradcheck(case: OpCase, shapes) -> None:
    """Backward equals central finite differences in float64."""
    tensors = [nb.tensor(a, dtype="float64", requires_grad=True) for a in case.inputs(shapes)]
    assert nb.gradcheck(case.nabla, tensors, atol=case.gradcheck_atol)


TOLERANCES = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 2e-5, "atol": 2e-6}}


def check_torch(case: OpCase, shapes, dtype: str) -> None:
    """Forward and backward (same random output gradient) equal torch's in ``dtype``."""
    arrays = case.inputs(shapes)
    ours = [nb.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in arrays]
    out, reference = case.nabla(*ours), case.torch(*theirs)
    tol = TOLERANCES[dtype]
    assert out.dtype == np.dtype(dtype)
    assert out.shape == tuple(reference.shape)
    np.testing.assert_allclose(out.data, reference.detach().numpy(), **tol)

    cotangent = np.random.default_rng(7).standard_normal(out.shape).astype(dtype)
    out.backward(cotangent)
    reference.backward(torch.from_numpy(cotangent))
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.grad is not None and a.grad.dtype == np.dtype(dtype), f"input {i}"
        np.testing.assert_allclose(a.grad, b.grad.numpy(), err_msg=f"input {i}", **tol)
