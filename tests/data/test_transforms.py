"""Augmentation and preprocessing: geometry, statistics, determinism, dtypes and errors."""

import numpy as np
import pytest

import nabla as nb
from nabla.data import ArrayDataset, DataLoader
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
from nabla.data.transforms.mixing import CutMix, Mixup
from nabla.data.transforms.preprocess import MinMaxScale, OneHot, Standardize


def images(n=8, c=1, h=12, w=10, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(dtype)


def ctx(indices, epoch=0, seed=0):
    return Context(seed, epoch, np.asarray(indices))


def ramp(n, h, w, a=0.7, b=-1.3):
    """Images f(r, c) = a r + b c: bilinear interpolation reproduces them exactly."""
    r, c = np.indices((h, w), dtype=np.float64)
    return np.broadcast_to(a * r + b * c, (n, 1, h, w)).copy(), (lambda r, c: a * r + b * c)


PER_SAMPLE = [
    RandomHorizontalFlip(),
    RandomVerticalFlip(),
    RandomTranslate(3),
    RandomCrop(8, padding=2),
    RandomRotation(30),
    RandomScale((0.8, 1.2)),
    RandomResizedCrop((9, 7)),
    GaussianNoise(0.1),
    RandomErasing(p=0.7),
]


# --- flips, shifts, crops --------------------------------------------------------------------


@pytest.mark.parametrize("flip", [RandomHorizontalFlip(p=1.0), RandomVerticalFlip(p=1.0)])
def test_flip_twice_is_identity_and_mirrors(flip):
    x = images()
    once, _ = flip(x)
    axis = -2 if isinstance(flip, RandomVerticalFlip) else -1
    np.testing.assert_array_equal(once, np.flip(x, axis))
    np.testing.assert_array_equal(flip(once)[0], x)


def test_flip_probability_picks_samples():
    x, t = images(n=400, h=4, w=4), RandomHorizontalFlip(p=0.3)
    flipped = t.draw(Context.default(len(x)))["flip"]
    out, _ = t(x)
    np.testing.assert_array_equal(out[flipped], x[flipped][..., ::-1])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])
    assert abs(flipped.mean() - 0.3) < 0.08  # 400 Bernoulli(0.3): standard error 0.023


@pytest.mark.parametrize("max_shift", [3, 0.3])
def test_translate_moves_a_lit_pixel_by_the_drawn_offset(max_shift):
    x = np.zeros((50, 1, 11, 11), dtype=np.float32)
    x[:, 0, 5, 5] = 1.0
    t, context = RandomTranslate(max_shift), ctx(np.arange(50))
    d = t.draw(context, x.shape)
    out, _ = t(x, None, context)
    for n in range(50):
        (r,), (c,) = np.nonzero(out[n, 0])
        assert (r - 5, c - 5) == (d["dy"][n], d["dx"][n])
    assert np.abs(d["dy"]).max() == 3 and len(np.unique(d["dx"])) == 7  # the whole range is used


def test_translate_fills_with_zeros():
    x = np.ones((20, 2, 6, 6), dtype=np.float32)
    t = RandomTranslate(2)
    d = t.draw(Context.default(20), x.shape)
    out, _ = t(x)
    np.testing.assert_array_equal(
        out.sum(axis=(1, 2, 3)), 2 * (6 - np.abs(d["dy"])) * (6 - np.abs(d["dx"]))
    )


def test_random_crop_full_size_is_identity():
    x = images()
    np.testing.assert_array_equal(RandomCrop((12, 10))(x)[0], x)


def test_random_crop_windows_of_the_padded_image():
    x, t = images(n=30, c=3), RandomCrop((8, 9), padding=(2, 3))
    d = t.draw(Context.default(30), x.shape)
    out, _ = t(x)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (3, 3)))
    for n in range(30):
        top, left = d["top"][n], d["left"][n]
        np.testing.assert_array_equal(out[n], padded[n, :, top : top + 8, left : left + 9])
    assert d["top"].max() <= 16 - 8 and d["left"].max() <= 16 - 9


def test_random_crop_too_large_names_the_sizes():
    with pytest.raises(ValueError, match=r"\(13, 5\).*\(12, 10\)"):
        RandomCrop((13, 5))(images())


# --- interpolating geometry ------------------------------------------------------------------


