"""Helpers the experiments share: their data, their statistics and their training runs.

- :func:`splits`: (train, dev, test) of MNIST-10k (needs ``NABLA_DATA``) or of the embedded digits,
  whose 360 test images serve as both dev and test;
- :func:`stratified_subset`: the same ``n`` training images for every seed;
- :func:`seeds`, :func:`derive_seed` and :func:`pooled_std`: several seeds, and their noise pooled
  over groups;
- :func:`one_thread`: a measurement of small matrices on one BLAS and kernel thread;
- :func:`classifier` and :class:`EvaluateEachEpoch`: a :class:`~nabla.train.Trainer` for
  cross-entropy with accuracy, and eval-mode loss and accuracy on other splits after every epoch,
  recorded in its history.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np

from ...data import ArrayDataset, DataLoader, datasets
from ...train import Trainer, callbacks

__all__ = [
    "EvaluateEachEpoch",
    "classifier",
    "derive_seed",
    "flatten",
    "one_thread",
    "pooled_std",
    "seeds",
    "splits",
    "stratified_subset",
]


def flatten(dataset: ArrayDataset) -> ArrayDataset:
    """The same samples with each image as one row (for an MLP)."""
    return ArrayDataset(dataset.x.reshape(len(dataset), -1), dataset.y, name=dataset.name)


def splits(data: str, flat: bool = False) -> datasets.Splits:
    """(train, dev, test): ``"mnist10k"``'s 7,000 / 1,000 / 2,000 real images, or ``"digits"``'
    1,437 training images with the 360 test images serving as both dev and test."""
    if data == "mnist10k":
        parts = datasets.mnist10k(seed=0)
    elif data == "digits":
        train, test = datasets.digits()
        parts = datasets.Splits(train, test, test)
    else:
        raise ValueError(f"data must be 'mnist10k' or 'digits', got {data!r}")
    return datasets.Splits(*map(flatten, parts)) if flat else parts


def stratified_subset(dataset: ArrayDataset, n: int, name: str | None = None):
    """(subset, rest): ``n`` samples with every class in proportion, and the others. Always drawn
    with rng 0, so every seed of an experiment trains on the same images."""
    keep, rest = datasets.stratified_indices(
        dataset.y, [n, len(dataset) - n], np.random.default_rng(0)
    )
    subset = ArrayDataset(dataset.x[keep], dataset.y[keep], name=name or dataset.name)
    return subset, ArrayDataset(dataset.x[rest], dataset.y[rest], name=dataset.name)


def seeds(first: int, count: int) -> list[int]:
    """The seeds of a run started with ``--seed first``: first, first + 1, ..."""
    return [first + i for i in range(count)]


def derive_seed(seed: int, *keys: int) -> int:
    """An independent integer seed for one run, from the experiment's seed and the run's keys
    (a member's index, a label count): streams that do not overlap, unlike seed + i."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def pooled_std(groups: list[list[float]]) -> float:
    """sqrt(Σ_g Σ_i (x_gi - mean_g)² / Σ_g (n_g - 1)): the seed std pooled over groups."""
    dof = sum(len(g) - 1 for g in groups)
    if dof <= 0:
        return 0.0
    return math.sqrt(sum(float(np.sum((np.asarray(g) - np.mean(g)) ** 2)) for g in groups) / dof)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One BLAS thread and one kernel thread inside the block, the previous settings after it.

    For small matrices (a LeNet, a 100-wide MLP) a second thread costs more than it gives, and on
    a machine shared with other jobs spinning threads make training several times slower. The
    kernels' results do not depend on their thread count."""
    from threadpoolctl import threadpool_limits

    from ...kernels import get_num_threads, set_num_threads

    threads = get_num_threads()
    with threadpool_limits(1, "blas"):  # restores BLAS's own setting on the way out
        set_num_threads(1)
        try:
            yield
        finally:
            set_num_threads(threads)


def classifier(model, optimizer, **kwargs) -> Trainer:
    """A :class:`~nabla.train.Trainer` for cross-entropy on class labels, with accuracy."""
    from ... import nn

    return Trainer(model, nn.CrossEntropyLoss(), optimizer, metrics=["accuracy"], **kwargs)


class EvaluateEachEpoch(callbacks.Callback):
    """After every epoch, :meth:`Trainer.evaluate` on each named dataset (eval mode, so dropout is
    off and batch norm uses its running statistics); the results join that epoch's history as
    ``NAME_loss`` and ``NAME_accuracy``. The training metrics are measured in training mode, while
    the weights move: this is the clean measurement."""

    def __init__(self, batch_size: int = 1000, **named: ArrayDataset):
        self.loaders = {n: DataLoader(d, batch_size=batch_size) for n, d in named.items()}

    def on_epoch_end(self, trainer, epoch, logs):
        for name, loader in self.loaders.items():
            result = trainer.evaluate(loader)
            trainer.history.epochs[-1].update({f"{name}_{k}": v for k, v in result.items()})
