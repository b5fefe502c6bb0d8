"""Random numbers per sample: a counter-based generator keyed by (seed, epoch, sample index).

Augmentation must give sample i the same random transformation in epoch e whatever the batch
size, the batch order or the other samples in its batch. A NumPy ``Generator`` per sample would
do it at ~10 us each; instead every number is a hash of its coordinates (seed, epoch, index,
draw number), computed for a whole batch at once with integer arithmetic on uint64 arrays
(SplitMix64's finalizer, Steele, Lea and Flood 2014). The same coordinates always give the same
number; different coordinates give numbers that pass as independent uniforms.

With the compiled kernels on (``nabla.kernels``), :func:`uniforms` runs the same arithmetic in one
compiled loop (``nabla/kernels/augment.py``): the same bits, without NumPy's per-call overhead on
small arrays (2 us instead of 30 for a batch of 64); the NumPy code below is the reference.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .. import kernels

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijection on uint64 that scrambles every bit (wraps mod 2^64).
    Works in place on arrays (the caller's array is consumed), so it allocates one temporary."""
    z = np.asarray(z, dtype=np.uint64)
    for shift, multiplier in ((30, _M1), (27, _M2)):
        z ^= z >> np.uint64(shift)
        z *= multiplier
    z ^= z >> np.uint64(31)
    return z


@functools.lru_cache(maxsize=256)
def stream_key(seed: int, epoch: int, stream: int = 0) -> np.uint64:
    """The key of (seed, epoch, stream) that :func:`uniforms` adds to every counter, computed
    with Python integers (a few Python operations, against ~10 us for NumPy uint64 scalars)."""

    def mix(z: int) -> int:  # _mix on one number, mod 2^64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    seed, epoch, stream = int(seed), int(epoch), int(stream)  # NumPy integers would overflow
    key = mix(((seed & _MASK) * int(_GOLDEN) + stream) & _MASK)
    return np.uint64(mix(key ^ (((epoch & _MASK) * int(_GOLDEN)) & _MASK)))


def uniforms(
    seed: int,
    epoch: int,
    indices: ArrayLike,
    draws: int,
    stream: int = 0,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """Array (len(indices), draws) of floats in [0, 1): draw k of sample ``indices[i]``.

    ``stream`` separates independent consumers (each augmentation has its own); ``dtype`` float32
    gives 24-bit uniforms, cheaper where that resolution is enough (noise).

    >>> a = uniforms(0, 1, [5, 9], 3)
    >>> b = uniforms(0, 1, [9], 3)   # sample 9 alone, in another batch: the same numbers
    >>> bool((a[1] == b[0]).all())
    True
    """
    dtype, seed, epoch = np.dtype(dtype), int(seed), int(epoch)  # NumPy integers: as Python's
    if dtype in (np.float32, np.float64) and kernels.compiled():
        index = np.ascontiguousarray(indices, dtype=np.int64)
        out = np.empty((len(index), draws), dtype=dtype)
        bits = 24 if dtype == np.float32 else 53
        kernels.kernel("augment.uniforms", out.size)(
            stream_key(seed, epoch, stream),
            index,
            draws,
            np.uint64(64 - bits),
            dtype.type(1.0 / (1 << bits)),
            out,
        )
        return out
    with np.errstate(over="ignore"):
        key = _mix(np.array(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + np.uint64(stream)))
        key = _mix(key ^ (np.uint64(epoch & 0xFFFFFFFFFFFFFFFF) * _GOLDEN))
        index = np.asarray(indices, dtype=np.int64).astype(np.uint64)
        # SplitMix64 keyed by (seed, epoch, stream): number c of the stream is mix(key + c * phi)
        z = index[:, None] * np.uint64(draws) + np.arange(1, draws + 1, dtype=np.uint64)[None, :]
        z *= _GOLDEN
        z += key
        z = _mix(z)
    bits = 24 if np.dtype(dtype) == np.float32 else 53  # as many as the float's mantissa holds
    z >>= np.uint64(64 - bits)  # the top bits, as an int64 (converts to float faster than uint64)
    out = z.view(np.int64).astype(dtype)
    out *= 1.0 / (1 << bits)
    return out


def normals(seed: int, epoch: int, indices: ArrayLike, draws: int, stream: int = 0) -> np.ndarray:
    """Standard normal draws by the Box-Muller transform of two uniforms per draw."""
    u = uniforms(seed, epoch, indices, 2 * draws, stream)
    radius = np.sqrt(-2.0 * np.log1p(-u[:, :draws]))  # log1p(-u): u may be 0, never 1
    return radius * np.cos(2 * np.pi * u[:, draws:])