@pytest.mark.parametrize(("degrees", "k"), [(90, 1), (-90, -1), (180, 2)])
def test_rotation_by_right_angles_equals_rot90(degrees, k):
    x = images(n=3, c=2, h=9, w=9)
    out, _ = RandomRotation((degrees, degrees))(x)
    np.testing.assert_allclose(out, np.rot90(x, k, axes=(2, 3)), atol=1e-5)


def test_rotation_resamples_a_ramp_exactly_away_from_the_border():
    x, f = ramp(6, 15, 15)
    t = RandomRotation(40)
    theta = np.deg2rad(t.draw(Context.default(6))["angle"])
    out, _ = t(x)
    r, c = np.indices((15, 15)) - 7.0
    for n, a in enumerate(theta):
        # Counter-clockwise on screen: output (r, c) reads the source rotated back.
        src_r = 7 + np.cos(a) * r + np.sin(a) * c
        src_c = 7 - np.sin(a) * r + np.cos(a) * c
        inside = (src_r >= 0) & (src_r <= 14) & (src_c >= 0) & (src_c <= 14)
        np.testing.assert_allclose(out[n, 0][inside], f(src_r, src_c)[inside], atol=1e-9)
        assert (out[n, 0][(src_r < -1) | (src_r > 15)] == 0).all()  # zeros outside


def test_scale_one_is_identity_and_zoom_is_about_the_center():
    x = images(dtype=np.float64)
    np.testing.assert_array_equal(RandomScale((1.0, 1.0))(x)[0], x)
    ramp_x, f = ramp(4, 11, 11)
    t = RandomScale((1.1, 1.6))
    s = t.draw(Context.default(4))["scale"]
    out, _ = t(ramp_x)
    grid = np.indices((11, 11)) - 5.0
    for n in range(4):  # zoom in: every output pixel reads inside the image
        np.testing.assert_allclose(out[n, 0], f(5 + grid[0] / s[n], 5 + grid[1] / s[n]), atol=1e-9)


def test_resized_crop_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    x, t = images(n=12, c=2, h=9, w=11), RandomResizedCrop((10, 12))
    d = t.draw(Context.default(12), x.shape)
    out, _ = t(x)
    for n in range(12):
        top, left, h, w = (int(d[k][n]) for k in ("top", "left", "height", "width"))
        crop = torch.from_numpy(x[n : n + 1, :, top : top + h, left : left + w])
        ref = torch.nn.functional.interpolate(
            crop, size=(10, 12), mode="bilinear", align_corners=False
        )
        np.testing.assert_allclose(out[n], ref.numpy()[0], atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, -1])
def test_nearest_rotation_by_right_angles_equals_rot90_exactly(k):
    x = images(n=3, c=2, h=9, w=9)
    out, _ = RandomRotation((90 * k, 90 * k), interpolation="nearest")(x)
    np.testing.assert_array_equal(out, np.rot90(x, k, axes=(2, 3)))


@pytest.mark.parametrize(
    "t",
    [RandomRotation(40, interpolation="nearest"), RandomScale((0.6, 1.4), interpolation="nearest")],
    ids=repr,
)
def test_nearest_copies_pixels_or_zeros(t):
    x = images(n=10, c=3, h=13, w=11)
    out, _ = t(x)
    for n in range(10):
        for c in range(3):
            assert np.isin(out[n, c], np.append(x[n, c], 0)).all()
    assert (out == 0).any() and (out != 0).mean() > 0.5


def test_nearest_resized_crop_matches_torch_nearest_exact():
    torch = pytest.importorskip("torch")
    x, t = images(n=12, c=2, h=9, w=11), RandomResizedCrop((10, 12), interpolation="nearest")
    d = t.draw(Context.default(12), x.shape)
    out, _ = t(x)
    for n in range(12):
        top, left, h, w = (int(d[k][n]) for k in ("top", "left", "height", "width"))
        crop = torch.from_numpy(x[n : n + 1, :, top : top + h, left : left + w])
        ref = torch.nn.functional.interpolate(crop, size=(10, 12), mode="nearest-exact")
        np.testing.assert_array_equal(out[n], ref.numpy()[0])


def test_interpolation_must_be_known():
    rotation, crop = lambda **kw: RandomRotation(10, **kw), lambda **kw: RandomResizedCrop(8, **kw)
    for make in (rotation, RandomScale, crop):
        with pytest.raises(ValueError, match="interpolation must be one of"):
            make(interpolation="bicubic")


