"""Mixup and CutMix: augmentations that blend each sample with another of the same batch.

Both pair sample i with a partner from the batch, through a random cyclic order, so nobody is
paired with itself when the batch has two or more samples. They depend on the batch
composition by nature: unlike the per-sample augmentations, the same sample mixes with a
different partner in a batch of other samples. Their randomness is still reproducible: one NumPy
``Generator`` per batch, seeded from (seed, epoch, this transform's stream, a hash of the
batch's indices), draws the partners and the mixing weights lambda ~ Beta(alpha, alpha), one
per sample. The same batch in the same epoch under the same seed is mixed the same way.

Targets become soft: float32 (N, num_classes) rows summing to 1, which ``cross_entropy``
accepts as class probabilities. Integer labels need ``num_classes``; targets that are already
probabilities (from ``OneHot`` or an earlier mix) are mixed as they are.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from .augment import _images
from .base import Context, Transform
from .resample import cast, real

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def soft_targets(name: str, y: ArrayLike | None, num_classes: int | None, n: int) -> np.ndarray:
    """Targets as float32 class probabilities (n, num_classes): one-hot for integer labels."""
    if y is None:
        raise ValueError(f"{name}: needs targets (class labels or probabilities), got None")
    y = np.asarray(y)
    if y.dtype.kind in "iu" and y.shape == (n,):
        if num_classes is None:
            raise ValueError(f"{name}: integer labels need num_classes")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"{name}: labels must be in [0, {num_classes}), got min {y.min()} and max {y.max()}"
            )
        return np.eye(num_classes, dtype=np.float32)[y]
    if y.dtype.kind == "f" and y.ndim == 2 and len(y) == n:
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(
                f"{name}: expected targets of shape ({n}, {num_classes}), got {y.shape}"
            )
        return y.astype(np.float32, copy=False)
    raise ValueError(
        f"{name}: targets must be integer labels of shape ({n},) or probabilities of shape "
        f"({n}, num_classes), got {y.dtype} {y.shape}"
    )


class _Mix(Transform):
    def __init__(self, alpha: float, num_classes: int | None = None):
        name = type(self).__name__
        if not alpha > 0:
            raise ValueError(f"{name}: alpha must be > 0, got {alpha!r}")
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
            raise ValueError(f"{name}: num_classes must be a positive int, got {num_classes!r}")
        self.alpha, self.num_classes = float(alpha), num_classes

    def generator(self, context: Context) -> np.random.Generator:
        """The batch's generator: from (seed, epoch, stream, a hash of the batch's indices)."""
        batch = zlib.crc32(np.asarray(context.indices, dtype="<i8").tobytes())
        key = [context.seed & 0xFFFFFFFFFFFFFFFF, context.epoch, self.stream, batch]
        return np.random.default_rng(key)

    def _partners(self, rng: np.random.Generator, n: int) -> np.ndarray:
        order = rng.permutation(n)
        partner = np.empty(n, dtype=np.int64)
        partner[order] = np.roll(order, -1)  # a random cycle: i is never its own partner (n > 1)
        return partner

    def _mix_targets(
        self, y: ArrayLike | None, lam: np.ndarray, partner: np.ndarray, n: int
    ) -> np.ndarray:
        q = soft_targets(type(self).__name__, y, self.num_classes, n)
        lam = lam.astype(np.float32)[:, None]
        return lam * q + (1 - lam) * q[partner]


class Mixup(_Mix):
    """Mixup (Zhang et al. 2018): x_i <- lam_i x_i + (1 - lam_i) x_j, and the same for the
    one-hot targets, with j the partner of i and lam_i ~ Beta(alpha, alpha).

    Works on any batch (N, ...), images or features. See the module docstring for the pairing
    and its dependence on the batch.

    >>> x, y = np.ones((4, 3), dtype=np.float32) * np.arange(4)[:, None], np.arange(4)
    >>> mx, my = Mixup(alpha=0.2, num_classes=4)(x, y)
    >>> my.dtype, my.shape, bool(np.allclose(my.sum(axis=1), 1))
    (dtype('float32'), (4, 4), True)
    """

    def __init__(self, alpha: float = 0.2, num_classes: int | None = None):
        super().__init__(alpha, num_classes)

    def draw(self, context: Context, shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
        rng = self.generator(context)
        n = len(context.indices)
        return {"partner": self._partners(rng, n), "lam": rng.beta(self.alpha, self.alpha, n)}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self.draw(context, x.shape)
        f = real(x.dtype)  # integer images are mixed in float32, then rounded back
        lam = d["lam"].astype(f).reshape(-1, *[1] * (x.ndim - 1))
        mixed = lam * x.astype(f, copy=False) + (1 - lam) * x[d["partner"]].astype(f, copy=False)
        return cast(mixed, x.dtype), self._mix_targets(y, d["lam"], d["partner"], len(x))


class CutMix(_Mix):
    """CutMix (Yun et al. 2019): paste a rectangle of the partner image into each image.

    With lam ~ Beta(alpha, alpha), the rectangle has sides sqrt(1 - lam) times the image's,
    a uniform random centre, and is clipped to the image; lam is then corrected to the
    fraction of the image left unpasted, which weighs the targets:
    y_i <- lam_i y_i + (1 - lam_i) y_j. NCHW images only.
    """

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None):
        super().__init__(alpha, num_classes)

    def draw(self, context: Context, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        rng = self.generator(context)
        n, (img_h, img_w) = len(context.indices), shape[-2:]
        partner, lam = self._partners(rng, n), rng.beta(self.alpha, self.alpha, n)
        cut = np.sqrt(1 - lam)
        half_h, half_w = (img_h * cut).astype(np.int64) // 2, (img_w * cut).astype(np.int64) // 2
        cy, cx = rng.integers(0, img_h, n), rng.integers(0, img_w, n)
        top, bottom = np.clip(cy - half_h, 0, img_h), np.clip(cy + half_h, 0, img_h)
        left, right = np.clip(cx - half_w, 0, img_w), np.clip(cx + half_w, 0, img_w)
        lam = 1 - (bottom - top) * (right - left) / (img_h * img_w)  # the area actually kept
        return {
            "partner": partner,
            "lam": lam,
            "top": top,
            "bottom": bottom,
            "left": left,
            "right": right,
        }

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray]:
        _images(type(self).__name__, x)
        d = self.draw(context, x.shape)
        rows, cols = np.arange(x.shape[-2]), np.arange(x.shape[-1])
        in_rows = (rows >= d["top"][:, None]) & (rows < d["bottom"][:, None])
        in_cols = (cols >= d["left"][:, None]) & (cols < d["right"][:, None])
        box = in_rows[:, None, :, None] & in_cols[:, None, None, :]
        x = np.where(box, x[d["partner"]], x)
        return x, self._mix_targets(y, d["lam"], d["partner"], len(x))
