"""The embedded digits dataset and the synthetic generators."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from nabla.data import synthetic
from nabla.data.dataset import ArrayDataset
from nabla.data.digits import _arrays, digits

ROOT = Path(__file__).resolve().parents[2]
# SHA-256 of the fixed test indices (little-endian uint16) and of the images + labels bytes,
# taken when digits.npz was made. Part of the dataset's definition: never update them.
TEST_INDEX_SHA256 = "8777340c2acecbbb2a6d70cdaf6945ca88761190ef5c0b98d7a46e67e6bef5cf"
CONTENT_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"


def _make_digits_script():
    """docs/scripts/make_digits.py as a module (it imports scikit-learn only in main)."""
    spec = importlib.util.spec_from_file_location(
        "make_digits", ROOT / "docs" / "scripts" / "make_digits.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- digits


def test_npz_is_small_plain_and_packaged():
    ref = resources.files("nabla.data").joinpath("digits.npz")
    with resources.as_file(ref) as path:
        assert 20_000 < path.stat().st_size < 100_000
        with np.load(path, allow_pickle=False) as npz:  # raises on object arrays
            assert sorted(npz.files) == ["images", "labels", "test_index", "train_index"]
            assert npz["images"].dtype == np.uint8 and npz["images"].shape == (1797, 8, 8)
            assert npz["labels"].dtype == np.uint8 and npz["labels"].shape == (1797,)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "data/*.npz" in project["tool"]["setuptools"]["package-data"]["nabla"]


def test_shapes_dtypes_ranges():
    train, test = digits()
    everything = digits("all")
    assert isinstance(train, ArrayDataset) and isinstance(everything, ArrayDataset)
    assert (len(train), len(test), len(everything)) == (1437, 360, 1797)
    for ds in (train, test, everything):
        assert ds.x.dtype == np.float32 and ds.x.shape == (len(ds), 1, 8, 8)
        assert ds.y.dtype == np.int64 and ds.y.shape == (len(ds),)
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
        np.testing.assert_array_equal(ds.x * 16, np.round(ds.x * 16))  # exact sixteenths
        assert set(np.unique(ds.y)) == set(range(10))
    assert digits("train", flatten=True).x.shape == (1437, 64)
    np.testing.assert_array_equal(digits("test", flatten=True).x, test.x.reshape(360, 64))
    # the pixel images are distinct objects per call: mutating one does not leak
    train.x[:] = 0
    assert digits("train").x.max() == 1.0
    with pytest.raises(ValueError, match="split"):
        digits("dev")


def test_split_is_disjoint_covering_and_consistent():
    a = _arrays()
    tr, te = a["train_index"].astype(np.int64), a["test_index"].astype(np.int64)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(1797))
    assert (np.diff(tr) > 0).all() and (np.diff(te) > 0).all()
    everything, (train, test) = digits("all"), digits()
    np.testing.assert_array_equal(train.x, everything.x[tr])
    np.testing.assert_array_equal(train.y, everything.y[tr])
    np.testing.assert_array_equal(test.x, everything.x[te])
    np.testing.assert_array_equal(test.y, everything.y[te])
    # stratified: each class has 20% of its samples in the test set, to within one
    counts, test_counts = np.bincount(everything.y), np.bincount(test.y, minlength=10)
    assert (np.abs(test_counts - counts * 360 / 1797) < 1).all()


def test_fixed_split_is_the_documented_one():
    # The split is defined once and for all by the arrays in the npz. Recompute it with the
    # documented rule (docs/scripts/make_digits.py: stratified, 360 test samples, seed 0)...
    script = _make_digits_script()
    a = _arrays()
    test = script.stratified_test_index(a["labels"], script.TEST_SIZE, script.SPLIT_SEED)
    np.testing.assert_array_equal(a["test_index"], test)
    # ...and pin its hash: the split must never change, even if the script or NumPy's random
    # streams do (these hashes were taken when the split was made, and are part of its
    # definition, like the seed).
    assert _sha256(a["test_index"].astype("<u2")) == TEST_INDEX_SHA256
    assert _sha256(a["images"], a["labels"]) == CONTENT_SHA256


def test_seeded_splits():
    fixed_train, fixed_test = digits()
    a_train, a_test = digits(seed=1)
    b_test = digits("test", seed=1)
    c_test = digits("test", seed=2)
    np.testing.assert_array_equal(a_test.y, b_test.y)
    np.testing.assert_array_equal(a_test.x, b_test.x)
    assert (len(a_train), len(a_test)) == (1437, 360)
    np.testing.assert_array_equal(np.bincount(a_test.y), np.bincount(fixed_test.y))
    np.testing.assert_array_equal(np.bincount(a_train.y), np.bincount(fixed_train.y))
    assert not np.array_equal(a_test.x, fixed_test.x)
    assert not np.array_equal(a_test.x, c_test.x)


def test_matches_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    ref = datasets.load_digits()
    everything = digits("all")
    np.testing.assert_array_equal(np.bincount(everything.y), np.bincount(ref.target))
    np.testing.assert_array_equal(everything.y, ref.target)
    np.testing.assert_array_equal(everything.x[:, 0] * 16, ref.images)


# ---------------------------------------------------------------- synthetic

CLASSIFIERS = {
    "spirals": lambda seed: synthetic.spirals(n_per_class=60, classes=4, seed=seed),
    "moons": lambda seed: synthetic.moons(n=240, seed=seed),
    "blobs": lambda seed: synthetic.blobs(n=240, centers=4, dim=3, seed=seed),
    "xor": lambda seed: synthetic.xor(n=240, seed=seed),
}
SHAPES = {"spirals": (240, 2), "moons": (240, 2), "blobs": (240, 3), "xor": (240, 2)}
REGRESSORS = {
    "linear_regression": lambda seed: synthetic.linear_regression(n=50, dim=3, seed=seed),
    "polynomial_regression": lambda seed: synthetic.polynomial_regression(n=50, seed=seed),
}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classification_shapes_balance_determinism(name):
    ds = CLASSIFIERS[name](0)
    assert isinstance(ds, ArrayDataset) and ds.name == name
    assert ds.x.dtype == np.float32 and ds.x.shape == SHAPES[name]
    assert ds.y.dtype == np.int64 and ds.y.shape == (240,)
    counts = np.bincount(ds.y)
    assert (counts == counts[0]).all() and counts.sum() == 240
    again, other = CLASSIFIERS[name](0), CLASSIFIERS[name](1)
    np.testing.assert_array_equal(ds.x, again.x)
    np.testing.assert_array_equal(ds.y, again.y)
    assert not np.array_equal(ds.x, other.x)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regression_shapes_determinism(name):
    ds = REGRESSORS[name](0)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.float32
    assert ds.y.shape == (50, 1) and ds.x.shape[0] == 50
    np.testing.assert_array_equal(ds.y, REGRESSORS[name](0).y)
    assert not np.array_equal(ds.y, REGRESSORS[name](1).y)


def test_uneven_sizes_are_shared_out():
    assert np.bincount(synthetic.moons(n=7).y).tolist() == [4, 3]
    assert np.bincount(synthetic.blobs(n=10, centers=3).y).tolist() == [4, 3, 3]
    assert np.bincount(synthetic.xor(n=6).y).tolist() == [4, 2]
    with pytest.raises(ValueError, match="noise"):
        synthetic.moons(noise=-1.0)


def test_spiral_arms_by_radius_and_angle():
    # Arm k: radius linspace(0, 1), angle 2*pi*(k/K + turns*r) plus N(0, noise) radians. So the
    # radius is exact, the angle residual has std ~noise, and the nearest arm in angle (a
    # nonlinear classifier) recovers the label of every point away from the centre.
    k, n, noise, turns = 3, 400, 0.2, 1.5
    ds = synthetic.spirals(n_per_class=n, classes=k, noise=noise, turns=turns, seed=3)
    x = ds.x.astype(np.float64)
    r = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(r, np.tile(np.linspace(0, 1, n), k), atol=1e-6)
    keep = r > 0.05
    offsets = 2 * np.pi * (np.arange(k) / k)
    angle = np.arctan2(x[:, 1], x[:, 0]) - 2 * np.pi * turns * r
    residual = np.angle(np.exp(1j * (angle[:, None] - offsets[None, :])))  # wrapped to (-pi, pi]
    own = residual[np.arange(len(r)), ds.y][keep]
    assert abs(own.mean()) < 0.03 and abs(own.std() - noise) < 0.02
    nearest = np.abs(residual).argmin(axis=1)
    assert (nearest[keep] == ds.y[keep]).mean() > 0.99
    # no linear classifier does well: least squares on one-hot targets stays far from perfect
    features = np.c_[x, np.ones(len(x))]
    w = np.linalg.lstsq(features, np.eye(k)[ds.y], rcond=None)[0]
    assert ((features @ w).argmax(1) == ds.y).mean() < 0.8


def test_moons_xor_blobs_geometry():
    m = synthetic.moons(n=400, noise=0.0)
    x0, x1 = m.x[m.y == 0].astype(np.float64), m.x[m.y == 1].astype(np.float64)
    np.testing.assert_allclose(np.hypot(*x0.T), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(x1[:, 0] - 1, x1[:, 1] - 0.5), 1.0, atol=1e-6)
    xr = synthetic.xor(n=400, noise=0.1)
    assert ((xr.x[:, 0] * xr.x[:, 1] < 0) == (xr.y == 1)).mean() > 0.99
    b = synthetic.blobs(n=3000, centers=np.array([[0.0, 0.0], [5.0, 5.0]]), std=0.5)
    for c in range(2):
        pts = b.x[b.y == c]
        np.testing.assert_allclose(pts.mean(0), b.centers[c], atol=0.05)
        np.testing.assert_allclose(pts.std(0), 0.5, rtol=0.05)
    assert synthetic.blobs(centers=5, dim=4).centers.shape == (5, 4)


def test_regression_noise_level_and_truth():
    # With the true parameters, the residual is the noise alone: for n = 20,000 its sample std
    # is within 1.5% of the noise level at three standard errors (sd of s is s / sqrt(2n)); we
    # allow 5%.
    n, noise = 20_000, 0.1
    lin = synthetic.linear_regression(n=n, dim=4, noise=noise, seed=0)
    assert lin.w.shape == (4,) and isinstance(lin.b, float) and lin.noise == noise
    residual = lin.y[:, 0] - (lin.x.astype(np.float64) @ lin.w + lin.b)
    assert abs(residual.std() / noise - 1) < 0.05 and abs(residual.mean()) < 0.005
    fitted = np.linalg.lstsq(np.c_[lin.x, np.ones(n)], lin.y[:, 0], rcond=None)[0]
    np.testing.assert_allclose(fitted, [*lin.w, lin.b], atol=0.01)

    poly = synthetic.polynomial_regression(n=n, degree=5, noise=noise, seed=0)
    assert poly.coef.shape == (6,) and poly.x.shape == (n, 1)
    assert poly.x.min() >= -1 and poly.x.max() <= 1
    truth = np.polynomial.polynomial.polyval(poly.x[:, 0].astype(np.float64), poly.coef)
    residual = poly.y[:, 0] - truth
    assert abs(residual.std() / noise - 1) < 0.05 and abs(residual.mean()) < 0.005
    noiseless = synthetic.polynomial_regression(n=20, degree=2, noise=0.0, seed=4)
    expect = np.polynomial.polynomial.polyval(noiseless.x.astype(np.float64), noiseless.coef)
    np.testing.assert_allclose(noiseless.y, expect, rtol=1e-6)