def test_resized_crop_rectangles_follow_scale_and_ratio():
    t = RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    d = t.draw(Context.default(500), (500, 1, 40, 40))
    h, w = d["height"], d["width"]
    assert (d["top"] >= 0).all() and (d["top"] + h <= 40).all() and (d["left"] + w <= 40).all()
    # The drawn area and aspect, up to rounding each side to whole pixels.
    assert ((h + 0.5) * (w + 0.5) >= 0.2 * 1600).all() and (
        (h - 0.5) * (w - 0.5) <= 0.6 * 1600
    ).all()
    assert ((w + 0.5) / (h - 0.5) >= 0.5).all() and ((w - 0.5) / (h + 0.5) <= 2.0).all()
    x = images(h=40, w=40)  # the whole image, resized to its own size
    np.testing.assert_array_equal(RandomResizedCrop(40, scale=(1, 1), ratio=(1, 1))(x)[0], x)


# --- noise and erasing -----------------------------------------------------------------------


def test_gaussian_noise_has_the_requested_std():
    x = np.full((500, 1, 28, 28), 0.5, dtype=np.float32)
    noise = GaussianNoise(0.1)(x)[0] - 0.5
    # 392,000 values: the standard error of the std is 0.1 / sqrt(2 n) = 1.1e-4, of the mean
    # 1.6e-4; the tolerances are about 9 and 6 standard errors.
    assert abs(noise.std() - 0.1) < 1e-3
    assert abs(noise.mean()) < 1e-3
    per_sample = noise.reshape(500, -1)
    assert abs(np.corrcoef(per_sample[:-1].ravel(), per_sample[1:].ravel())[0, 1]) < 0.01


def test_gaussian_noise_clip():
    out, _ = GaussianNoise(0.5, clip=True)(images())
    assert out.min() >= 0 and out.max() <= 1 and out.dtype == np.float32


def test_erasing_covers_the_drawn_area_with_value():
    x = np.ones((300, 2, 20, 30), dtype=np.float32)
    t, context = RandomErasing(p=1.0, value=-1.0), Context.default(300)
    d = t.draw(context, x.shape)
    out, _ = t(x)
    erased = (out == -1).all(axis=1).sum(axis=(1, 2))
    assert d["erase"].all() and ((out == -1) | (out == 1)).all()
    np.testing.assert_array_equal(erased, d["height"] * d["width"])
    # h = round(sqrt(A r)), w = round(sqrt(A / r)): h w differs from A by at most (h + w) / 2 + 1/4.
    slack = (d["height"] + d["width"]) / 2 + 0.75
    assert (np.abs(erased - d["area"] * 600) <= slack).all()
    assert (d["area"] >= 0.02).all() and (d["area"] <= 0.33).all()


def test_erasing_probability_and_per_channel_value():
    x = np.ones((200, 3, 10, 10), dtype=np.float32)
    t = RandomErasing(p=0.4, value=(0.1, 0.2, 0.3))
    d = t.draw(Context.default(200), x.shape)
    out, _ = t(x)
    changed = (out != 1).any(axis=(1, 2, 3))
    np.testing.assert_array_equal(changed, d["erase"] & (d["height"] * d["width"] > 0))
    assert 0.25 < d["erase"].mean() < 0.55
    n = np.flatnonzero(changed)[0]
    np.testing.assert_allclose(np.unique(out[n], axis=None), [0.1, 0.2, 0.3, 1.0], rtol=1e-6)


# --- mixing ----------------------------------------------------------------------------------


def test_mixup_images_are_convex_combinations_and_targets_sum_to_one():
    x, y = images(n=16, c=3), np.arange(16) % 5
    t, context = Mixup(alpha=0.4, num_classes=5), ctx(np.arange(100, 116))
    d = t.draw(context)
    mx, my = t(x, y, context)
    lam, j = d["lam"], d["partner"]
    assert (j != np.arange(16)).all() and sorted(j) == list(range(16))
    assert ((lam >= 0) & (lam <= 1)).all()
    np.testing.assert_allclose(
        mx, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[j], atol=1e-6
    )
    assert my.dtype == np.float32 and my.shape == (16, 5)
    np.testing.assert_allclose(my.sum(axis=1), 1, atol=1e-6)
    expected = lam[:, None] * np.eye(5)[y] + (1 - lam[:, None]) * np.eye(5)[y[j]]
    np.testing.assert_allclose(my, expected, atol=1e-6)


