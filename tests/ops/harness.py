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
