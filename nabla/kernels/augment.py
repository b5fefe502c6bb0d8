"""Augmentation as compiled kernels: each transform of ``nabla/data/transforms/augment.py`` in one
pass over the batch, with its per-sample parameters drawn inside the kernel.

**Random numbers.** Draw c of sample ``index`` in a stream keyed by ``key`` (a uint64 made from
seed, epoch and stream by :func:`nabla.data.sampling.stream_key`) is SplitMix64's finalizer of
``(index * draws + c + 1) * golden + key``, wrapping mod 2^64, its top 24 (float32) or 53
(float64) bits scaled into [0, 1): the uint64 arithmetic of ``nabla.data.sampling.uniforms``, so
the same bits. Every constant is a ``numpy.uint64``: numba, as NumPy, makes float64 of a uint64
mixed with an int64.

**Parameters and pixels.** A kernel draws sample n's numbers itself, from ``key`` and
``indices[n]``, and turns them into parameters with the float64 operations of the transform's
``draw``: shifts, flips and angles are the drawn ones exactly. Where ``draw`` rounds the result
of a NumPy transcendental (``exp`` of the log-aspect in the rectangle search), NumPy computes it
and the kernel gets the array. Pixels are computed as in the NumPy reference, in the same order
and in its float type (float32 for integer images), so the two agree to float32 rounding
(tests/kernels/test_augment.py); integer images are rounded and clipped to their type at the end
(``finish``), as the reference's ``_cast``. ``limits`` (that float type) holds the [0, 1] of the
noise's optional clip and the integer type's range.

**Normals.** ``box_muller(k1, k2)`` turns two 24-bit integers (u = k / 2^24) into the pair
sqrt(-2 log(1 - u1)) (cos 2 pi u2, sin 2 pi u2) in float32, as ``GaussianNoise.normal`` does with
NumPy's float32 ``log1p``, ``cos`` and ``sin``. Those would be library calls per element here;
LLVM vectorizes polynomials instead (16 float32 lanes):

* log: 1 - u = m / 2^24 with the integer m = 2^24 - k exact; m = 2^e f with f in [sqrt(1/2),
  sqrt(2)) from its leading zeros, and log f = t - t^2/2 + t^3 P(t), t = f - 1, with the
  polynomial P and the split of ln 2 of Cephes' ``logf`` (S. Moshier).
* sin and cos: the angle is reduced by the nearest multiple j of pi/2 in three parts (Cody and
  Waite: j times each part is exact), then Cephes' ``sinf``/``cosf`` polynomials on [-pi/4,
  pi/4], and the quadrant j swaps and negates them.

Measured against float64 (tests/kernels/test_augment.py, every 24-bit input of the log, a
million angles): the log within 0.83 ulp of the exact value, sin and cos within 1.6 ulp (NumPy's
float32 ``log1p``: 1.15, ``sin``/``cos``: 1.4), so kernel and reference noise differ by a few
ulp. Per value, the noise costs about 1.4 ns here (AMD EPYC, AVX-512): about 12x NumPy's.

Every kernel loops over the samples with ``prange``: :mod:`runtime` runs its parallel copy for
batches of many pixels. One module for helpers and kernels: numba's disk cache keys a kernel on
its own file only, so a helper inlined from another module could go stale when that one changes.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.cpython.unsafe.numbers import leading_zeros
from numba.extending import intrinsic

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_ONE = np.uint64(1)

# float32 constants (numba keeps a global np.float32 a float32 constant)
_F1, _HALF = np.float32(1.0), np.float32(0.5)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 = hi + lo
_LOG_P = (
    np.float32(7.0376836292e-2),
    np.float32(-1.1514610310e-1),
    np.float32(1.1676998740e-1),
    np.float32(-1.2420140846e-1),
    np.float32(1.4249322787e-1),
    np.float32(-1.6668057665e-1),
    np.float32(2.0000714765e-1),
    np.float32(-2.4999993993e-1),
    np.float32(3.3333331174e-1),
)
_TWO_OVER_PI = np.float32(0.63661975)
# pi/2 = _1 + _2 + _3, each with few enough bits that j times it is exact
_PIO2_1 = np.float32(1.5703125)
_PIO2_2 = np.float32(4.837512969970703125e-4)
_PIO2_3 = np.float32(7.54978995489188216e-8)
_SIN = (np.float32(-1.9515295891e-4), np.float32(8.3321608736e-3), np.float32(-1.6666654611e-1))
_COS = (
    np.float32(2.443315711809948e-5),
    np.float32(-1.388731625493765e-3),
    np.float32(4.166664568298827e-2),
)
_TWO_PI = np.float32(2 * np.pi)
_SCALE24 = np.float32(1.0 / (1 << 24))
_S40 = np.uint64(40)  # 64 - 24: the top 24 bits


@njit(inline="always")
def mix(z):
    """SplitMix64's finalizer (uint64 in, uint64 out, wrapping)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always")