def test_mixup_targets_feed_cross_entropy():
    from nabla.nn import functional as F

    _, my = Mixup(num_classes=4)(images(n=6), np.arange(6) % 4)
    loss = F.cross_entropy(nb.tensor(np.zeros((6, 4))), nb.tensor(my))
    assert np.isclose(float(loss.numpy()), np.log(4), atol=1e-5)


def test_cutmix_lambda_is_the_unpasted_area():
    n = 40
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 2, 16, 20)).copy()
    y = np.arange(n) % 10
    t, context = CutMix(alpha=1.0, num_classes=10), ctx(np.arange(n))
    d = t.draw(context, x.shape)
    out, soft = t(x, y, context)
    own = (out == np.arange(n)[:, None, None, None]).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(own, d["lam"])
    pasted = out != np.arange(n)[:, None, None, None]
    np.testing.assert_array_equal(
        np.where(pasted, out, d["partner"][:, None, None, None]),
        np.broadcast_to(d["partner"][:, None, None, None], out.shape),
    )
    expected = (
        d["lam"][:, None] * np.eye(10)[y] + (1 - d["lam"][:, None]) * np.eye(10)[y[d["partner"]]]
    )
    np.testing.assert_allclose(soft, expected, atol=1e-6)
    assert (d["lam"] < 1).any() and (d["lam"] > 0).any()


def test_mixing_is_reproducible_per_batch_and_needs_labels():
    x, y = images(n=6), np.arange(6)
    for t in (Mixup(num_classes=6), CutMix(num_classes=6)):
        a, b = t(x, y, ctx(np.arange(6))), t(x, y, ctx(np.arange(6)))
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.array_equal(a[0], t(x, y, ctx(np.arange(6), epoch=1))[0])
        with pytest.raises(ValueError, match="num_classes"):
            type(t)()(x, y)
        with pytest.raises(ValueError, match="targets"):
            t(x, None)
        with pytest.raises(ValueError, match=r"labels must be in \[0, 6\)"):
            t(x, y + 1)
    soft = OneHot(6)(x, y)[1]  # probabilities pass through, mixed again
    np.testing.assert_allclose(Mixup()(x, soft)[1].sum(axis=1), 1, atol=1e-6)


# --- determinism, dtypes, shapes -------------------------------------------------------------


@pytest.mark.parametrize("t", PER_SAMPLE, ids=lambda t: type(t).__name__)
def test_same_sample_same_augmentation_in_any_batch(t):
    x = images(n=20, c=2)
    whole, _ = t(x, None, ctx(np.arange(20), epoch=3))
    order = np.array([17, 2, 9, 11, 0])  # another batch size and order
    part, _ = t(x[order], None, ctx(order, epoch=3))
    np.testing.assert_array_equal(part, whole[order])
    other, _ = t(x, None, ctx(np.arange(20), epoch=4))
    assert not np.array_equal(other, whole)


