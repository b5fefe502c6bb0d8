"""Small synthetic datasets for quick experiments, each a deterministic function of its ``seed``.

Every generator draws from ``numpy.random.default_rng(seed)`` only (never the global nabla
seed), so the same arguments give bit-identical arrays. All return an ``ArrayDataset`` with
``x`` float32 of shape (N, dim). Classification sets have ``y`` int64 of shape (N,) with labels
0..K-1, the samples grouped by class in label order (shuffle them with a ``DataLoader``);
regression sets have ``y`` float32 of shape (N, 1) and keep their true parameters as attributes.
Values are computed in float64 and rounded to float32 at the end (regression targets are
computed from the float32 inputs, so the residual of the true function is exactly the noise
up to float32 rounding).

>>> ds = spirals(n_per_class=50, classes=3, seed=0)
>>> ds
ArrayDataset('spirals', x=float32(150, 2), y=int64(150,))
>>> reg = linear_regression(n=10, dim=3, seed=1)
>>> reg.w.shape, reg.y.shape
((3,), (10, 1))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .dataset import ArrayDataset

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _check(name: str, **conditions: bool) -> None:
    for what, ok in conditions.items():
        if not ok:
            raise ValueError(f"{name}: invalid {what}")


def _counts(n: int, k: int) -> np.ndarray:
    """``n`` samples over ``k`` groups as evenly as possible (the first groups get the extra)."""
    return np.full(k, n // k) + (np.arange(k) < n % k)


def _classification(x: ArrayLike, y: ArrayLike, name: str) -> ArrayDataset:
    return ArrayDataset(np.asarray(x, np.float32), np.asarray(y, np.int64), name=name)


def spirals(
    n_per_class: int = 100,
    classes: int = 3,
    noise: float = 0.2,
    turns: float = 1.0,
    seed: int = 0,
) -> ArrayDataset:
    """The classic K-arm spiral (as in Stanford's CS231n notes), not linearly separable.

    Arm ``k`` has ``n_per_class`` points at radii ``r = linspace(0, 1, n_per_class)`` and angles
    ``2*pi*k/classes + 2*pi*turns*r + noise * N(0, 1)``: the arms start at the origin, are
    evenly spaced in angle, each winds ``turns`` times round it, and ``noise`` is the standard
    deviation of the angle in radians (as in CS231n). Points are ``(r cos t, r sin t)``.
    (CS231n's own arms span 4 radians each and start 4 radians apart; ``turns=4 / (2 * pi)``
    gives the same span.) ``x``: float32 (classes * n_per_class, 2) within the unit disc;
    ``y``: int64, the arm.
    """
    _check(
        "spirals",
        n_per_class=n_per_class >= 1,
        classes=classes >= 1,
        noise=noise >= 0,
        turns=turns > 0,
    )
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    y = np.repeat(np.arange(classes), n_per_class)
    t = 2 * np.pi * (y / classes + turns * r) + noise * rng.standard_normal(len(y))
    return _classification(np.stack([r * np.cos(t), r * np.sin(t)], axis=1), y, "spirals")


def moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> ArrayDataset:
    """Two interleaving half circles (the construction of scikit-learn's ``make_moons``).

    Class 0 (``ceil(n/2)`` points) lies on the upper unit half circle at angles
    ``linspace(0, pi)``; class 1 (``floor(n/2)``) on the lower one, ``(1 - cos a, 0.5 - sin a)``.
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.
    ``x``: float32 (n, 2); ``y``: int64 (n,).
    """
    _check("moons", n=n >= 2, noise=noise >= 0)
    rng = np.random.default_rng(seed)
    n0, n1 = _counts(n, 2)
    a0, a1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    x = np.concatenate(
        [np.stack([np.cos(a0), np.sin(a0)], 1), np.stack([1 - np.cos(a1), 0.5 - np.sin(a1)], 1)]
    )
    x += noise * rng.standard_normal(x.shape)
    return _classification(x, np.repeat([0, 1], [n0, n1]), "moons")


def blobs(
    n: int = 300, centers: int | ArrayLike = 3, std: float = 1.0, dim: int = 2, seed: int = 0
) -> ArrayDataset:
    """Isotropic Gaussian blobs, one per class (like scikit-learn's ``make_blobs``).

    ``centers``: the number of classes K, with centers drawn uniformly from ``[-10, 10]^dim``,
    or an array (K, dim) of centers. Each class gets ``n // K`` points (the first ``n % K``
    classes one more), normal around its center with standard deviation ``std`` per
    coordinate. ``x``: float32 (n, dim); ``y``: int64 (n,). ``ds.centers``: float64 (K, dim).
    """
    rng = np.random.default_rng(seed)
    if np.ndim(centers) == 0:
        _check("blobs", centers=int(centers) >= 1, dim=dim >= 1)
        centers = rng.uniform(-10.0, 10.0, size=(int(centers), dim))
    centers = np.asarray(centers, dtype=np.float64)
    _check(
        "blobs", centers=centers.ndim == 2 and len(centers) >= 1, n=n >= len(centers), std=std >= 0
    )
    y = np.repeat(np.arange(len(centers)), _counts(n, len(centers)))
    x = centers[y] + std * rng.standard_normal((n, centers.shape[1]))
    ds = _classification(x, y, "blobs")
    ds.centers = centers
    return ds


def xor(n: int = 200, noise: float = 0.1, seed: int = 0) -> ArrayDataset:
    """The XOR problem: Gaussian clusters at the four corners ``(+-1, +-1)``.

    Class 0 is the corners (1, 1) and (-1, -1) (equal signs), class 1 the corners (1, -1) and
    (-1, 1): no line separates them. The ``n`` points go to the corners (1, 1), (-1, -1),
    (1, -1), (-1, 1) as evenly as possible, each normal around its corner with standard
    deviation ``noise``. ``x``: float32 (n, 2); ``y``: int64 (n,).
    """
    _check("xor", n=n >= 4, noise=noise >= 0)
    rng = np.random.default_rng(seed)
    corners = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float64)
    which = np.repeat(np.arange(4), _counts(n, 4))
    x = corners[which] + noise * rng.standard_normal((n, 2))
    return _classification(x, which // 2, "xor")


def linear_regression(
    n: int = 100, dim: int = 1, noise: float = 0.1, seed: int = 0
) -> ArrayDataset:
    """``y = x @ w + b + noise * N(0, 1)`` with ``x`` standard normal.

    The true ``w`` (float64 (dim,)) and ``b`` (float) are drawn standard normal and stored as
    ``ds.w`` and ``ds.b``; ``ds.noise`` is the noise standard deviation. ``x``: float32
    (n, dim); ``y``: float32 (n, 1).
    """
    _check("linear_regression", n=n >= 1, dim=dim >= 1, noise=noise >= 0)
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal(dim), float(rng.standard_normal())
    x = rng.standard_normal((n, dim)).astype(np.float32)
    y = x.astype(np.float64) @ w + b + noise * rng.standard_normal(n)
    ds = ArrayDataset(x, y.astype(np.float32)[:, None], name="linear_regression")
    ds.w, ds.b, ds.noise = w, b, noise
    return ds


def polynomial_regression(
    n: int = 100, degree: int = 3, noise: float = 0.1, seed: int = 0
) -> ArrayDataset:
    """``y = sum_k coef[k] * x**k + noise * N(0, 1)`` with ``x`` uniform in [-1, 1].

    For capacity studies (fit polynomials or MLPs of growing size; the best test error is
    ``noise**2``). The true coefficients, lowest power first (``numpy.polynomial``'s order),
    are drawn standard normal and stored as ``ds.coef`` (float64 (degree + 1,)); ``ds.noise``
    is the noise standard deviation. ``x``: float32 (n, 1); ``y``: float32 (n, 1).
    """
    _check("polynomial_regression", n=n >= 1, degree=degree >= 0, noise=noise >= 0)
    rng = np.random.default_rng(seed)
    coef = rng.standard_normal(degree + 1)
    x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32)
    y = np.polynomial.polynomial.polyval(x.astype(np.float64), coef)
    y += noise * rng.standard_normal((n, 1))
    ds = ArrayDataset(x, y.astype(np.float32), name="polynomial_regression")
    ds.coef, ds.noise = coef, noise
    return ds
