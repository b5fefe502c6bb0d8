"""Augmentation: random transformations of whole NCHW batches, one vectorized pass each.

Every transform draws its per-sample parameters with ``self.uniform(context, k)`` (keyed by seed,
epoch and sample index, see ``base``), turns them into index arrays or coordinates for the whole
batch, and moves pixels with one gather; no Python loop runs over the samples. ``draw(context,
shape)`` returns the parameters a call would use, so tests and plots can read them back.

Geometric transforms that interpolate (rotation, scale, resized crop) share :func:`resample`:
for every output pixel, an affine map gives a source point, and bilinear interpolation of its
four neighbouring pixels gives the value (or the nearest of them, ``interpolation="nearest"``).
Pixel (i, j) has its centre at row i, column j.

**Compiled kernels.** With ``nabla.kernels`` on (the default), each transform instead runs one
kernel of ``nabla/kernels/augment.py`` (through ``resample.kernel``) that draws the sample's
parameters itself (the same bits as ``draw``) and moves the pixels in one pass: 4 to 8x faster
for a batch of 64 MNIST images, where NumPy spends most of its time in per-call overhead on
small arrays (docs/data.md). The NumPy code here is the reference the kernels are tested
against (tests/kernels/test_augment.py), and runs under ``NABLA_KERNELS=reference``.

:class:`Mixup` and :class:`CutMix` live in ``mixing``: they pair samples within a batch.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from ..sampling import uniforms
from .base import Context, Transform
from .resample import cast, gather, indices, kernel, limits, real, resample, resample_compiled

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

_ATTEMPTS = 10  # rectangle draws per sample before falling back, as torchvision
_INTERPOLATIONS = ("bilinear", "nearest")


def _images(name: str, x: np.ndarray) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got shape {x.shape}")


def _pair(name: str, what: str, value: object) -> tuple:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name}: {what} must be a number or a pair, got {value!r}")
    return pair


def _range(
    name: str, what: str, value: float | tuple[float, float] | list[float], low: float = -math.inf
) -> tuple[float, float]:
    a, b = (float(v) for v in _pair(name, what, value))
    if not low <= a <= b:
        raise ValueError(
            f"{name}: {what} must be an interval (a, b) with {low} <= a <= b, got {value!r}"
        )
    return a, b


def _probability(name: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be in [0, 1], got {p!r}")
    return float(p)


def _integers(u: np.ndarray, low: ArrayLike, high: ArrayLike) -> np.ndarray:
    """Uniform integers in [low, high] (inclusive) from uniforms in [0, 1)."""
    return np.floor(u * (np.asarray(high) - low + 1)).astype(np.int64) + low


def _interpolation(name: str, value: str) -> str:
    if value not in _INTERPOLATIONS:
        raise ValueError(f"{name}: interpolation must be one of {_INTERPOLATIONS}, got {value!r}")
    return value


def _about_center(matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The offset that makes ``matrix`` act about the image centre (same-size output)."""
    center = (np.array(shape[-2:], dtype=np.float64) - 1) / 2
    return center - matrix @ center


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    _axis = -1

    def __init__(self, p: float = 0.5):
        self.p = _probability(type(self).__name__, p)

    def draw(self, context: Context, shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
        return {"flip": self.uniform(context, 1)[:, 0] < self.p}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        run = kernel("flip", x)
        if run is not None:
            x, out = np.ascontiguousarray(x), np.empty(x.shape, dtype=x.dtype)
            run(x, out, indices(context), self.key(context), self.p, self._axis == -2)
            return out, y
        flip = self.draw(context)["flip"]
        return np.where(flip[:, None, None, None], np.flip(x, self._axis), x), y


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror each image top-bottom with probability ``p``."""

    _axis = -2


class RandomTranslate(Transform):
    """Shift each image by a whole number of pixels, filling with zeros.

    ``max_shift``: an int (pixels) or a float in [0, 1) (a fraction of the height and width),
    or a pair (vertical, horizontal). The shifts (dy down, dx right) are uniform integers in
    [-m, m].
    """

    def __init__(self, max_shift: float | tuple[float, float] | list[float]):
        name = type(self).__name__
        for m in _pair(name, "max_shift", max_shift):
            if m < 0 or (isinstance(m, float) and m >= 1):
                raise ValueError(
                    f"{name}: max_shift must be pixels (int >= 0) or a fraction in [0, 1), "
                    f"got {max_shift!r}"
                )
        self.max_shift = max_shift

    def _max_shifts(self, shape: tuple[int, ...]) -> list[int]:
        return [
            m if isinstance(m, (int, np.integer)) else math.floor(m * size)
            for m, size in zip(_pair("", "", self.max_shift), shape[-2:])
        ]

    def draw(self, context: Context, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        limits = self._max_shifts(shape)
        u = self.uniform(context, 2)
        dy = _integers(u[:, 0], -limits[0], limits[0])
        return {"dy": dy, "dx": _integers(u[:, 1], -limits[1], limits[1])}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        run = kernel("shift", x)
        if run is not None:  # output row i reads row i - dy, dy = floor(u (2 m + 1)) - m
            (my, mx), out = self._max_shifts(x.shape), np.empty(x.shape, dtype=x.dtype)
            args = (2.0 * my + 1, -int(my), 2.0 * mx + 1, -int(mx), -1, 0, 0)
            run(np.ascontiguousarray(x), out, indices(context), self.key(context), *args)
            return out, y
        d = self.draw(context, x.shape)
        h, w = x.shape[-2:]
        my, mx = int(np.abs(d["dy"]).max(initial=0)), int(np.abs(d["dx"]).max(initial=0))
        if my >= h or mx >= w:  # shifted entirely out of the frame somewhere: the general gather
            rows = np.arange(h) - d["dy"][:, None]  # output row i reads source row i - dy
            cols = np.arange(w) - d["dx"][:, None]
            return gather(x, rows, cols), y
        # Pad by the largest shift, view every h x w window of the padded images, and pick
        # window (my - dy, mx - dx) of each sample: one gather that copies whole rows.
        padded = np.zeros((*x.shape[:2], h + 2 * my, w + 2 * mx), dtype=x.dtype)
        padded[:, :, my : my + h, mx : mx + w] = x
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        n = np.arange(len(x))
        return windows[n, :, my - d["dy"], mx - d["dx"]], y


class RandomCrop(Transform):
    """Pad with zeros by ``padding`` (int, or (vertical, horizontal)), then cut a random
    ``size`` window (int or (height, width)), as torchvision's RandomCrop."""

    def __init__(
        self,
        size: int | tuple[int, int] | list[int],
        padding: int | tuple[int, int] | list[int] = 0,
    ):
        name = type(self).__name__
        if min(_pair(name, "size", size)) < 1 or min(_pair(name, "padding", padding)) < 0:
            raise ValueError(
                f"{name}: size must be >= 1 and padding >= 0, got {size!r}, {padding!r}"
            )
        self.size, self.padding = size, padding

    def _room(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The range of the window's corner in the padded image (checked)."""
        (h, w), (ph, pw) = _pair("", "", self.size), _pair("", "", self.padding)
        room_h, room_w = shape[-2] + 2 * ph - h, shape[-1] + 2 * pw - w
        if room_h < 0 or room_w < 0:
            raise ValueError(
                f"{type(self).__name__}: crop size {(h, w)} is larger than the padded image "
                f"{(shape[-2] + 2 * ph, shape[-1] + 2 * pw)}"
            )
        return room_h, room_w

    def draw(self, context: Context, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        room_h, room_w = self._room(shape)
        u = self.uniform(context, 2)  # offsets in the padded image
        return {"top": _integers(u[:, 0], 0, room_h), "left": _integers(u[:, 1], 0, room_w)}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        (h, w), (ph, pw) = _pair("", "", self.size), _pair("", "", self.padding)
        run = kernel("shift", x)
        if run is not None:  # output row i reads row top - ph + i
            (room_h, room_w), out = self._room(x.shape), np.empty((*x.shape[:2], h, w), x.dtype)
            args = (room_h + 1.0, 0, room_w + 1.0, 0, 1, -int(ph), -int(pw))
            run(np.ascontiguousarray(x), out, indices(context), self.key(context), *args)
            return out, y
        d = self.draw(context, x.shape)
        # Index the unpadded image directly: rows outside it read as zero, which is the padding.
        rows = d["top"][:, None] - ph + np.arange(h)
        cols = d["left"][:, None] - pw + np.arange(w)
        return gather(x, rows, cols), y


class RandomRotation(Transform):
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees] (or in
    ``degrees = (a, b)``), counter-clockwise for positive angles, as torchvision; bilinear
    interpolation (or ``interpolation="nearest"``), zeros outside the source.
    ``degrees=(90, 90)`` equals ``numpy.rot90``."""

    def __init__(
        self, degrees: float | tuple[float, float] | list[float], interpolation: str = "bilinear"
    ):
        name = type(self).__name__
        if not isinstance(degrees, (tuple, list)) and degrees < 0:
            raise ValueError(f"{name}: degrees must be >= 0, got {degrees!r}")
        pair = degrees if isinstance(degrees, (tuple, list)) else (-degrees, degrees)
        self.degrees = _range(name, "degrees", pair)
        self.interpolation = _interpolation(name, interpolation)

    def draw(self, context: Context, shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
        a, b = self.degrees
        return {"angle": a + (b - a) * self.uniform(context, 1)[:, 0]}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        run = kernel("resample", x)
        if run is not None:
            a, b = self.degrees
            maps = ("affine_maps", indices(context), self.key(context), a, b, True, x.shape)
            return resample_compiled(run, x, self.interpolation, maps, x.shape[-2:]), y
        theta = np.deg2rad(self.draw(context)["angle"])
        cos, sin = np.cos(theta), np.sin(theta)
        # Source of an output pixel, in (row, col) coordinates: the inverse rotation (rows point
        # down).
        matrix = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], axis=1)
        offset = _about_center(matrix, x.shape)
        return resample(x, matrix, offset, x.shape[-2:], interpolation=self.interpolation), y


class RandomScale(Transform):
    """Zoom each image about its centre by a factor uniform in ``scale`` (> 1 enlarges);
    bilinear (or ``interpolation="nearest"``), zeros where a shrunken image leaves the frame."""

    def __init__(
        self,
        scale: float | tuple[float, float] | list[float] = (0.9, 1.1),
        interpolation: str = "bilinear",
    ):
        name = type(self).__name__
        self.scale = _range(name, "scale", scale, low=1e-6)
        self.interpolation = _interpolation(name, interpolation)

    def draw(self, context: Context, shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
        a, b = self.scale
        return {"scale": a + (b - a) * self.uniform(context, 1)[:, 0]}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        run = kernel("resample", x)
        if run is not None:
            a, b = self.scale
            maps = ("affine_maps", indices(context), self.key(context), a, b, False, x.shape)
            return resample_compiled(run, x, self.interpolation, maps, x.shape[-2:]), y
        s = self.draw(context)["scale"]
        matrix = np.eye(2) / s[:, None, None]
        offset = _about_center(matrix, x.shape)
        return resample(x, matrix, offset, x.shape[-2:], interpolation=self.interpolation), y


@functools.lru_cache(maxsize=64)
def _log_range(ratio: tuple[float, float]) -> tuple[float, float]:
    low, high = np.log(ratio)
    return low, high - low


def _aspects(u: np.ndarray, ratio: tuple[float, float]) -> np.ndarray:
    """Aspect ratios log-uniform in ``ratio`` from uniforms ``u``, one per rectangle attempt."""
    low, width = _log_range(ratio)
    out = u * width
    out += low
    return np.exp(out, out=out)


def _rectangles(
    u: np.ndarray,
    area: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    fits: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """torchvision's rectangle search, vectorized: ``_ATTEMPTS`` (height, width) candidates per
    sample from uniforms ``u`` (N, 2 * _ATTEMPTS); returns the first that ``fits`` (its height,
    width and target area), and whether one did."""
    target = area * (scale[0] + (scale[1] - scale[0]) * u[:, :_ATTEMPTS])
    aspect = _aspects(u[:, _ATTEMPTS : 2 * _ATTEMPTS], ratio)
    h, w = np.rint(np.sqrt(target / aspect)), np.rint(np.sqrt(target * aspect))
    ok = fits(h, w)
    first = np.argmax(ok, axis=1)[:, None]
    pick = lambda a: np.take_along_axis(a, first, axis=1)[:, 0].astype(np.int64)  # noqa: E731
    return pick(h), pick(w), np.take_along_axis(target, first, axis=1)[:, 0], ok.any(axis=1)


class RandomResizedCrop(Transform):
    """Crop a random rectangle and resize it to ``size`` (int or (height, width)), as
    torchvision: area a fraction in ``scale`` of the image, aspect (width / height) log-uniform
    in ``ratio``, 10 tries, else the central crop of the closest allowed aspect. Bilinear with
    edge replication (``align_corners=False``, no antialiasing), or
    ``interpolation="nearest"`` (torch's ``"nearest-exact"``: the pixel whose centre is nearest)."""

    def __init__(
        self,
        size: int | tuple[int, int] | list[int],
        scale: float | tuple[float, float] | list[float] = (0.08, 1.0),
        ratio: float | tuple[float, float] | list[float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
    ):
        name = type(self).__name__
        if min(_pair(name, "size", size)) < 1:
            raise ValueError(f"{name}: size must be >= 1, got {size!r}")
        self.size = size
        self.scale = _range(name, "scale", scale, low=0.0)
        self.ratio = _range(name, "ratio", ratio, low=1e-6)
        self.interpolation = _interpolation(name, interpolation)

    def draw(self, context: Context, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        img_h, img_w = shape[-2:]
        u = self.uniform(context, 2 * _ATTEMPTS + 2)

        def fits(h: np.ndarray, w: np.ndarray) -> np.ndarray:
            return (h > 0) & (h <= img_h) & (w > 0) & (w <= img_w)

        h, w, _, found = _rectangles(u, img_h * img_w, self.scale, self.ratio, fits)
        # Fallback: the whole image cropped to the nearest allowed aspect ratio, centred.
        ratio = min(max(img_w / img_h, self.ratio[0]), self.ratio[1])
        fh, fw = (
            (img_h, round(img_h * ratio))
            if ratio < img_w / img_h
            else (round(img_w / ratio), img_w)
        )
        h, w = np.where(found, h, fh), np.where(found, w, fw)
        top = np.where(found, _integers(u[:, -2], 0, img_h - h), (img_h - h) // 2)
        left = np.where(found, _integers(u[:, -1], 0, img_w - w), (img_w - w) // 2)
        return {"top": top, "left": left, "height": h, "width": w}

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        d = self.draw(context, x.shape)
        out_h, out_w = _pair("", "", self.size)
        run = kernel("resample", x)
        if run is not None:
            maps = ("crop_maps", d["top"], d["left"], d["height"], d["width"], out_h, out_w)
            return resample_compiled(run, x, self.interpolation, maps, (out_h, out_w)), y
        top, left, sh, sw = d["top"], d["left"], d["height"] / out_h, d["width"] / out_w
        matrix = np.zeros((len(x), 2, 2))
        matrix[:, 0, 0], matrix[:, 1, 1] = sh, sw
        offset = np.stack(
            [top + 0.5 * sh - 0.5, left + 0.5 * sw - 0.5], axis=1
        )  # half-pixel centres
        box = np.stack([top, top + d["height"] - 1, left, left + d["width"] - 1], axis=1)
        out = resample(x, matrix, offset, (out_h, out_w), box, self.interpolation)
        return out, y


class GaussianNoise(Transform):
    """Add N(0, std^2) noise to every value; with ``clip``, clip the result to [0, 1]."""

    def __init__(self, std: float, clip: bool = False):
        if std < 0:
            raise ValueError(f"{type(self).__name__}: std must be >= 0, got {std!r}")
        self.std, self.clip = float(std), bool(clip)

    def normal(self, context: Context, draws: int) -> np.ndarray:
        """Box-Muller keeping both normals of each pair of uniforms (cos and sin): half the
        hashing of ``Transform.normal``, the bottleneck of this transform."""
        k = (draws + 1) // 2
        u = uniforms(context.seed, context.epoch, context.indices, 2 * k, self.stream, np.float32)
        radius = np.log1p(-u[:, :k])  # float32 throughout: noise needs no more resolution
        radius *= -2.0
        np.sqrt(radius, out=radius)
        angle = u[:, k:]
        angle *= np.float32(2 * np.pi)
        out = np.empty((len(u), 2 * k), dtype=np.float32)
        np.cos(angle, out=out[:, :k])
        np.sin(angle, out=out[:, k:])
        out[:, :k] *= radius
        out[:, k:] *= radius
        return out[:, :draws]

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        run = kernel("noise", x)
        if run is not None and x.ndim >= 1:
            flat = np.ascontiguousarray(x).reshape(len(x), math.prod(x.shape[1:]))
            out = np.empty(flat.shape, dtype=x.dtype)
            std = np.float32(self.std)  # as NumPy's float32 noise times a Python float
            args = (self.clip, x.dtype.kind in "iu", limits(x.dtype))
            run(flat, out, indices(context), self.key(context), std, *args)
            return out.reshape(x.shape), y
        noise = self.normal(context, math.prod(x.shape[1:])).reshape(x.shape)
        out = x + (self.std * noise).astype(real(x.dtype))
        return cast(np.clip(out, 0, 1) if self.clip else out, x.dtype), y


class RandomErasing(Transform):
    """Cutout: with probability ``p``, set a random rectangle of each image to ``value`` (a
    number, or one per channel), as torchvision's RandomErasing: area a fraction in ``scale`` of
    the image, aspect (height / width) log-uniform in ``ratio``, 10 tries, else no erasing."""

    def __init__(
        self,
        p: float = 0.5,
        scale: float | tuple[float, float] | list[float] = (0.02, 0.33),
        ratio: float | tuple[float, float] | list[float] = (0.3, 3.3),
        value: ArrayLike = 0.0,
    ):
        name = type(self).__name__
        self.p = _probability(name, p)
        self.scale = _range(name, "scale", scale, low=0.0)
        self.ratio = _range(name, "ratio", ratio, low=1e-6)
        self.value = value

    def draw(self, context: Context, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        img_h, img_w = shape[-2:]
        u = self.uniform(context, 2 * _ATTEMPTS + 3)

        # torchvision's aspect is height / width here: the roles swap
        def fits(w: np.ndarray, h: np.ndarray) -> np.ndarray:
            return (h < img_h) & (w < img_w)

        w, h, area, found = _rectangles(u, img_h * img_w, self.scale, self.ratio, fits)
        return {
            "erase": found & (u[:, -3] < self.p),
            "top": _integers(u[:, -2], 0, img_h - h),
            "left": _integers(u[:, -1], 0, img_w - w),
            "height": h,
            "width": w,
            "area": area / (img_h * img_w),  # the drawn fraction, before rounding to pixels
        }

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        _images(type(self).__name__, x)
        run = kernel("erase", x)
        value = np.asarray(self.value, dtype=x.dtype).reshape(-1)
        if run is not None and value.size in (1, x.shape[1]):
            u = self.uniform(context, 2 * _ATTEMPTS + 3)
            # NumPy's exp, as draw's: a side is rounded, so its last bit can matter (numba's
            # exp, glibc's, differs from NumPy's SIMD one in about 5% of these arguments)
            aspect = _aspects(u[:, _ATTEMPTS : 2 * _ATTEMPTS], self.ratio)
            x, out = np.ascontiguousarray(x), np.empty(x.shape, dtype=x.dtype)
            area, (a, b) = float(x.shape[-2] * x.shape[-1]), self.scale
            run(x, out, u, aspect, area, a, b, self.p, value)
            return out, y
        d = self.draw(context, x.shape)
        rows, cols = np.arange(x.shape[-2]), np.arange(x.shape[-1])
        in_rows = (rows >= d["top"][:, None]) & (rows < (d["top"] + d["height"])[:, None])
        in_cols = (cols >= d["left"][:, None]) & (cols < (d["left"] + d["width"])[:, None])
        mask = (in_rows[:, :, None] & in_cols[:, None, :]) & d["erase"][:, None, None]
        value = np.asarray(self.value, dtype=x.dtype).reshape(-1, 1, 1)
        return np.where(mask[:, None], value, x), y
