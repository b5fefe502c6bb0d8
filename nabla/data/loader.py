"""DataLoader: batches of a dataset, shuffled per epoch, transformed a whole batch at a time."""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from .. import random
from ..autograd.dtypes import SUPPORTED
from ..creation import from_numpy
from ..memory import keep_freed_memory
from .dataset import _batch
from .transforms.base import Context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from numpy.typing import ArrayLike

    from ..autograd.tensor import Tensor
    from .dataset import DatasetLike

    # a batch transform: (x, y, context) -> (x, y), see ``transforms``
    BatchTransform = Callable[
        [np.ndarray, np.ndarray | None, Context], tuple[ArrayLike, ArrayLike | None]
    ]


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)`` tensors.

    - ``batch_size``: an int, or a callable ``epoch -> int`` such as
      :class:`nabla.optim.scaling.BatchSizeSchedule` (read at the start of each epoch);
    - ``shuffle``: a new permutation each epoch, from (``seed``, epoch) only, so the same seed
      gives the same order (``seed`` defaults to the seed given to ``nb.manual_seed``);
    - ``drop_last``: drop a final incomplete batch;
    - ``transform``: a batch transform ``(x, y, context) -> (x, y)`` (see ``transforms``);
    - ``workers``: threads that prepare upcoming batches (indexing and transforms) while the
      current one is used (NumPy and the compiled kernels release the GIL in their loops).
      Batches are the same with or without workers (each depends only on its indices and epoch).
      The default, 0, was the fastest on 2 cores (docs/data.md): the augmentation kernels are
      quick, and threads trade Python's lock at every call.
    - ``shard=(rank, world_size)``: data-parallel training (see :mod:`nabla.distributed`). Every
      rank draws the same seeded permutation of the epoch and keeps every ``world_size``-th
      sample starting at ``rank`` (``order[rank::world_size]``), so the shards are disjoint and
      batch i of all ranks together is batch i of one process with ``world_size`` times the batch
      size: the union over ranks is exactly the epoch. When ``world_size`` does not divide the
      dataset, ``pad=True`` (the default, needed for training: every rank must take the same
      number of steps) wraps the permutation around, so its first ``-N % world_size`` samples
      are seen twice; ``pad=False`` leaves the shards one sample apart in size (for evaluation,
      where the metrics are weighted by each rank's count).

    Every sample appears exactly once per epoch (per shard: see ``shard``); ``len(loader)`` is the
    number of batches of the next epoch. The loader counts epochs itself: iterating again starts
    the next one.

    >>> from nabla.data import ArrayDataset
    >>> loader = DataLoader(ArrayDataset(np.arange(10.0)[:, None], np.arange(10)), batch_size=4)
    >>> [y.tolist() for _, y in loader]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    def __init__(
        self,
        dataset: DatasetLike,
        batch_size: int | Callable[[int], int] = 1,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        transform: BatchTransform | None = None,
        workers: int = 0,
        shard: tuple[int, int] | list[int] | None = None,
        pad: bool = True,
    ):
        if not callable(batch_size) and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(
                f"DataLoader: batch_size must be a positive int or a schedule, got {batch_size!r}"
            )
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.seed = random.initial_seed() if seed is None else int(seed)
        self.drop_last, self.transform = drop_last, transform
        if int(workers) != workers or workers < 0:
            raise ValueError(f"DataLoader: workers must be an int >= 0, got {workers!r}")
        self.workers = int(workers)
        if shard is not None:
            valid = isinstance(shard, (tuple, list)) and len(shard) == 2
            valid = valid and all(isinstance(v, (int, np.integer)) for v in shard)
            if not (valid and 0 <= shard[0] < shard[1]):
                raise ValueError(
                    f"DataLoader: shard must be (rank, world_size) with 0 <= rank < world_size, "
                    f"got {shard!r}"
                )
            shard = (int(shard[0]), int(shard[1]))
        self.shard, self.pad = shard, bool(pad)
        keep_freed_memory()  # a batch is allocated and freed per step, in worker threads too
        self.epoch = 0  # the epoch the next iteration runs
        self._skip = 0  # batches to skip in the next iteration (resuming mid-epoch)
        self.position = 0  # batches delivered in the current epoch

    def batch_size_at(self, epoch: int) -> int:
        size = self.batch_size(epoch) if callable(self.batch_size) else self.batch_size
        if int(size) != size or size < 1:
            raise ValueError(f"DataLoader: the batch-size schedule gave {size!r} for epoch {epoch}")
        return int(size)

    def __len__(self) -> int:
        n, size = self.samples_per_epoch(), self.batch_size_at(self.epoch)
        return n // size if self.drop_last else math.ceil(n / size)

    def samples_per_epoch(self) -> int:
        """Samples this loader delivers per epoch: the dataset, or this rank's shard of it."""
        n = len(self.dataset)
        if self.shard is None:
            return n
        rank, world = self.shard
        return math.ceil(n / world) if self.pad else len(range(rank, n, world))

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch``: a permutation seeded by (seed, epoch), or 0..N-1;
        with ``shard``, this rank's part of it."""
        n = len(self.dataset)
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        if self.shard is None:
            return order
        rank, world = self.shard
        if self.pad:  # wrap around to a multiple of world_size (np.resize repeats the array)
            order = np.resize(order, math.ceil(n / world) * world)
        return order[rank::world]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        epoch, skip = self.epoch, self._skip
        self.epoch, self._skip = epoch + 1, 0
        size, order = self.batch_size_at(epoch), self.order(epoch)
        stop = len(order) - len(order) % size if self.drop_last else len(order)
        starts = list(range(0, stop, size))[skip:]

        def make(start: int) -> tuple[Tensor, Tensor | None]:
            indices = order[start : start + size]
            x, y = _batch(self.dataset, indices)
            if self.transform is not None:
                x, y = self.transform(x, y, Context(self.seed, epoch, indices))
            return _tensor(x), _tensor(y)

        batches = map(make, starts) if not self.workers else _prefetch(make, starts, self.workers)
        for position, batch in enumerate(batches, start=skip):
            self.position = position + 1
            yield batch
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: the epoch under way and the batches it already delivered (or,
        after ``load_state_dict`` and before iterating, the place it will resume from)."""
        if self.position > 0:  # inside an epoch: ``__iter__`` already counted it in self.epoch
            return {"epoch": self.epoch - 1, "position": self.position, "seed": self.seed}
        return {"epoch": self.epoch, "position": self._skip, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration continues epoch ``state["epoch"]`` after the batches it
        had delivered."""
        self.epoch, self._skip, self.seed = (
            int(state["epoch"]),
            int(state["position"]),
            int(state["seed"]),
        )
        if self._skip >= len(self):  # saved after the epoch's last batch: start the next epoch
            self.epoch, self._skip = self.epoch + 1, 0


def _prefetch(
    make: Callable[[int], tuple[Tensor, Tensor | None]], starts: list[int], workers: int
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``map(make, starts)`` computed by a thread pool, at most 2 * workers batches ahead."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nabla-loader") as pool:
        pending = deque()
        for start in starts:
            pending.append(pool.submit(make, start))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _tensor(a: ArrayLike | None) -> Tensor | None:
    """A zero-copy tensor; other integer types become int64 and float16 float32 (nabla's dtypes)."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype not in SUPPORTED:
        a = a.astype(np.int64 if a.dtype.kind in "iu" else np.float32)
    return from_numpy(a)
