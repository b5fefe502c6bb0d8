"""Moving pixels for the augmentations: the integer gather, the bilinear (or nearest) resampler,
and the dispatch to the compiled kernels they share.

Pixel (i, j) has its centre at row i, column j. :func:`gather` and :func:`resample` are the NumPy
references, a few vectorized passes over the whole batch; with ``nabla.kernels`` on (the default),
the transforms of ``augment`` run the kernels of ``nabla/kernels/augment.py`` instead
(:func:`kernel`), which give the same images to float32 rounding (tests/kernels/test_augment.py).
Both compute in the image's float type, float32 for integer images, and round and clip integer
images back to their type (:func:`cast`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ... import kernels
from .base import Context

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from numpy.typing import ArrayLike

# Values (N C H W) from which a kernel runs its parallel copy, one sample per thread at a time.
# Measured on MNIST batches with the 2 cores of docs/benchmarks.md, shared with other work: at
# batch 64 (50,176 values) the parallel copy was slower for every transform (translation 17 ->
# 27 us, noise 76 -> 84, rotation 77 -> 89: waking the second thread costs more than it saves);
# at batch 256, slower or even; at 1024 (802,816 values), as fast or up to 10% faster (the
# second core was busy with other work: with a free one the gain would be larger).
PARALLEL_MIN = 1 << 18


def cast(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input dtype (rounded and clipped to the type's range for integer images)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(dtype, copy=False)


def real(dtype: np.dtype) -> np.dtype:
    """The float type to compute in: the input's own, float32 for integer images."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float32)


def kernel(name: str, x: np.ndarray) -> Callable[..., Any] | None:
    """The compiled kernel ``augment.NAME`` for the batch x, or None where the NumPy reference
    runs: kernels off, or a dtype they do not handle (they take float32, float64 and integers)."""
    handled = x.dtype in (np.float32, np.float64) or (x.dtype.kind in "iu" and x.dtype.isnative)
    if not handled or not kernels.compiled():
        return None
    return kernels.kernel(f"augment.{name}", x.size, parallel_min=PARALLEL_MIN)


@functools.lru_cache(maxsize=32)
def limits(dtype: np.dtype) -> np.ndarray:
    """For the kernels, in the float type of ``dtype``: the [0, 1] clip and the integer range."""
    low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (0, 0)
    out = np.array([0, 1, low, high], dtype=real(dtype))
    out.flags.writeable = False  # shared by every call
    return out


def indices(context: Context) -> np.ndarray:
    """The context's sample indices as the kernels take them: contiguous int64."""
    return np.ascontiguousarray(context.indices, dtype=np.int64)


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


def resample(
    x: np.ndarray,
    matrix: np.ndarray,
    offset: np.ndarray,
    out_shape: tuple[int, ...],
    clamp: ArrayLike | None = None,
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Bilinear resampling of a batch through per-sample affine maps.

    Output pixel (i, j) of sample n reads x[n] at the source point ``matrix[n] @ (i, j) +
    offset[n]`` (row, column coordinates; matrix (N, 2, 2), offset (N, 2)), interpolating its
    four neighbours. A neighbour outside the image counts as 0; with ``clamp`` (N, 4) =
    (row min, row max, col min, col max), source points are first clipped into that box
    instead (edge replication, as ``torch.nn.functional.interpolate``). With
    ``interpolation="nearest"`` the value is that of the neighbour nearest the source point (a
    fraction of 1/2 rounds up): for a resize, torch's ``"nearest-exact"``.
    """
    n, c, h, w = x.shape
    out_h, out_w = out_shape
    f = real(x.dtype)
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
        out = (rows[:, :, None] + cols[:, None, :]).reshape(n, out_h * out_w)
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
    padded = np.zeros((n, c, h + 3, pw), dtype=f)  # in f: uint8 differences would wrap around
    padded[:, :, 1 : h + 1, 1 : w + 1] = x
    flat = padded.reshape(-1)
    first = (np.arange(n * c, dtype=index_type) * ((h + 3) * pw)).reshape(n, c, 1)  # image starts
    index = first + (r0 * pw + s0)[:, None]  # (N, C, P): the top-left neighbour
    if interpolation == "nearest":
        index += pw * (fr >= 0.5) + (fs >= 0.5)
        return cast(np.take(flat, index).reshape(n, c, out_h, out_w), x.dtype)
    # The other three neighbours: the same indices into views shifted by 1, pw and pw + 1.
    v00, v01, v10, v11 = (np.take(flat[k:], index) for k in (0, 1, pw, pw + 1))
    top = v00 + fs * (v01 - v00)
    out = top + fr * (v10 + fs * (v11 - v10) - top)
    return cast(out.reshape(n, c, out_h, out_w), x.dtype)


def resample_compiled(
    run: Callable[..., Any],
    x: np.ndarray,
    interpolation: str,
    maps: tuple,
    out_shape: tuple[int, ...],
) -> np.ndarray:
    """The kernel path of the interpolating transforms: kernel ``maps[0]`` fills each sample's
    affine map from ``maps[1:]`` (in the float type of x, as the reference casts them), then
    ``run`` (``augment.resample``) moves the pixels."""
    n, c = x.shape[:2]
    f = real(x.dtype)
    matrix, offset, clamp = np.empty((n, 2, 2), f), np.empty((n, 2), f), np.empty((n, 4), f)
    kernels.kernel(f"augment.{maps[0]}", n)(*maps[1:], matrix, offset, clamp)
    out = np.empty((n, c, *out_shape), dtype=x.dtype)
    # scratch, one row per thread: pairs of neighbouring values (see the kernel)
    threads = max(1, min(n, kernels.get_num_threads()))
    size = (x.shape[2] + 3) * (x.shape[3] + 3) - 1  # the zero-bordered image, less one
    pairs = np.zeros((threads, size), np.complex64 if f == np.float32 else np.complex128)
    flags = (interpolation == "nearest", x.dtype.kind in "iu", limits(x.dtype))
    run(np.ascontiguousarray(x), out, matrix, offset, clamp, *flags, pairs)
    return out
