"""Augmentation: random transformations of whole NCHW batches, one vectorized pass each.

Every transform draws its per-sample parameters with ``self.uniform(context, k)`` (keyed by seed,
epoch and sample index, see ``base``), turns them into index arrays or coordinates for the whole
batch, and moves pixels with one gather; no Python loop runs over the samples. ``draw(context,
shape)`` returns the parameters a call would use, so tests and plots can read them back.

Geometric transforms that interpolate (rotation, scale, resized crop) share :func:`resample`:
for every output pixel, an affine map gives a source point, and bilinear interpolation of its
four neighbouring pixels gives the value. Pixel (i, j) has its centre at row i, column j.

:class:`Mixup` and :class:`CutMix` live in ``mixing``: they pair samples within a batch.
"""

from __future__ import annotations

import math

import numpy as np

from ..sampling import uniforms
from .base import Context, Transform

_ATTEMPTS = 10  # rectangle draws per sample before falling back, as torchvision


def _images(name: str, x: np.ndarray) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got shape {x.shape}")


def _pair(name: str, what: str, value) -> tuple:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name}: {what} must be a number or a pair, got {value!r}")
    return pair


def _range(name: str, what: str, value, low: float = -math.inf) -> tuple[float, float]:
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


def _cast(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input dtype (rounded and clipped to the type's range for integer images)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(dtype, copy=False)


def _float(dtype: np.dtype) -> np.dtype:
    """The float type to compute in: the input's own, float32 for integer images."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float32)


def _integers(u: np.ndarray, low, high) -> np.ndarray:
    """Uniform integers in [low, high] (inclusive) from uniforms in [0, 1)."""
    return np.floor(u * (np.asarray(high) - low + 1)).astype(np.int64) + low


def gather(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``out[n, :, i, j] = x[n, :, rows[n, i], cols[n, j]]``, zero where an index is outside.

    A separable gather (rows, then columns) for integer shifts and crops: two
    ``take_along_axis`` calls over the whole batch.
    """
    h, w = x.shape[-2:]
    out = np.take_along_axis(x, np.clip(rows, 0, h - 1)[:, None, :, None], axis=2)
    out = np.take_along_axis(out, np.clip(cols, 0, w - 1)[:, None, None, :], axis=3)
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[
        :, None, None, :
    ]
    return np.where(inside, out, x.dtype.type(0))


def resample(x: np.ndarray, matrix: np.ndarray, offset: np.ndarray, out_shape, clamp=None):
    """Bilinear resampling of a batch through per-sample affine maps.

    Output pixel (i, j) of sample n reads x[n] at the source point ``matrix[n] @ (i, j) +
    offset[n]`` (row, column coordinates; matrix (N, 2, 2), offset (N, 2)), interpolating its
    four neighbours. A neighbour outside the image counts as 0; with ``clamp`` (N, 4) =
    (row min, row max, col min, col max), source points are first clipped into that box
    instead (edge replication, as ``torch.nn.functional.interpolate``).
    """
    n, c, h, w = x.shape
    out_h, out_w = out_shape
    f = _float(x.dtype)
    i, j = np.arange(out_h, dtype=f), np.arange(out_w, dtype=f)
    m, t = matrix.astype(f), offset.astype(f)
    low, high = (-1, -1), (h, w)  # beyond these, both neighbours are zero padding anyway
    if clamp is not None:
        clamp = np.asarray(clamp, dtype=f)
        low, high = (clamp[:, 0:1], clamp[:, 2:3]), (clamp[:, 1:2], clamp[:, 3:4])

    def coordinate(k: int) -> np.ndarray:
        # m[k, 0] i + m[k, 1] j + t[k] is separable: a column (N, H, 1) plus a row (N, 1, W),
        # so only the final broadcast addition touches all N * P points.
        rows = m[:, k, 0, None] * i + t[:, k, None]
        cols = m[:, k, 1, None] * j
        out = (rows[:, :, None] + cols[:, None, :]).reshape(n, -1)
        np.clip(out, low[k], high[k], out=out)
        out += 1
        return out

    # Coordinates in an image padded with one zero border on top and left, two on bottom and
    # right: every neighbour of a clipped point is then inside it, and those outside the
    # original image read 0. Shifted by +1 they are >= 0, so truncation is floor.
    r, s = coordinate(0), coordinate(1)
    index_type = np.int32 if n * c * (h + 3) * (w + 3) < 2**31 else np.intp  # half the traffic
    r0, s0 = r.astype(index_type), s.astype(index_type)
    r -= r0
    s -= s0
    fr, fs = r[:, None], s[:, None]  # (N, 1, P): the fractional parts
    pw = w + 3
    padded = np.zeros((n, c, h + 3, pw), dtype=x.dtype)  # faster than np.pad for this
    padded[:, :, 1 : h + 1, 1 : w + 1] = x
    flat = padded.reshape(-1)
    first = (np.arange(n * c, dtype=index_type) * ((h + 3) * pw)).reshape(n, c, 1)  # image starts
    index = first + (r0 * pw + s0)[:, None]  # (N, C, P): the top-left neighbour
    # The other three neighbours: the same indices into views shifted by 1, pw and pw + 1.
    v00, v01, v10, v11 = (np.take(flat[k:], index) for k in (0, 1, pw, pw + 1))
    top = v00 + fs * (v01 - v00)
    out = top + fr * (v10 + fs * (v11 - v10) - top)
    return _cast(out.reshape(n, c, out_h, out_w), x.dtype)


def _about_center(matrix: np.ndarray, shape) -> np.ndarray:
    """The offset that makes ``matrix`` act about the image centre (same-size output)."""
    center = (np.array(shape[-2:], dtype=np.float64) - 1) / 2
    return center - matrix @ center


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    _axis = -1

    def __init__(self, p: float = 0.5):
        self.p = _probability(type(self).__name__, p)

    def draw(self, context: Context, shape=None) -> dict:
        return {"flip": self.uniform(context, 1)[:, 0] < self.p}

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
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

    def __init__(self, max_shift):
        name = type(self).__name__
        for m in _pair(name, "max_shift", max_shift):
            if m < 0 or (isinstance(m, float) and m >= 1):
                raise ValueError(
                    f"{name}: max_shift must be pixels (int >= 0) or a fraction in [0, 1), got {max_shift!r}"
                )
        self.max_shift = max_shift

    def draw(self, context: Context, shape) -> dict:
        limits = [
            m if isinstance(m, (int, np.integer)) else math.floor(m * size)
            for m, size in zip(_pair("", "", self.max_shift), shape[-2:])
        ]
        u = self.uniform(context, 2)
        dy = _integers(u[:, 0], -limits[0], limits[0])
        return {"dy": dy, "dx": _integers(u[:, 1], -limits[1], limits[1])}

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
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

    def __init__(self, size, padding=0):
        name = type(self).__name__
        if min(_pair(name, "size", size)) < 1 or min(_pair(name, "padding", padding)) < 0:
            raise ValueError(
                f"{name}: size must be >= 1 and padding >= 0, got {size!r}, {padding!r}"
            )
        self.size, self.padding = size, padding

    def draw(self, context: Context, shape) -> dict:
        (h, w), (ph, pw) = _pair("", "", self.size), _pair("", "", self.padding)
        room_h, room_w = shape[-2] + 2 * ph - h, shape[-1] + 2 * pw - w
        if room_h < 0 or room_w < 0:
            raise ValueError(
                f"{type(self).__name__}: crop size {(h, w)} is larger than the padded image "
                f"{(shape[-2] + 2 * ph, shape[-1] + 2 * pw)}"
            )
        u = self.uniform(context, 2)  # offsets in the padded image
        return {"top": _integers(u[:, 0], 0, room_h), "left": _integers(u[:, 1], 0, room_w)}

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
        d = self.draw(context, x.shape)
        (h, w), (ph, pw) = _pair("", "", self.size), _pair("", "", self.padding)
        # Index the unpadded image directly: rows outside it read as zero, which is the padding.
        rows = d["top"][:, None] - ph + np.arange(h)
        cols = d["left"][:, None] - pw + np.arange(w)
        return gather(x, rows, cols), y


class RandomRotation(Transform):
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees] (or in
    ``degrees = (a, b)``), counter-clockwise for positive angles, as torchvision; bilinear
    interpolation, zeros outside the source. ``degrees=(90, 90)`` equals ``numpy.rot90``."""

    def __init__(self, degrees):
        name = type(self).__name__
        if not isinstance(degrees, (tuple, list)) and degrees < 0:
            raise ValueError(f"{name}: degrees must be >= 0, got {degrees!r}")
        pair = degrees if isinstance(degrees, (tuple, list)) else (-degrees, degrees)
        self.degrees = _range(name, "degrees", pair)

    def draw(self, context: Context, shape=None) -> dict:
        a, b = self.degrees
        return {"angle": a + (b - a) * self.uniform(context, 1)[:, 0]}

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
        theta = np.deg2rad(self.draw(context)["angle"])
        cos, sin = np.cos(theta), np.sin(theta)
        # Source of an output pixel, in (row, col) coordinates: the inverse rotation (rows point down).
        matrix = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], axis=1)
        return resample(x, matrix, _about_center(matrix, x.shape), x.shape[-2:]), y


class RandomScale(Transform):
    """Zoom each image about its centre by a factor uniform in ``scale`` (> 1 enlarges);
    bilinear, zeros where a shrunken image leaves the frame."""

    def __init__(self, scale=(0.9, 1.1)):
        self.scale = _range(type(self).__name__, "scale", scale, low=1e-6)

    def draw(self, context: Context, shape=None) -> dict:
        a, b = self.scale
        return {"scale": a + (b - a) * self.uniform(context, 1)[:, 0]}

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
        s = self.draw(context)["scale"]
        matrix = np.eye(2) / s[:, None, None]
        return resample(x, matrix, _about_center(matrix, x.shape), x.shape[-2:]), y


def _rectangles(u: np.ndarray, area: float, scale, log_ratio, fits):
    """torchvision's rectangle search, vectorized: ``_ATTEMPTS`` (height, width) candidates per
    sample from uniforms ``u`` (N, 2 * _ATTEMPTS); returns the first that ``fits`` (its height,
    width and target area), and whether one did."""
    target = area * (scale[0] + (scale[1] - scale[0]) * u[:, :_ATTEMPTS])
    aspect = np.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[:, _ATTEMPTS : 2 * _ATTEMPTS])
    h, w = np.rint(np.sqrt(target / aspect)), np.rint(np.sqrt(target * aspect))
    ok = fits(h, w)
    first = np.argmax(ok, axis=1)[:, None]
    pick = lambda a: np.take_along_axis(a, first, axis=1)[:, 0].astype(np.int64)  # noqa: E731
    return pick(h), pick(w), np.take_along_axis(target, first, axis=1)[:, 0], ok.any(axis=1)


class RandomResizedCrop(Transform):
    """Crop a random rectangle and resize it to ``size`` (int or (height, width)), as
    torchvision: area a fraction in ``scale`` of the image, aspect (width / height) log-uniform
    in ``ratio``, 10 tries, else the central crop of the closest allowed aspect. Bilinear with
    edge replication (``align_corners=False``, no antialiasing)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        name = type(self).__name__
        if min(_pair(name, "size", size)) < 1:
            raise ValueError(f"{name}: size must be >= 1, got {size!r}")
        self.size = size
        self.scale = _range(name, "scale", scale, low=0.0)
        self.ratio = _range(name, "ratio", ratio, low=1e-6)

    def draw(self, context: Context, shape) -> dict:
        img_h, img_w = shape[-2:]
        u = self.uniform(context, 2 * _ATTEMPTS + 2)

        def fits(h, w):
            return (h > 0) & (h <= img_h) & (w > 0) & (w <= img_w)

        h, w, _, found = _rectangles(u, img_h * img_w, self.scale, np.log(self.ratio), fits)
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

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
        d = self.draw(context, x.shape)
        out_h, out_w = _pair("", "", self.size)
        top, left, sh, sw = d["top"], d["left"], d["height"] / out_h, d["width"] / out_w
        matrix = np.zeros((len(x), 2, 2))
        matrix[:, 0, 0], matrix[:, 1, 1] = sh, sw
        offset = np.stack(
            [top + 0.5 * sh - 0.5, left + 0.5 * sw - 0.5], axis=1
        )  # half-pixel centres
        box = np.stack([top, top + d["height"] - 1, left, left + d["width"] - 1], axis=1)
        return resample(x, matrix, offset, (out_h, out_w), clamp=box), y


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

    def apply(self, x, y, context):
        noise = self.normal(context, math.prod(x.shape[1:])).reshape(x.shape)
        out = x + (self.std * noise).astype(_float(x.dtype))
        return _cast(np.clip(out, 0, 1) if self.clip else out, x.dtype), y


class RandomErasing(Transform):
    """Cutout: with probability ``p``, set a random rectangle of each image to ``value`` (a
    number, or one per channel), as torchvision's RandomErasing: area a fraction in ``scale`` of
    the image, aspect (height / width) log-uniform in ``ratio``, 10 tries, else no erasing."""

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        name = type(self).__name__
        self.p = _probability(name, p)
        self.scale = _range(name, "scale", scale, low=0.0)
        self.ratio = _range(name, "ratio", ratio, low=1e-6)
        self.value = value

    def draw(self, context: Context, shape) -> dict:
        img_h, img_w = shape[-2:]
        u = self.uniform(context, 2 * _ATTEMPTS + 3)

        def fits(w, h):  # torchvision's aspect is height / width here: the roles swap
            return (h < img_h) & (w < img_w)

        w, h, area, found = _rectangles(u, img_h * img_w, self.scale, np.log(self.ratio), fits)
        return {
            "erase": found & (u[:, -3] < self.p),
            "top": _integers(u[:, -2], 0, img_h - h),
            "left": _integers(u[:, -1], 0, img_w - w),
            "height": h,
            "width": w,
            "area": area / (img_h * img_w),  # the drawn fraction, before rounding to pixels
        }

    def apply(self, x, y, context):
        _images(type(self).__name__, x)
        d = self.draw(context, x.shape)
        rows, cols = np.arange(x.shape[-2]), np.arange(x.shape[-1])
        in_rows = (rows >= d["top"][:, None]) & (rows < (d["top"] + d["height"])[:, None])
        in_cols = (cols >= d["left"][:, None]) & (cols < (d["left"] + d["width"])[:, None])
        mask = (in_rows[:, :, None] & in_cols[:, None, :]) & d["erase"][:, None, None]
        value = np.asarray(self.value, dtype=x.dtype).reshape(-1, 1, 1)
        return np.where(mask[:, None], value, x), y
