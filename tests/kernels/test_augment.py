"""The augmentation kernels (nabla/kernels/augment.py) against the NumPy reference transforms.

Every transform, dtype and odd shape: the kernel path's images equal the reference's to float32
rounding (the geometry is computed in the same float operations; the noise's log, sin and cos
are polynomials within 2 ulp), its draws bit for bit, and the same for any batch split and any
thread count. The polynomials themselves are checked against float64 on their whole range.
"""

from __future__ import annotations

import numpy as np
import pytest

from nabla import kernels
from nabla.data import sampling
from nabla.data.transforms import resample
from nabla.data.transforms.augment import (
    GaussianNoise,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomScale,
    RandomTranslate,
    RandomVerticalFlip,
)
from nabla.data.transforms.base import Compose, Context

pytest.importorskip("numba")

TRANSFORMS = [
    RandomHorizontalFlip(),
    RandomVerticalFlip(p=0.6),
    RandomTranslate(3),
    RandomTranslate((0.4, 0.2)),
    RandomTranslate(30),  # shifts beyond the image: the reference's general gather
    RandomCrop((7, 9), padding=(2, 3)),
    RandomRotation(30),
    RandomRotation((80, 100), interpolation="nearest"),
    RandomScale((0.7, 1.3)),
    RandomScale((0.7, 1.3), interpolation="nearest"),
    RandomResizedCrop((9, 7)),
    RandomResizedCrop((16, 5), scale=(0.3, 1.0), interpolation="nearest"),
    GaussianNoise(0.1),
    GaussianNoise(0.3, clip=True),
    RandomErasing(p=0.7),
    RandomErasing(p=1.0, value=(0.1, 0.5, 0.9), scale=(0.1, 0.5)),
    Compose([RandomTranslate(2), RandomRotation(15), GaussianNoise(0.05), RandomErasing()]),
]
SHAPES = [(6, 1, 12, 10), (4, 3, 9, 14), (1, 1, 28, 28), (0, 3, 8, 8)]
DTYPES = [np.float32, np.float64, np.uint8]


def images(shape, dtype, seed=0):
    x = np.random.default_rng(seed).random(shape)
    return (x * 255).round().astype(dtype) if dtype == np.uint8 else x.astype(dtype)


def run(t, x, context, compiled: bool):
    with kernels.reference(not compiled):
        return t(x, None, context)[0]


def assert_close(kernel, reference):
    """Equal to float32 rounding; integer images to one step (a value at .5 may round apart)."""
    assert kernel.dtype == reference.dtype and kernel.shape == reference.shape
    if reference.dtype.kind == "f":
        np.testing.assert_allclose(kernel, reference, rtol=1e-6, atol=1e-6)
    else:
        diff = np.abs(kernel.astype(np.int64) - reference)
        assert diff.max(initial=0) <= 1 and (diff > 0).sum() <= 1e-3 * diff.size


