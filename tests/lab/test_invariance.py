"""The invariance experiment's test transformations and its matched-magnitude arithmetic: exact
shifts, rotations against np.rot90, scalings about the centre, the ink displacement of each
family against a brute-force mean, and the checks on made-up accuracy curves."""

import numpy as np
import pytest

from nabla.lab.experiments import invariance as inv


def one_hot(size: int, row: int, col: int) -> np.ndarray:
    x = np.zeros((1, 1, size, size), dtype=np.float32)
    x[0, 0, row, col] = 1
    return x


@pytest.mark.parametrize("k", [0, 1, 3, 6])
@pytest.mark.parametrize("direction", [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1)])
def test_a_shift_by_k_moves_a_one_hot_image_by_k(k, direction):
    dy, dx = k * direction[0], k * direction[1]
    out = inv.shift(one_hot(28, 12, 14), dy, dx)
    assert out.sum() == 1 and out[0, 0, 12 + dy, 14 + dx] == 1


def test_a_shift_fills_with_zeros_and_drops_what_leaves_the_frame():
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    out = inv.shift(x, -3, 2)
    assert np.all(out[..., -3:, :] == 0) and np.all(out[..., :, :2] == 0)
    assert np.array_equal(out[..., :-3, 2:], x[..., 3:, :-2])
    assert not inv.shift(one_hot(28, 1, 27), 0, 1).any()


@pytest.mark.parametrize("size", [28, 29])
def test_a_rotation_by_90_degrees_is_rot90_and_by_0_the_identity(size):
    x = np.random.default_rng(1).random((3, 1, size, size)).astype(np.float32)
    for degrees, turns in ((90, 1), (-90, -1), (180, 2)):  # counter-clockwise, as np.rot90
        expected = np.rot90(x, turns, axes=(-2, -1))
        np.testing.assert_allclose(inv.rotate(x, degrees), expected, atol=1e-5)
    np.testing.assert_array_equal(inv.rotate(x, 0.0), x)