def test_loader_batch_size_does_not_change_augmentation():
    ds = ArrayDataset(images(n=30), np.arange(30))
    pipeline = Compose(
        [RandomTranslate(2), RandomRotation(15), GaussianNoise(0.1), RandomErasing()]
    )
    by_index = []
    for size in (4, 13):
        loader = DataLoader(ds, batch_size=size, shuffle=True, seed=5, transform=pipeline)
        out = np.zeros((30, 1, 12, 10), dtype=np.float32)
        for xb, yb in loader:
            out[yb.numpy()] = xb.numpy()
        by_index.append(out)
    np.testing.assert_array_equal(by_index[0], by_index[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize(
    "t", PER_SAMPLE + [Mixup(num_classes=8), CutMix(num_classes=8)], ids=lambda t: type(t).__name__
)
def test_dtype_and_shape_preserved(t, dtype):
    x, y = (images(dtype=np.float64) * 255).astype(dtype), np.arange(8)
    out, yt = t(x, y)
    expected = {RandomCrop: (8, 1, 8, 8), RandomResizedCrop: (8, 1, 9, 7)}.get(type(t), x.shape)
    assert out.dtype == dtype and out.shape == expected
    assert yt is y or yt.shape == (8, 8)


@pytest.mark.parametrize("t", PER_SAMPLE[:7] + [RandomErasing(), CutMix(num_classes=2)], ids=repr)
def test_images_must_be_nchw(t):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(4, 5, 6\)"):
        t(np.zeros((4, 5, 6), dtype=np.float32), np.zeros(4, dtype=np.int64))


@pytest.mark.parametrize(
    "t", [RandomRotation(25), RandomScale((0.7, 1.3)), RandomResizedCrop((9, 7))], ids=repr
)
def test_integer_images_are_interpolated_in_float_then_rounded(t):
    x = np.random.default_rng(4).integers(0, 256, (6, 2, 12, 10)).astype(np.uint8)
    out, _ = t(x)
    as_float, _ = t(x.astype(np.float32))
    np.testing.assert_array_equal(out, np.clip(np.rint(as_float), 0, 255).astype(np.uint8))


def test_invalid_arguments():
    for make in (
        lambda: RandomHorizontalFlip(p=1.5),
        lambda: RandomTranslate(-1),
        lambda: RandomTranslate(1.5),
        lambda: RandomRotation((10, -10)),
        lambda: RandomScale((0, 1)),
        lambda: GaussianNoise(-1),
        lambda: Mixup(alpha=0),
        lambda: RandomErasing(scale=(0.5, 0.1)),
        lambda: RandomCrop(0),
    ):
        with pytest.raises(ValueError):
            make()


# --- preprocessing ---------------------------------------------------------------------------


def test_standardize_fitted_on_train():
    rng = np.random.default_rng(1)
    scale = np.array([1.0, 5.0, 0.2])[None, :, None, None]
    train = (
        rng.normal(size=(200, 3, 6, 6)) * scale + np.array([0.0, 3.0, -1.0])[None, :, None, None]
    ).astype(np.float32)
    test = train[:50] + 1.0
    s = Standardize().fit(ArrayDataset(train, np.zeros(200, dtype=np.int64)))
    z, _ = s(train)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert z.dtype == np.float32 and s.mean.shape == (3,)
    np.testing.assert_allclose(
        s(test)[0], (test - s.mean[:, None, None]) / s.std[:, None, None], rtol=1e-5, atol=1e-6
    )
    assert "Standardize(per='channel', mean=[" in repr(s)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 2, 6, 6\).*\(2,\)"):
        s(np.zeros((4, 2, 6, 6), dtype=np.float32))


def test_standardize_per_feature_and_given_statistics():
    x = np.random.default_rng(2).normal(3, 2, size=(100, 5)).astype(np.float32)
    x[:, 4] = 7.0  # a constant feature stays finite
    s = Standardize(per="feature").fit(x)
    z, _ = s(x)
    np.testing.assert_allclose(z[:, :4].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :4].std(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(z[:, 4], 0)
    np.testing.assert_allclose(Standardize(mean=0.5, std=0.25)(np.ones((2, 1, 2, 2)))[0], 2.0)
    with pytest.raises(ValueError, match=r"\(5,\).*\(2, 4\)"):
        s(np.zeros((2, 4), dtype=np.float32))


def test_preprocessing_refuses_unfitted_use():
    for t in (Standardize(), MinMaxScale()):
        with pytest.raises(RuntimeError, match="not fitted"):
            t(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="per must be"):
        Standardize(per="sample")


def test_min_max_scale():
    train = np.random.default_rng(3).random((50, 2, 4, 4)).astype(np.float32) * [
        [[[3.0]], [[10.0]]]
    ]
    s = MinMaxScale(-1, 1).fit(train)
    z, _ = s(train)
    np.testing.assert_allclose(z.min(axis=(0, 2, 3)), -1, atol=1e-6)
    np.testing.assert_allclose(z.max(axis=(0, 2, 3)), 1, atol=1e-6)
    assert s.get_config()["config"]["low"] == -1.0


def test_one_hot():
    _, y = OneHot(4)(np.zeros((3, 2)), np.array([3, 0, 1]))
    np.testing.assert_array_equal(y, np.eye(4, dtype=np.float32)[[3, 0, 1]])
    assert y.dtype == np.float32
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        OneHot(4)(np.zeros((1, 2)), np.array([4]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        OneHot(4)(np.zeros((3, 2)), np.zeros((3, 4)))