def applies(t, shape) -> bool:
    """Whether the transform takes images of this shape (crops need room, values a channel each)."""
    value = np.atleast_1d(getattr(t, "value", 0))
    return not (isinstance(t, RandomCrop) and shape[3] < 3) and len(value) in (1, shape[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "t, shape",
    [(t, shape) for t in TRANSFORMS for shape in SHAPES if applies(t, shape)],
    ids=lambda v: str(v) if isinstance(v, tuple) else repr(v),
)
def test_kernel_equals_reference(t, shape, dtype):
    x = images(shape, dtype)
    context = Context(7, 2, np.arange(100, 100 + shape[0]))
    assert_close(run(t, x, context, True), run(t, x, context, False))


def test_noise_is_the_reference_noise_to_a_few_ulp():
    # On zero images the output is the noise alone: relative error, not masked by x.
    x = np.zeros((100, 3, 17, 19), dtype=np.float32)  # odd per sample: one sine unused
    t, context = GaussianNoise(1.0), Context(3, 1, np.arange(100))
    kernel, reference = run(t, x, context, True), run(t, x, context, False)
    np.testing.assert_allclose(kernel, reference, rtol=4e-7, atol=4e-7)
    assert np.abs(kernel).max() > 4  # the tails (u close to 1) are there: 6 expected


@pytest.mark.parametrize(
    "t",
    [t for t in TRANSFORMS if hasattr(t, "draw") and not isinstance(t, GaussianNoise)],
    ids=repr,
)
def test_draws_are_unchanged(t):
    context, shape = Context(11, 5, np.array([3, 1, 4, 1, 5, 9, 2, 6])), (8, 3, 20, 24)
    with kernels.reference(False):
        compiled = t.draw(context, shape)
    with kernels.reference(True):
        reference = t.draw(context, shape)
    assert compiled.keys() == reference.keys()
    for key in reference:
        np.testing.assert_array_equal(compiled[key], reference[key], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("seed", "epoch", "stream"), [(0, 0, 0), (5, 3, 123456), (-1, 2**70, 2**32 - 1)]
)
def test_compiled_uniforms_are_the_reference_bits(seed, epoch, stream, dtype):
    indices = np.array([0, 5, -3, 2**40, 7])
    for draws in (0, 1, 23):
        with kernels.reference(False):
            compiled = sampling.uniforms(seed, epoch, indices, draws, stream, dtype)
        with kernels.reference(True):
            reference = sampling.uniforms(seed, epoch, indices, draws, stream, dtype)
        assert compiled.dtype == reference.dtype == dtype
        np.testing.assert_array_equal(compiled, reference)


@pytest.mark.parametrize("t", TRANSFORMS, ids=repr)
@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_same_sample_same_result_in_any_batch_and_thread_count(t, monkeypatch):
    x = images((20, 3, 11, 13), np.float32)
    whole = run(t, x, Context(1, 4, np.arange(20)), True)
    order = np.array([17, 2, 9, 11, 0])
    np.testing.assert_array_equal(run(t, x[order], Context(1, 4, order), True), whole[order])
    monkeypatch.setattr(resample, "PARALLEL_MIN", 1)  # the parallel copy from the first pixel
    before = kernels.get_num_threads()
    try:
        for threads in (1, 2):
            kernels.set_num_threads(threads)
            np.testing.assert_array_equal(run(t, x, Context(1, 4, np.arange(20)), True), whole)
    finally:
        kernels.set_num_threads(before)


def test_integer_images_are_resampled_in_float():
    # The reference once interpolated uint8 differences, which wrap around below zero.
    x = images((6, 2, 15, 13), np.uint8)
    for compiled in (True, False):
        rotated = run(RandomRotation(25), x, Context(0, 0, np.arange(6)), compiled)
        as_float = run(
            RandomRotation(25), x.astype(np.float32), Context(0, 0, np.arange(6)), compiled
        )
        np.testing.assert_array_equal(rotated, np.clip(np.rint(as_float), 0, 255).astype(np.uint8))


# --- the float32 polynomials of the noise, against float64 ------------------------------------


def ulps(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|approx - exact| in units of the float32 spacing at exact."""
    return np.abs(approx.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32))


def test_log_polynomial_on_every_input():
    numba = pytest.importorskip("numba")
    from nabla.kernels.augment import log_unit

    @numba.njit
    def logs(m, out):
        for i in range(m.size):
            out[i] = log_unit(m[i])

    m = np.arange(1, 1 << 24, dtype=np.uint32)  # every 1 - u but 1, whose log is 0
    out = np.empty(m.size, dtype=np.float32)
    logs(m, out)
    assert ulps(out, np.log(m / 2.0**24)).max() <= 1.0
    logs(np.array([1 << 24], dtype=np.uint32), out[:1])
    assert out[0] == 0


def test_sin_cos_polynomials_on_a_million_angles():
    numba = pytest.importorskip("numba")
    from nabla.kernels.augment import sincos

    @numba.njit
    def both(angle, cos, sin):
        for i in range(angle.size):
            cos[i], sin[i] = sincos(angle[i])

    k = np.linspace(0, (1 << 24) - 1, 1_000_003).astype(np.uint32)  # the noise's angles
    angle = (k.astype(np.float32) * np.float32(2.0**-24)) * np.float32(2 * np.pi)
    cos, sin = np.empty_like(angle), np.empty_like(angle)
    both(angle, cos, sin)
    for approx, exact in (
        (cos, np.cos(angle.astype(np.float64))),
        (sin, np.sin(angle.astype(np.float64))),
    ):
        assert np.abs(approx - exact).max() < 1e-7  # near zero crossings: absolute
        assert ulps(approx, exact)[np.abs(exact) > 1e-3].max() <= 2.0
