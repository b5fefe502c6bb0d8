"""Regenerate ``nabla/data/digits.npz``, the embedded 8x8 handwritten digits.

Run from the repository root: ``python docs/scripts/make_digits.py``. The file is committed, so
nobody needs to run this to use nabla; it documents where the bytes came from and makes them
reproducible.

Provenance: the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin and
C. Kaynak, 1998; https://archive.ics.uci.edu/dataset/80, license CC BY 4.0), in the 1,797-sample
8x8 version that scikit-learn bundles as ``sklearn.datasets.load_digits`` (the UCI test part,
``optdigits.tes``). Each pixel counts the set pixels of a 4x4 block of a 32x32 bitmap: an integer
in 0..16. scikit-learn is needed only to run this script (it is not a dependency of nabla) and is
imported only in ``main``, so that importing this file (pytest collects docs/ for doctests)
needs nothing extra.

Contents of the npz (no object arrays; load with ``allow_pickle=False``), samples in
scikit-learn's order:

- ``images``: uint8 (1797, 8, 8), values 0..16
- ``labels``: uint8 (1797,), values 0..9
- ``train_index``: uint16 (1437,), sorted; ``test_index``: uint16 (360,), sorted

The split is fixed forever by these stored arrays (nabla never recomputes it). It was made by
:func:`stratified_test_index` with ``TEST_SIZE = 360`` and ``SPLIT_SEED = 0``: each class gets a
share of the 360 test samples proportional to its count (largest remainders, ties to the lower
class), drawn without replacement with ``numpy.random.default_rng(0)``, class by class in order
0..9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "nabla" / "data" / "digits.npz"
TEST_SIZE = 360
SPLIT_SEED = 0


def class_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest-remainder rounding).

    >>> class_quotas(np.array([3, 3, 4]), 5).tolist()
    [2, 1, 2]
    """
    exact = np.asarray(counts, dtype=np.float64) * total / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quotas), kind="stable")  # ties go to the lower class
    quotas[order[: total - quotas.sum()]] += 1
    return quotas


def stratified_test_index(labels: np.ndarray, test_size: int, seed: int) -> np.ndarray:
    """Sorted indices of a stratified test set of ``test_size`` samples."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
        for c, q in zip(classes, class_quotas(counts, test_size))
    ]
    return np.sort(np.concatenate(picks))


def main() -> None:
    from sklearn.datasets import load_digits  # only needed to regenerate

    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    if not (images == np.round(images)).all() or images.min() < 0 or images.max() > 16:
        raise ValueError("expected integer pixels in 0..16")
    test = stratified_test_index(labels, TEST_SIZE, SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    tmp = OUT.with_name(OUT.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        images=images.astype(np.uint8),
        labels=labels.astype(np.uint8),
        train_index=train.astype(np.uint16),
        test_index=test.astype(np.uint16),
    )
    tmp.replace(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main()
