"""The embedded default dataset: 8x8 handwritten digits, shipped inside the package.

Provenance: the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin and
C. Kaynak, 1998; https://archive.ics.uci.edu/dataset/80, license CC BY 4.0), in the 1,797-sample
8x8 version bundled by scikit-learn as ``sklearn.datasets.load_digits``. Each pixel is the number
of set pixels in a 4x4 block of a 32x32 bitmap, an integer 0..16. The bytes live in
``nabla/data/digits.npz`` (about 49 KB), made by ``docs/scripts/make_digits.py``, which is the
only place scikit-learn is needed.

Class counts (digits 0..9), all 1,797 samples::

    178 182 177 183 181 182 181 179 174 180

The train/test split is fixed forever and stored in the npz as index arrays: a stratified 360
sample test set (20%; each class contributes in proportion to its count) drawn once with seed 0,
and the other 1,437 samples for training. Test class counts: 36 37 35 37 36 36 36 36 35 36.
Both parts keep scikit-learn's sample order.

>>> train, test = digits()
>>> train
ArrayDataset('digits-train', x=float32(1437, 1, 8, 8), y=int64(1437,))
>>> len(test), float(test.x.min()), float(test.x.max())
(360, 0.0, 1.0)
>>> digits("test", flatten=True).x.shape
(360, 64)
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from .dataset import ArrayDataset

N_SAMPLES, N_TRAIN, N_TEST = 1797, 1437, 360


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    """The npz's arrays (read once; callers must not modify them)."""
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def _split_indices(seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    a = _arrays()
    if seed is None:
        return a["train_index"].astype(np.int64), a["test_index"].astype(np.int64)
    # A fresh stratified split with the fixed split's per-class test counts.
    labels, rng = a["labels"], np.random.default_rng(seed)
    test_counts = np.bincount(labels[a["test_index"]], minlength=10)
    test = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
                for c, k in enumerate(test_counts)
            ]
        )
    )
    return np.setdiff1d(np.arange(len(labels)), test), test


def digits(
    split: str | None = None, seed: int | None = None, flatten: bool = False
) -> ArrayDataset | tuple[ArrayDataset, ArrayDataset]:
    """The 8x8 digits as ``ArrayDataset`` (see the module docstring for provenance and counts).

    ``x`` is float32 of shape (N, 1, 8, 8) (or (N, 64) with ``flatten=True``, for MLPs), the
    pixels divided by 16, so in [0, 1]; ``y`` is int64 of shape (N,), the digit 0..9.

    ``split``: ``None`` gives ``(train, test)``; ``"train"`` the 1,437 training samples;
    ``"test"`` the 360 test samples; ``"all"`` all 1,797 samples in the original order.

    ``seed``: ``None`` (the default) uses the fixed split stored with the data, the one to
    compare results with. An integer draws a different stratified split of the same sizes and
    per-class test counts, with ``numpy.random.default_rng(seed)`` (for studies of the variance
    across splits).
    """
    if split not in (None, "train", "test", "all"):
        raise ValueError(f"digits: split must be None, 'train', 'test' or 'all', got {split!r}")
    a = _arrays()
    shape = (-1, 64) if flatten else (-1, 1, 8, 8)

    def make(index: np.ndarray | slice, name: str) -> ArrayDataset:
        x = (a["images"][index].astype(np.float32) / np.float32(16)).reshape(shape)
        return ArrayDataset(x, a["labels"][index].astype(np.int64), name=name)

    if split == "all":
        return make(slice(None), "digits")
    train, test = _split_indices(seed)
    if split == "train":
        return make(train, "digits-train")
    if split == "test":
        return make(test, "digits-test")
    return make(train, "digits-train"), make(test, "digits-test")
