"""The transform protocol: functions of whole batches, with per-sample randomness.

A transform is a callable ``t(x, y, context) -> (x, y)`` on a batch: x of shape (N, ...) and y
(targets, possibly None). ``context`` says which samples these are (their dataset indices), in
which epoch, under which seed; random transforms draw their numbers with
:func:`nabla.data.sampling.uniforms` keyed by those, so sample i gets the same transformation in
epoch e whatever the batch size or order. Called without a context (outside a loader), a
transform treats the batch as samples 0..N-1 of epoch 0 under the current seed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ... import random
from ..sampling import normals, stream_key, uniforms

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Context:
    """Which samples a batch holds: dataset ``indices``, ``epoch`` and ``seed``."""

    seed: int
    epoch: int
    indices: np.ndarray

    @classmethod
    def default(cls, n: int) -> Context:
        return cls(random.initial_seed(), 0, np.arange(n))


class Transform:
    """Base class: subclasses implement ``apply(x, y, context) -> (x, y)``.

    ``uniform(context, draws)`` and ``normal(context, draws)`` give per-sample random numbers,
    shape (N, draws), from this transform's own stream.
    """

    def __call__(
        self, x: ArrayLike, y: np.ndarray | None = None, context: Context | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.asarray(x)
        if context is None:
            context = Context.default(len(x))
        if len(context.indices) != len(x):
            raise ValueError(
                f"{type(self).__name__}: context has {len(context.indices)} indices for a batch "
                f"of {len(x)}"
            )
        return self.apply(x, y, context)

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    @property
    def stream(self) -> int:
        """This transform's random stream: a hash of its class name and of its position in a
        Compose, so two augmentations (even two of one kind) draw independent numbers."""
        return zlib.crc32(f"{type(self).__name__}/{getattr(self, '_position', 0)}".encode())

    def key(self, context: Context) -> np.uint64:
        """The uint64 key of this transform's stream in ``context``'s (seed, epoch), from which a
        compiled kernel draws the numbers of ``uniform`` itself (``nabla/kernels/augment.py``)."""
        return stream_key(context.seed, context.epoch, self.stream)

    def uniform(self, context: Context, draws: int) -> np.ndarray:
        return uniforms(context.seed, context.epoch, context.indices, draws, self.stream)

    def normal(self, context: Context, draws: int) -> np.ndarray:
        return normals(context.seed, context.epoch, context.indices, draws, self.stream)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(
        self,
        transforms: Iterable[
            Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]
        ],
    ):
        self.transforms = list(transforms)
        for position, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")
            if isinstance(t, Transform):
                t._position = position

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        for t in self.transforms:
            x, y = t(x, y, context) if isinstance(t, Transform) else t(x, y)
        return x, y