def draw_bits(key, index, draws, c):
    """The 64 hashed bits of draw ``c`` (0-based) of sample ``index`` among ``draws`` per sample."""
    z = np.uint64(index) * np.uint64(draws) + np.uint64(c) + _ONE
    return mix(z * GOLDEN + key)


@njit(inline="always")
def uniform53(key, index, draws, c):
    """Draw ``c`` of sample ``index`` as a float64 uniform in [0, 1): the top 53 bits."""
    return np.float64(np.int64(draw_bits(key, index, draws, c) >> np.uint64(11))) * 2.0**-53


def uniforms(key, indices, draws, shift, scale, out):
    """out[i, c] = draw c of sample indices[i]: its top 64 - ``shift`` bits times ``scale``
    (2^-bits, in out's dtype)."""
    for i in prange(len(indices)):
        base = np.uint64(indices[i]) * np.uint64(draws) + _ONE
        for c in range(draws):
            z = mix((base + np.uint64(c)) * GOLDEN + key)
            out[i, c] = out.dtype.type(np.int64(z >> shift)) * scale


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (LLVM's llvm.fma, one instruction): without fastmath numba makes a
    product and a sum of it, and the polynomials below are chains of them."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        real = args[0].type
        fn = builder.module.declare_intrinsic(
            "llvm.fma", [real], ir.FunctionType(real, [real, real, real])
        )
        return builder.call(fn, args)

    return a(a, b, c), codegen


@njit(inline="always")
def log_unit(m):
    """log(m / 2^24) in float32 for an integer 1 <= m <= 2^24 (see the module docstring)."""
    m = np.uint32(m)
    top = np.uint32(31) - leading_zeros(m)  # m = 2^top * (1 + fraction)
    mantissa = np.float32((m << leading_zeros(m)) >> np.uint32(8)) * np.float32(2.0**-23)
    e = np.float32(np.int32(top) - np.int32(24))
    if mantissa > np.float32(1.4142135):  # into [sqrt(1/2), sqrt(2)): t = f - 1 stays small
        mantissa = mantissa * _HALF
        e = e + _F1
    t = mantissa - _F1
    z = t * t
    p = _LOG_P[0]
    for coefficient in _LOG_P[1:]:
        p = fma(p, t, coefficient)
    y = fma(t * z, p, fma(e, _LN2_LO, -_HALF * z))
    return fma(e, _LN2_HI, t + y)


@njit(inline="always")
def sincos(angle):
    """(cos, sin) of a float32 angle in [0, 2 pi] (see the module docstring)."""
    j = np.int32(angle * _TWO_OVER_PI + _HALF)
    fj = np.float32(j)
    r = ((angle - fj * _PIO2_1) - fj * _PIO2_2) - fj * _PIO2_3
    z = r * r
    s = fma(r * z, fma(fma(_SIN[0], z, _SIN[1]), z, _SIN[2]), r)
    c = fma(z * z, fma(fma(_COS[0], z, _COS[1]), z, _COS[2]), fma(-_HALF, z, _F1))
    # quadrant j: (cos, sin) = (c, s), (-s, c), (-c, -s), (s, -c); as selects and sign
    # multiplications (exact), which vectorize where branches would not
    swap = (j & 1) == 1
    cos = (s if swap else c) * np.float32(1 - ((j + 1) & 2))
    sin = (c if swap else s) * np.float32(1 - (j & 2))
    return cos, sin


@njit(inline="always")
def box_muller(k1, k2):
    """Two float32 normals from two 24-bit integers: radius from k1, angle from k2."""
    radius = np.sqrt(np.float32(-2.0) * log_unit(np.uint32(1 << 24) - np.uint32(k1)))
    u2 = np.float32(k2) * _SCALE24
    cos, sin = sincos(u2 * _TWO_PI)
    return radius * cos, radius * sin


# --- the transforms ---------------------------------------------------------------------------


@njit(inline="always")
def finish(v, low, high, clip, integer):
    """v clipped to [low[0], high[0]] (with ``clip``), then rounded and clipped to the integer
    range [low[1], high[1]] (with ``integer``); NaN stays NaN, as np.clip. Selects, no branches
    on data: a loop that calls it still vectorizes."""
    if clip:
        v = low[0] if v < low[0] else v
        v = high[0] if v > high[0] else v
    if integer:
        v = np.rint(v)
        v = low[1] if v < low[1] else v
        v = high[1] if v > high[1] else v
    return v


def flip(x, out, indices, key, p, rows):
    """out[n] = x[n] mirrored (rows: top-bottom, else left-right) where uniform(n) < p."""
    n, channels, h, w = x.shape
    for s in prange(n):
        mirror = uniform53(key, indices[s], 1, 0) < p
        for c in range(channels):
            for i in range(h):
                source = x[s, c, h - 1 - i if mirror and rows else i]
                row = out[s, c, i]  # copies through 1-D views vectorize; slices cost calls
                if mirror and not rows:
                    for j in range(w):
                        row[j] = source[np.uint64(w - 1 - j)]  # unsigned: no wraparound test
                else:
                    for j in range(w):
                        row[j] = source[j]


def shift(x, out, indices, key, count_y, low_y, count_x, low_x, sign, base_y, base_x):
    """out[n, :, i, j] = x[n, :, i + oy, j + ox], zero outside x, with the offsets
    o = sign * (floor(u count) + low) + base from the sample's two uniforms (translate: the shift
    d = floor(u (2m + 1)) - m read back, sign -1; crop: the window's corner minus the padding)."""
    n, channels, h, w = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    zero = out.dtype.type(0)
    for s in prange(n):
        dy = np.int64(np.floor(uniform53(key, indices[s], 2, 0) * count_y)) + low_y
        dx = np.int64(np.floor(uniform53(key, indices[s], 2, 1) * count_x)) + low_x
        oy, ox = sign * dy + base_y, sign * dx + base_x
        j_lo, j_hi = min(max(-ox, 0), out_w), max(min(w - ox, out_w), 0)  # columns inside x
        j_hi = max(j_hi, j_lo)
        for c in range(channels):
            for i in range(out_h):
                row = out[s, c, i]
                if not 0 <= i + oy < h:
                    for j in range(out_w):
                        row[j] = zero
                    continue
                for j in range(j_lo):
                    row[j] = zero
                inside, source = row[j_lo:j_hi], x[s, c, i + oy, j_lo + ox : j_hi + ox]
                for j in range(j_hi - j_lo):  # indices from 0: no offset, no sign to check
                    inside[j] = source[j]
                for j in range(j_hi, out_w):
                    row[j] = zero


def affine_maps(indices, key, low, high, rotate, shape, matrix, offset, clamp):
    """The maps of RandomRotation (``rotate``: angle uniform in [low, high] degrees) or
    RandomScale (factor uniform in [low, high]) about the centre of images of ``shape``: matrix
    (N, 2, 2), offset (N, 2), and clamp (N, 4) = (-1, H, -1, W), beyond which every neighbour is
    outside the image."""
    h, w = shape[2], shape[3]
    center = ((h - 1) / 2, (w - 1) / 2)
    for s in prange(len(indices)):
        v = low + (high - low) * uniform53(key, indices[s], 1, 0)
        if rotate:
            theta = np.deg2rad(v)
            cos, sin = np.cos(theta), np.sin(theta)
            m00, m01, m10, m11 = cos, sin, -sin, cos
        else:
            m00, m01, m10, m11 = 1.0 / v, 0.0 / v, 0.0 / v, 1.0 / v
        matrix[s, 0, 0], matrix[s, 0, 1], matrix[s, 1, 0], matrix[s, 1, 1] = m00, m01, m10, m11
        offset[s, 0] = center[0] - (m00 * center[0] + m01 * center[1])
        offset[s, 1] = center[1] - (m10 * center[0] + m11 * center[1])
        clamp[s, 0], clamp[s, 1], clamp[s, 2], clamp[s, 3] = -1, h, -1, w


def crop_maps(top, left, height, width, out_h, out_w, matrix, offset, clamp):
    """The maps of RandomResizedCrop: the (top, left, height, width) box resized to (out_h, out_w)
    with half-pixel centres, source points clamped into the box."""
    for s in prange(len(top)):
        sh, sw = height[s] / out_h, width[s] / out_w
        matrix[s, 0, 0], matrix[s, 0, 1], matrix[s, 1, 0], matrix[s, 1, 1] = sh, 0.0, 0.0, sw
        offset[s, 0], offset[s, 1] = top[s] + 0.5 * sh - 0.5, left[s] + 0.5 * sw - 0.5
        clamp[s, 0], clamp[s, 1] = top[s], top[s] + height[s] - 1
        clamp[s, 2], clamp[s, 3] = left[s], left[s] + width[s] - 1


def resample(x, out, matrix, offset, clamp, nearest, integer, limits, pairs):
    """Output pixel (i, j) of sample n reads x[n] at (matrix[n] (i, j) + offset[n]) clipped into
    clamp[n] = (row min, row max, col min, col max): bilinear between its four neighbours, or
    the nearest of them (a fraction >= 1/2 rounds up). As the reference, each image is copied
    into a buffer with a zero border (one row/column before, two after) and the clipped
    coordinates are shifted by +1, so that every neighbour is inside the buffer.

    In passes over each image, so that most vectorize (LLVM vectorizes loops over whole images
    or over one row's views, not the body of a pixel loop that loads at computed indices):

    1. the source points: coordinates, fractions, the buffer index of the top-left neighbour
       (once per sample, for all channels);
    2. ``pairs`` (complex, one zeroed row per thread) = (buffer[k], buffer[k + 1]) of the
       zero-bordered buffer, written from the image's rows: a neighbour and its right-hand
       one in one load;
    3. the neighbours, two loads per pixel at computed indices, which stay scalar: the cost;
    4. the interpolation and the cast.

    The samples are split between the rows of ``pairs``: thread t does samples t, t + T, ..."""
    n, channels, h, w = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    size, pw, chunks = out_h * out_w, w + 3, pairs.shape[0]
    real = clamp.dtype.type
    half, one = real(0.5), real(1)
    low, high = (limits[0], limits[2]), (limits[1], limits[3])
    rows, cols = np.empty(size, dtype=clamp.dtype), np.empty(size, dtype=clamp.dtype)
    for i in range(out_h):  # (i, j) of every output pixel, as floats
        for j in range(out_w):
            rows[i * out_w + j], cols[i * out_w + j] = real(i), real(j)
    for chunk in prange(chunks):
        pair = pairs[chunk]  # the buffer's (h + 3) rows of pw, less the last value
        values = pair.view(clamp.dtype)  # pair k: values 2k and 2k + 1
        index = np.empty(size, dtype=np.uint32)
        fr, fq = np.empty(size, dtype=clamp.dtype), np.empty(size, dtype=clamp.dtype)
        top_pair, bottom_pair = np.empty(size, dtype=pairs.dtype), np.empty(size, dtype=pairs.dtype)
        for s in range(chunk, n, chunks):
            m00, m01, m10, m11 = matrix[s, 0, 0], matrix[s, 0, 1], matrix[s, 1, 0], matrix[s, 1, 1]
            t0, t1 = offset[s, 0], offset[s, 1]
            lo_r, hi_r, lo_c, hi_c = clamp[s, 0], clamp[s, 1], clamp[s, 2], clamp[s, 3]
            for p in range(size):  # 1., in the reference's order: (m00 i + t0) + m01 j
                r = (m00 * rows[p] + t0) + m01 * cols[p]
                q = (m10 * rows[p] + t1) + m11 * cols[p]
                r = lo_r if r < lo_r else r
                r = (hi_r if r > hi_r else r) + one
                q = lo_c if q < lo_c else q
                q = (hi_c if q > hi_c else q) + one
                r0, q0 = np.uint32(r), np.uint32(q)  # r, q >= 0: truncation is floor
                fr[p], fq[p] = r - real(r0), q - real(q0)
                index[p] = r0 * np.uint32(pw) + q0
            if nearest:
                for p in range(size):
                    index[p] += np.uint32((pw if fr[p] >= half else 0) + (fq[p] >= half))
            for c in range(channels):
                for i in range(h):  # 2., row i + 1 of the buffer; its borders stay 0
                    row, source = values[2 * (i + 1) * pw : 2 * (i + 2) * pw], x[s, c, i]
                    for j in range(w):  # buffer value j + 1: right of pair j, left of j + 1
                        row[2 * j + 1] = source[j]
                        row[2 * j + 2] = source[j]
                result = out[s, c].reshape(size)
                if nearest:
                    for p in range(size):
                        result[p] = finish(pair[index[p]].real, low, high, False, integer)
                    continue
                for p in range(size):  # 3.
                    top_pair[p], bottom_pair[p] = pair[index[p]], pair[index[p] + np.uint32(pw)]
                for p in range(size):  # 4.
                    v00, v01 = top_pair[p].real, top_pair[p].imag
                    v10, v11 = bottom_pair[p].real, bottom_pair[p].imag
                    top = v00 + fq[p] * (v01 - v00)
                    value = top + fr[p] * (v10 + fq[p] * (v11 - v10) - top)
                    result[p] = finish(value, low, high, False, integer)


def noise(x, out, indices, key, std, clip, integer, limits):
    """out = x + std * z for x of shape (N, D), with z the normals of GaussianNoise.normal: for
    k = ceil(D / 2), value m < k is r cos(a) and value k + m is r sin(a) of pair m, whose radius
    and angle come from the sample's uniforms m and k + m (24 bits each). Computed in x's float
    type (float32 for uint8), optionally clipped to [0, 1], then cast as the reference does.
    The normals go through two scratch rows: loops that each write one array vectorize."""
    n, size = x.shape
    k = (size + 1) // 2
    low, high = (limits[0], limits[2]), (limits[1], limits[3])  # loaded once, outside the loops
    for s in prange(n):
        z_cos, z_sin = np.empty(k, dtype=np.float32), np.empty(k, dtype=np.float32)
        # uniform c hashes (counter c) * golden + key, counter = index * 2k + c + 1: as a sum
        # that grows by golden per draw, one multiplication fewer per hash
        first = (np.uint64(indices[s]) * np.uint64(2 * k) + _ONE) * GOLDEN + key
        for m in range(k):
            k1 = mix(first + np.uint64(m) * GOLDEN) >> _S40
            k2 = mix(first + np.uint64(k + m) * GOLDEN) >> _S40
            z_cos[m], z_sin[m] = box_muller(k1, k2)
        if clip or integer:
            for m in range(k):
                out[s, m] = finish(x[s, m] + std * z_cos[m], low, high, clip, integer)
            for m in range(size - k):
                out[s, k + m] = finish(x[s, k + m] + std * z_sin[m], low, high, clip, integer)
        else:  # the common case, as its own loops (faster than LLVM's unswitching of the above)
            for m in range(k):
                out[s, m] = x[s, m] + std * z_cos[m]
            for m in range(size - k):
                out[s, k + m] = x[s, k + m] + std * z_sin[m]


def erase(x, out, u, aspect, area, scale_low, scale_high, p, value):
    """RandomErasing: out = x with a rectangle of value[c] in channel c (value[0] in all, for
    one value). Per sample, torchvision's
    search over the attempts a (columns of ``aspect`` = exp of the drawn log-aspect): target area
    A = area (low + (high - low) u[a]), h = rint(sqrt(A aspect)), w = rint(sqrt(A / aspect));
    the first that fits (h < H, w < W) is erased if u[-3] < p, at top = floor(u[-2] (H - h + 1)),
    left = floor(u[-1] (W - w + 1))."""
    n, channels, img_h, img_w = x.shape
    attempts, draws, size = aspect.shape[1], u.shape[1], channels * img_h * img_w
    for s in prange(n):
        source, copy = x[s].reshape(size), out[s].reshape(size)
        for k in range(size):  # a loop over 1-D views: vectorized, where out[s] = x[s] is not
            copy[k] = source[k]
        h = w = 0
        found = False
        for a in range(attempts):
            target = area * (scale_low + (scale_high - scale_low) * u[s, a])
            h = np.int64(np.rint(np.sqrt(target * aspect[s, a])))
            w = np.int64(np.rint(np.sqrt(target / aspect[s, a])))
            if h < img_h and w < img_w:
                found = True
                break
        if not found or not u[s, draws - 3] < p:
            continue
        top = np.int64(np.floor(u[s, draws - 2] * (img_h - h + 1)))
        left = np.int64(np.floor(u[s, draws - 1] * (img_w - w + 1)))
        for c in range(channels):
            out[s, c, top : top + h, left : left + w] = value[c if len(value) > 1 else 0]