def test_scale_one_is_the_identity_and_a_factor_moves_ink_radially():
    x = np.random.default_rng(2).random((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(inv.zoom(x, 1.0), x)
    np.testing.assert_array_equal(inv.variants(x, "shift", 0)[0], x)
    # 29x29, centre (14, 14): a pixel 8 right of it lands 4 right at s = 1/2 (exactly one pixel)
    half = inv.zoom(one_hot(29, 14, 22), 0.5)
    assert half.sum() == pytest.approx(1) and half[0, 0, 14, 18] == pytest.approx(1)
    # 3 below it lands 6 below at s = 2, spread by the interpolation symmetrically about row 20
    double = inv.zoom(one_hot(29, 17, 14), 2.0)[0, 0]
    assert double[20, 14] == pytest.approx(1)
    assert (double.sum(1) * np.arange(29)).sum() / double.sum() == pytest.approx(20)


def test_ink_radius_is_the_intensity_weighted_mean_distance_from_the_centre():
    x = one_hot(29, 17, 18) + 3 * one_hot(29, 14, 13)  # radii 5 and 1 about (14, 14)
    assert inv.ink_radius(x) == pytest.approx((5 + 3 * 1) / 4)


@pytest.mark.parametrize("family, magnitude", [("rotation", 30.0), ("rotation", -45.0),
                                               ("scale", 0.6), ("scale", 1.4)])  # fmt: skip
def test_ink_displacement_equals_the_brute_force_mean_over_the_ink(family, magnitude):
    x = np.random.default_rng(3).random((4, 1, 28, 28)) ** 4  # ink anywhere, unevenly
    c = 13.5
    i, j = np.meshgrid(np.arange(28) - c, np.arange(28) - c, indexing="ij")
    if family == "rotation":  # counter-clockwise with rows pointing down
        t = np.deg2rad(magnitude)
        ni, nj = np.cos(t) * i - np.sin(t) * j, np.sin(t) * i + np.cos(t) * j
    else:
        ni, nj = magnitude * i, magnitude * j
    ink = x.sum((0, 1))
    brute = (ink * np.hypot(ni - i, nj - j)).sum() / ink.sum()
    assert inv.displacement(family, magnitude, inv.ink_radius(x)) == pytest.approx(brute)
    assert inv.displacement("shift", -3, 99.0) == 3


def test_a_rotation_moves_an_off_centre_pixel_as_far_as_the_formula_says():
    x = one_hot(28, 13, 21)  # 7.5 right of the centre (13.5, 13.5), 0.5 above
    r = np.hypot(7.5, 0.5)
    for degrees in (15.0, 30.0, 45.0):
        out = inv.rotate(x, degrees)[0, 0].astype(np.float64)
        rows, cols = np.indices(out.shape)
        moved = np.hypot((rows * out).sum() / out.sum() - 13, (cols * out).sum() / out.sum() - 21)
        assert moved == pytest.approx(inv.displacement("rotation", degrees, r), abs=0.1)


def made_up_results(shift_acc, rotation_acc, scale_acc, augmented=0.9, seeds=3):
    """Results whose plain net has the given curves (plus a little per-seed noise) and whose
    augmented nets score ``augmented`` everywhere."""
    size = inv.Size("made up", 1, 1, seeds, (0, 1, 2, 3, 4), (0.0, 30.0, 45.0),
                    (0.6, 0.7, 1.0, 1.3, 1.4), 4, 45.0, (0.7, 1.3))  # fmt: skip
    runs = []
    for s in range(seeds):
        noise = 0.001 * (s - 1)
        curves = {"shift": shift_acc, "rotation": rotation_acc, "scale": scale_acc}
        runs.append(inv.Run("none", s, {f: np.asarray(c) + noise for f, c in curves.items()}, 0))
        for training in inv.TRAININGS[1:]:
            flat = {f: np.full(len(c), augmented + noise) for f, c in curves.items()}
            runs.append(inv.Run(training, s, flat, 0))
    return inv.Results(size, list(range(seeds)), (1, 1), 4.0, {}, runs)


def test_matched_drops_interpolate_the_shift_curve_at_the_same_ink_displacement():
    results = made_up_results([1, 0.9, 0.8, 0.7, 0.6], [1, 0.5, 0.2], [0.5, 0.6, 1, 0.9, 0.8])
    own, by_shift, d = inv.matched_drops(results, "rotation", 30.0)
    assert d == pytest.approx(2 * np.sin(np.deg2rad(15)) * 4.0)  # 2.07 px
    expected = 1 - (1 - 0.1 * d + np.array([-1, 0, 1]) * 1e-3) / (1 + np.array([-1, 0, 1]) * 1e-3)
    np.testing.assert_allclose(by_shift, expected)
    np.testing.assert_allclose(
        own, 1 - (0.5 + np.array([-1, 0, 1]) * 1e-3) / (1 + np.array([-1, 0, 1]) * 1e-3)
    )
    own, by_shift, d = inv.matched_drops(results, "scale", 1.4)
    assert d == pytest.approx(1.6) and by_shift.mean() == pytest.approx(0.16, abs=1e-3)


def test_the_verdict_passes_only_when_every_part_holds():
    experiment = inv.Invariance(verbose=False)
    fragile = ([1, 0.99, 0.95, 0.9, 0.85], [1, 0.5, 0.3], [0.5, 0.6, 1, 0.7, 0.6])
    assert experiment.verdict(made_up_results(*fragile)).passed
    shift_hurts_more = ([1, 0.9, 0.5, 0.3, 0.2], [1, 0.8, 0.7], [0.5, 0.6, 1, 0.7, 0.6])
    assert not experiment.verdict(made_up_results(*shift_hurts_more)).passed
    assert not experiment.verdict(made_up_results(*fragile, augmented=0.6)).passed
    two_pixels_lose_a_lot = ([1, 0.95, 0.85, 0.8, 0.75], [1, 0.3, 0.2], [0.2, 0.3, 1, 0.3, 0.2])
    assert not experiment.verdict(made_up_results(*two_pixels_lose_a_lot)).passed
