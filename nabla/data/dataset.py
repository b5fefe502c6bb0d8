"""Datasets: indexable collections of (x, y) samples, and ways to split and combine them.

``ArrayDataset`` is the fast path: x and y are whole arrays, and a batch is one fancy-index
slice of each, with no Python loop over samples. Any object with ``__len__`` and
``__getitem__(i) -> (x, y)`` works as a dataset too (the loader then stacks samples).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import random

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Protocol

    from numpy.typing import ArrayLike

    class DatasetLike(Protocol):
        """What the loader and the splits accept: ``len(ds)`` samples, ``ds[i]`` an (x, y) pair
        (typing only: any such object works, a :class:`Dataset` or not)."""

        def __len__(self) -> int: ...
        def __getitem__(self, index: int, /) -> tuple[Any, Any]: ...


class Dataset:
    """Protocol: ``len(ds)`` samples, ``ds[i]`` is one ``(x, y)`` pair."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        raise NotImplementedError


class ArrayDataset(Dataset):
    """Samples stored as arrays: ``x`` of shape (N, ...), ``y`` of shape (N, ...) (or None).

    ``ds[i]`` gives one sample; ``ds.batch(indices)`` a whole batch by fancy indexing.

    >>> ds = ArrayDataset(np.zeros((5, 2)), np.arange(5))
    >>> len(ds), int(ds[3][1]), ds.batch([0, 4])[1].tolist()
    (5, 3, [0, 4])
    """

    def __init__(self, x: ArrayLike, y: ArrayLike | None = None, name: str = "arrays"):
        x = np.asarray(x)
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(x):
                raise ValueError(f"ArrayDataset {name!r}: {len(x)} inputs but {len(y)} targets")
        self.x, self.y, self.name = x, y, name

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> tuple[Any, Any]:
        return self.x[index], (None if self.y is None else self.y[index])

    def batch(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """The samples at ``indices`` as arrays (one fancy-index copy each)."""
        return self.x[indices], (None if self.y is None else self.y[indices])

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.dtype}{self.y.shape}"
        return f"ArrayDataset({self.name!r}, x={self.x.dtype}{self.x.shape}, y={y})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: DatasetLike, indices: ArrayLike):
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(
                f"Subset: indices must be integers, got dtype {indices.dtype} "
                "(for a boolean mask pass np.flatnonzero(mask))"
            )
        self.dataset, self.indices = dataset, indices.astype(np.int64)
        if self.indices.size and (
            self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)
        ):
            raise IndexError(
                f"Subset: indices out of range for a dataset of {len(dataset)} samples"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.dataset[self.indices[index]]

    @property
    def x(self) -> np.ndarray:
        """The inputs of the subset (a copy), when the underlying dataset stores arrays."""
        return _batch(self.dataset, self.indices)[0]

    @property
    def y(self) -> np.ndarray | None:
        """The targets of the subset (a copy), or None."""
        return _batch(self.dataset, self.indices)[1]

    def batch(self, indices: ArrayLike) -> tuple[np.ndarray, np.ndarray | None]:
        return _batch(self.dataset, self.indices[np.asarray(indices, dtype=np.int64)])


class ConcatDataset(Dataset):
    """Datasets one after the other."""

    def __init__(self, datasets: Iterable[DatasetLike]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: needs at least one dataset")
        self.offsets = np.cumsum([0, *(len(d) for d in self.datasets)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        which = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.datasets[which][index - int(self.offsets[which])]

    def batch(self, indices: ArrayLike) -> tuple[np.ndarray, np.ndarray | None]:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"ConcatDataset: indices out of range for {len(self)} samples")
        indices = np.where(indices < 0, indices + len(self), indices)
        if indices.size == 0:
            x, y = _batch(self.datasets[0], np.zeros(0, dtype=np.int64))
            return x, y
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        parts = [(w, np.flatnonzero(which == w)) for w in np.unique(which)]
        pieces = [_batch(self.datasets[w], indices[pos] - self.offsets[w]) for w, pos in parts]
        order = np.argsort(np.concatenate([pos for _, pos in parts]), kind="stable")
        x = np.concatenate([p[0] for p in pieces])[order]
        y = None if pieces[0][1] is None else np.concatenate([p[1] for p in pieces])[order]
        return x, y


def _batch(dataset: DatasetLike, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch from any dataset: one fancy index where possible, else stacked samples."""
    if hasattr(dataset, "batch"):
        return dataset.batch(indices)
    samples = [dataset[int(i)] for i in indices]
    x = np.stack([s[0] for s in samples])
    y = None if samples[0][1] is None else np.stack([np.asarray(s[1]) for s in samples])
    return x, y


def random_split(
    dataset: DatasetLike, lengths: Iterable[float], seed: int | None = None
) -> list[Subset]:
    """Split into non-overlapping random Subsets of the given lengths (or of fractions that sum
    to 1)."""
    n = len(dataset)
    lengths = list(lengths)
    if all(0 <= f <= 1 for f in lengths) and abs(sum(lengths) - 1) < 1e-9 and sum(lengths) != n:
        counts = [int(np.floor(f * n)) for f in lengths]
        for i in range(n - sum(counts)):  # hand out the remainder round-robin, as torch does
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} do not add up to the {n} samples")
    rng = random.derive(0x5B17) if seed is None else np.random.default_rng(seed)
    order = rng.permutation(n)
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def train_dev_split(
    dataset: DatasetLike, dev_fraction: float = 0.1, stratify: bool = True, seed: int = 0
) -> tuple[Subset, Subset]:
    """Split off a dev (validation) set; with ``stratify`` each class keeps its proportion.

    Returns ``(train, dev)`` Subsets. Stratification needs class labels (``dataset.y`` or the
    targets of ``dataset[i]``); each class contributes round(dev_fraction * its count) samples.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"train_dev_split: dev_fraction must be in (0, 1), got {dev_fraction}")
    n = len(dataset)
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n)
        n_dev = round(dev_fraction * n)
        return Subset(dataset, np.sort(order[n_dev:])), Subset(dataset, np.sort(order[:n_dev]))
    labels = _labels(dataset)
    dev = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        dev.append(rng.choice(members, size=round(dev_fraction * len(members)), replace=False))
    dev = np.sort(np.concatenate(dev))
    train = np.setdiff1d(np.arange(n), dev)
    return Subset(dataset, train), Subset(dataset, dev)


def _labels(dataset: DatasetLike) -> np.ndarray:
    y = getattr(dataset, "y", None)
    if y is None:
        y = np.asarray([np.asarray(dataset[i][1]) for i in range(len(dataset))])
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise ValueError(
            f"train_dev_split: stratify needs one integer class label per sample, got targets of "
            f"shape {y.shape} and dtype {y.dtype}; pass stratify=False"
        )
    return y
