"""Standard image datasets: MNIST, Fashion-MNIST, CIFAR-10, and the MNIST-10k re-split.

Each loader finds its files with :func:`nabla.data.download.fetch` (``root``, then
``$NABLA_DATA``, then the cache; downloading with checksums if allowed) and returns an
:class:`ArrayDataset` of float32 images in [0, 1], channels first, and int64 labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .cifar import read_cifar10_archive
from .dataset import ArrayDataset
from .digits import digits
from .download import Checksum, fetch
from .idx import DataFormatError, read_idx_pair
from .synthetic import blobs, linear_regression, moons, polynomial_regression, spirals, xor

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike

__all__ = [
    "Splits",
    "blobs",
    "cifar10",
    "digits",
    "fashion_mnist",
    "linear_regression",
    "mnist",
    "mnist10k",
    "moons",
    "polynomial_regression",
    "spirals",
    "xor",
]

# md5 of the .gz files as published (torchvision's lists), and for the MNIST test files the md5
# of the decompressed content too, which survives re-gzipping.
MNIST_FILES = {
    "train": {
        "train-images-idx3-ubyte.gz": Checksum("f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": Checksum("d53e105ee54ea40749a09fcbcd1e9432"),
    },
    "test": {
        "t10k-images-idx3-ubyte.gz": Checksum(
            "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"
        ),
        "t10k-labels-idx1-ubyte.gz": Checksum(
            "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"
        ),
    },
}
FASHION_MNIST_FILES = {
    "train": {
        "train-images-idx3-ubyte.gz": Checksum("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte.gz": Checksum("25c81989df183df01b3e8a0aad5dffbe"),
    },
    "test": {
        "t10k-images-idx3-ubyte.gz": Checksum("bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte.gz": Checksum("bb300cfdad3c16e7a12a480ee83cd310"),
    },
}
CIFAR10_FILES = {"cifar-10-binary.tar.gz": Checksum("c32a1d4ab5d03f1284b67883e8d87530")}

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _check_split(loader: str, split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"{loader}: split must be 'train' or 'test', got {split!r}")


def _idx_dataset(
    name: str,
    label: str,
    files: Mapping[str, Mapping[str, Checksum]],
    split: str,
    root: str | os.PathLike[str] | None,
    download: bool,
) -> ArrayDataset:
    paths = list(fetch(name, files[split], root=root, download=download).values())
    images, labels = read_idx_pair(*paths)
    x = (images.astype(np.float32) / np.float32(255))[:, None]
    return ArrayDataset(x, labels.astype(np.int64), name=f"{label} {split}")


def mnist(
    split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True
) -> ArrayDataset:
    """MNIST handwritten digits: 60,000 training or 10,000 test images of the digits 0-9.

    ``x`` float32 (N, 1, 28, 28) in [0, 1] (pixel / 255, white digit on black), ``y`` int64
    (N,) in 0..9. Files: ``mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` under
    ``root``, ``$NABLA_DATA`` or the cache, else downloaded (md5-checked) from the mirrors.

    Provenance: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten
    digits" (http://yann.lecun.com/exdb/mnist/), from NIST Special Databases 1 and 3; cite
    LeCun et al., "Gradient-based learning applied to document recognition", Proc. IEEE 1998.
    License: distributed under Creative Commons Attribution-Share Alike 3.0.

    Example (needs the files or a network)::

        test = mnist(split="test")  # test.x.shape == (10000, 1, 28, 28)
        test.y[:5].tolist()         # [7, 2, 1, 0, 4]
    """
    _check_split("mnist", split)
    return _idx_dataset("mnist", "MNIST", MNIST_FILES, split, root, download)


def fashion_mnist(
    split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True
) -> ArrayDataset:
    """Fashion-MNIST: 60,000 training or 10,000 test images of clothing, in 10 classes.

    ``x`` float32 (N, 1, 28, 28) in [0, 1], ``y`` int64 (N,) in 0..9, the classes of
    ``FASHION_MNIST_CLASSES`` (0 = T-shirt/top ... 9 = Ankle boot). Same IDX files and layout
    as MNIST, under ``fashion_mnist/``.

    Provenance: Zalando Research, https://github.com/zalandoresearch/fashion-mnist; cite
    H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
    Machine Learning Algorithms", arXiv:1708.07747, 2017. License: MIT.
    """
    _check_split("fashion_mnist", split)
    return _idx_dataset(
        "fashion_mnist", "Fashion-MNIST", FASHION_MNIST_FILES, split, root, download
    )


def cifar10(
    split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True
) -> ArrayDataset:
    """CIFAR-10: 50,000 training or 10,000 test colour images of 32x32 pixels, in 10 classes.

    ``x`` float32 (N, 3, 32, 32) in [0, 1] (RGB planes, pixel / 255), ``y`` int64 (N,) in
    0..9, the classes of ``CIFAR10_CLASSES`` (0 = airplane ... 9 = truck). Read from the
    binary version ``cifar10/cifar-10-binary.tar.gz`` (md5-checked), never the pickled one.

    Provenance: A. Krizhevsky, V. Nair, G. Hinton, https://www.cs.toronto.edu/~kriz/cifar.html,
    a labelled subset of the 80 million tiny images; cite A. Krizhevsky, "Learning Multiple
    Layers of Features from Tiny Images", technical report, University of Toronto, 2009.
    License: none stated; the authors ask that the tech report be cited.
    """
    _check_split("cifar10", split)
    (archive,) = fetch("cifar10", CIFAR10_FILES, root=root, download=download).values()
    images, labels = read_cifar10_archive(archive, split)
    x = images.astype(np.float32) / np.float32(255)
    return ArrayDataset(x, labels.astype(np.int64), name=f"CIFAR-10 {split}")


class Splits(NamedTuple):
    """A dataset split three ways."""

    train: ArrayDataset
    dev: ArrayDataset
    test: ArrayDataset


MNIST10K_SIZES = (7000, 1000, 2000)


def mnist10k(
    seed: int = 0, root: str | os.PathLike[str] | None = None, download: bool = True
) -> Splits:
    """MNIST-10k: the 10,000 real MNIST *test* images re-split 7,000 / 1,000 / 2,000.

    Only the MNIST test split is available on machines without a network, so experiments that
    need real images split those 10,000 into train, dev and test parts. Results on them are
    labelled "MNIST-10k" and are not comparable with numbers on the official 60k/10k split.

    The split is stratified (each part holds every class in the proportion of the whole,
    within one sample) and seeded: the same ``seed`` gives the same parts, and the parts are
    disjoint and cover all 10,000 images. Returns ``Splits(train, dev, test)`` of
    ArrayDatasets named "MNIST-10k train", "MNIST-10k dev", "MNIST-10k test", with ``x``
    float32 (n, 1, 28, 28) in [0, 1] and ``y`` int64, in original order within each part.
    Provenance and license: those of :func:`mnist`.

    Example (needs the MNIST test files, e.g. ``NABLA_DATA=../shared/data``)::

        train, dev, test = mnist10k(seed=0)  # 7000, 1000 and 2000 samples
    """
    full = mnist("test", root=root, download=download)
    if len(full) != sum(MNIST10K_SIZES):
        raise DataFormatError(f"mnist10k: expected 10,000 MNIST test images, got {len(full)}")
    parts = stratified_indices(full.y, MNIST10K_SIZES, np.random.default_rng(seed))
    return Splits(
        *(
            ArrayDataset(full.x[idx], full.y[idx], name=f"MNIST-10k {part}")
            for part, idx in zip(Splits._fields, parts)
        )
    )


def stratified_indices(
    labels: ArrayLike, sizes: Sequence[int] | np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Disjoint sorted index arrays of the given ``sizes``, each class spread proportionally.

    Class c (n_c samples out of N) gives part p about n_c * sizes[p] / N samples: the floor,
    plus one for some cells so that every class and every part adds up exactly (a 0/1
    matrix with given row and column sums, built greedily as in Ryser's construction).
    Which samples of a class go where is a permutation drawn from ``rng``.
    """
    labels, sizes = np.asarray(labels), np.asarray(sizes, dtype=np.int64)
    if sizes.sum() != len(labels):
        raise ValueError(f"stratified split: sizes {sizes.tolist()} do not add up to {len(labels)}")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts[:, None] * sizes[None, :] / len(labels)
    cells = np.floor(quota).astype(np.int64)
    col_need = sizes - cells.sum(axis=0)
    for c in np.argsort(-(counts - cells.sum(axis=1)), kind="stable"):
        row_need = counts[c] - cells[c].sum()
        # the parts that still need the most samples, ties broken by the largest remainder
        order = np.lexsort((-(quota[c] - cells[c]), -col_need))[:row_need]
        if row_need and col_need[order].min() <= 0:
            raise AssertionError("stratified split: rounding failed")  # cannot happen
        cells[c, order] += 1
        col_need[order] -= 1
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for c, label in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        for p, piece in enumerate(np.split(members, np.cumsum(cells[c])[:-1])):
            parts[p].append(piece)
    return [np.sort(np.concatenate(p)) for p in parts]
