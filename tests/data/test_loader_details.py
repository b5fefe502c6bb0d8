"""DataLoader details pinned by mutation testing (issue 21): argument validation at its exact
boundaries, the documented defaults (PyTorch's), sharding arithmetic, the resume state's keys and
edge cases, the prefetch depth of the worker pool, and the dtypes batches are converted to."""

from __future__ import annotations

import inspect
import math
import re
import threading
from concurrent.futures import Future

import numpy as np
import pytest

import nabla as nb
from nabla.data import ArrayDataset, DataLoader
from nabla.data import loader as loader_module


def dataset(n=10):
    return ArrayDataset(np.arange(n, dtype=np.float32)[:, None], np.arange(n))


def labels(loader) -> list[list[int]]:
    return [np.asarray(y.data).tolist() for _, y in loader]


# --- defaults: PyTorch's DataLoader (batch_size=1, no shuffle, keep the last batch, no workers) --


def test_defaults_are_pytorchs():
    defaults = {k: v.default for k, v in inspect.signature(DataLoader.__init__).parameters.items()}
    assert defaults["batch_size"] == 1 and defaults["shuffle"] is False
    assert defaults["drop_last"] is False and defaults["workers"] == 0
    assert defaults["seed"] is None and defaults["shard"] is None and defaults["pad"] is True
    loader = DataLoader(dataset(3))
    assert loader.workers == 0 and loader.shard is None and loader.pad is True
    assert loader.epoch == 0 and loader.position == 0 and loader._skip == 0
    assert labels(loader) == [[0], [1], [2]]  # one sample a batch, in order, all kept


def test_a_fresh_loader_starts_at_epoch_zero_from_the_start():
    loader = DataLoader(dataset(4), batch_size=2, shuffle=True, seed=5)
    first = labels(loader)
    again = DataLoader(dataset(4), batch_size=2, shuffle=True, seed=5)
    again.load_state_dict({"epoch": 0, "position": 0, "seed": 5})
    assert labels(again) == first and len(first) == 2


def test_the_default_seed_is_nablas_initial_seed():
    nb.manual_seed(1234)
    assert DataLoader(dataset()).seed == 1234
    assert DataLoader(dataset(), seed=7).seed == 7
    assert isinstance(DataLoader(dataset(), seed=np.int64(7)).seed, int)


# --- validation, at the boundaries ---------------------------------------------------------------


def test_batch_size_one_is_the_smallest():
    assert DataLoader(dataset(3), batch_size=1).batch_size_at(0) == 1
    assert DataLoader(dataset(3), batch_size=2.0).batch_size_at(0) == 2  # an integral float
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=rf"batch_size must be .* got {bad!r}"):
            DataLoader(dataset(3), batch_size=bad)


def test_a_schedule_giving_a_bad_size_is_named_with_its_epoch():
    loader = DataLoader(dataset(3), batch_size=lambda epoch: 1 if epoch == 0 else 0)
    assert loader.batch_size_at(0) == 1 and isinstance(loader.batch_size_at(0), int)
    with pytest.raises(ValueError, match=r"schedule gave 0 for epoch 1"):
        loader.batch_size_at(1)
    with pytest.raises(ValueError, match=r"schedule gave 2\.5 for epoch 0"):
        DataLoader(dataset(3), batch_size=lambda epoch: 2.5).batch_size_at(0)
    assert DataLoader(dataset(3), batch_size=lambda epoch: 2.0).batch_size_at(0) == 2


def test_a_one_sample_dataset_is_not_empty():
    assert labels(DataLoader(dataset(1))) == [[0]]
    with pytest.raises(ValueError, match=r"^DataLoader: the dataset is empty$"):
        DataLoader(dataset(0))


def test_workers_zero_is_allowed_and_negative_or_fractional_is_not():
    assert DataLoader(dataset(), workers=0).workers == 0
    assert DataLoader(dataset(), workers=1.0).workers == 1
    assert isinstance(DataLoader(dataset(), workers=1.0).workers, int)
    for bad in (-1, 0.5):
        with pytest.raises(ValueError, match=rf"workers must be an int >= 0, got {bad!r}"):
            DataLoader(dataset(), workers=bad)


@pytest.mark.parametrize("shard", [(0, 1), (0, 2), (1, 2), [2, 3], (np.int64(1), np.int32(3))])
def test_valid_shards(shard):
    loader = DataLoader(dataset(), shard=shard)
    assert loader.shard == (int(shard[0]), int(shard[1]))
    assert all(type(v) is int for v in loader.shard)


@pytest.mark.parametrize(
    "shard", [(2, 2), (-1, 2), (0, 0), (1, 1), (0,), (0, 1, 2), (0.0, 1), ("0", "1"), 0]
)
def test_invalid_shards_are_refused_naming_the_value(shard):
    message = (
        f"DataLoader: shard must be (rank, world_size) with 0 <= rank < world_size, got {shard!r}"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        DataLoader(dataset(), shard=shard)


# --- sharding: sizes and order --------------------------------------------------------------------


@pytest.mark.parametrize("pad", [True, False])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_follow_the_documented_formula(world, pad):
    n = 10
    for rank in range(world):
        loader = DataLoader(
            dataset(n), batch_size=3, shuffle=True, seed=2, shard=(rank, world), pad=pad
        )
        whole = np.random.default_rng([2, 0]).permutation(n)
        if pad:
            whole = np.resize(whole, math.ceil(n / world) * world)
        expected = whole[rank::world].tolist()
        assert loader.order(0).tolist() == expected
        assert loader.samples_per_epoch() == len(expected)
        assert len(loader) == math.ceil(len(expected) / 3)
        assert [v for batch in labels(loader) for v in batch] == expected


def test_unpadded_shards_differ_by_one_and_padded_ones_are_equal():
    sizes = [DataLoader(dataset(10), shard=(r, 4), pad=False).samples_per_epoch() for r in range(4)]
    assert sizes == [3, 3, 2, 2]
    sizes = [DataLoader(dataset(10), shard=(r, 4)).samples_per_epoch() for r in range(4)]
    assert sizes == [3, 3, 3, 3]
    assert (
        DataLoader(dataset(10), pad=0).pad is False and DataLoader(dataset(10), pad=1).pad is True
    )


def test_order_is_seeded_by_seed_and_epoch():
    loader = DataLoader(dataset(20), shuffle=True, seed=9)
    for epoch in (0, 1, 5):
        expected = np.random.default_rng([9, epoch]).permutation(20)
        np.testing.assert_array_equal(loader.order(epoch), expected)
    np.testing.assert_array_equal(DataLoader(dataset(20), seed=9).order(3), np.arange(20))


# --- len and drop_last ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [8, 9, 11])
def test_len_counts_the_batches_iteration_delivers(n):
    for drop_last in (False, True):
        loader = DataLoader(dataset(n), batch_size=4, drop_last=drop_last)
        expected = n // 4 if drop_last else math.ceil(n / 4)
        assert len(loader) == expected == len(labels(loader))
        assert all(len(b) == 4 for b in labels(loader)[: n // 4])


# --- the resume state -----------------------------------------------------------------------------


def test_state_dict_keys_and_values_through_an_epoch():
    loader = DataLoader(dataset(10), batch_size=4, seed=3)
    assert loader.state_dict() == {"epoch": 0, "position": 0, "seed": 3}
    it = iter(loader)
    next(it)
    assert loader.state_dict() == {"epoch": 0, "position": 1, "seed": 3}
    next(it)
    assert loader.state_dict() == {"epoch": 0, "position": 2, "seed": 3}
    next(it)
    assert loader.state_dict() == {"epoch": 0, "position": 3, "seed": 3}
    assert list(it) == []
    assert loader.state_dict() == {"epoch": 1, "position": 0, "seed": 3}
    assert loader.position == 0


def test_load_state_dict_resumes_after_the_delivered_batches():
    loader = DataLoader(dataset(10), batch_size=4, shuffle=True, seed=3)
    loader.load_state_dict({"epoch": 2, "position": 1, "seed": 4})
    assert (loader.epoch, loader._skip, loader.seed) == (2, 1, 4)
    assert loader.state_dict() == {"epoch": 2, "position": 1, "seed": 4}
    order = np.random.default_rng([4, 2]).permutation(10).tolist()
    batches = labels(loader)
    assert batches == [order[4:8], order[8:]]
    assert loader.epoch == 3 and loader._skip == 0


def test_a_state_saved_after_the_last_batch_resumes_at_the_next_epoch():
    loader = DataLoader(dataset(10), batch_size=4)
    loader.load_state_dict({"epoch": 1, "position": 3, "seed": 0})  # len(loader) == 3
    assert (loader.epoch, loader._skip) == (2, 0)
    loader.load_state_dict({"epoch": 1, "position": 2, "seed": 0})  # one batch left
    assert (loader.epoch, loader._skip) == (1, 2)
    assert labels(loader) == [[8, 9]]


def test_state_values_are_plain_ints():
    loader = DataLoader(dataset(10), batch_size=4)
    loader.load_state_dict({"epoch": np.int64(1), "position": "1", "seed": 2.0})
    assert all(type(v) is int for v in loader.state_dict().values())


# --- transforms see their batch -------------------------------------------------------------------


def test_the_transform_gets_seed_epoch_and_indices():
    seen = []

    def transform(x, y, context):
        seen.append((context.seed, context.epoch, context.indices.tolist()))
        return x * 2, y + 100

    loader = DataLoader(dataset(5), batch_size=2, seed=8, transform=transform)
    list(loader)
    batches = list(loader)
    assert seen[3:] == [(8, 1, [0, 1]), (8, 1, [2, 3]), (8, 1, [4])]
    np.testing.assert_array_equal(batches[0][0].data, [[0.0], [2.0]])
    np.testing.assert_array_equal(batches[0][1].data, [100, 101])


# --- workers: the prefetch depth and the threads --------------------------------------------------


class SyncPool:
    """A ThreadPoolExecutor stand-in that runs each task at submit and counts them."""

    made: list = []

    def __init__(self, max_workers, thread_name_prefix=""):
        SyncPool.made.append((max_workers, thread_name_prefix))
        self.submitted = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_prepare_at_most_two_batches_each_ahead(monkeypatch, workers):
    monkeypatch.setattr(loader_module, "ThreadPoolExecutor", SyncPool)
    SyncPool.made = []
    made = []
    batches = loader_module._prefetch(lambda s: made.append(s) or s, list(range(20)), workers)
    assert next(batches) == 0
    assert len(made) == 2 * workers + 1  # the one delivered and 2 * workers ahead
    assert next(batches) == 1 and len(made) == 2 * workers + 2
    assert list(batches) == list(range(2, 20))
    assert SyncPool.made == [(workers, "nabla-loader")]


def test_worker_threads_are_named_and_deliver_every_batch_in_order():
    names = set()

    def transform(x, y, context):
        names.add(threading.current_thread().name)
        return x, y

    loader = DataLoader(dataset(12), batch_size=2, workers=2, transform=transform)
    assert labels(loader) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert names and all(name.startswith("nabla-loader") for name in names)
    assert labels(DataLoader(dataset(3), batch_size=2, workers=4)) == [[0, 1], [2]]


# --- batch dtypes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, np.int64),
        (np.int32, np.int64),
        (np.int16, np.int64),
        (np.float16, np.float32),
        (np.float64, np.float64),
        (np.float32, np.float32),
        (np.int64, np.int64),
        (np.bool_, np.bool_),
    ],
)
def test_batches_take_nablas_dtypes(dtype, expected):
    x = np.arange(4).astype(dtype)[:, None]
    ((xb, yb),) = DataLoader(ArrayDataset(x, x[:, 0]), batch_size=4)
    assert xb.data.dtype == expected and yb.data.dtype == expected
    np.testing.assert_array_equal(xb.data, x.astype(expected))


def test_inputs_without_targets_give_none():
    ((x, y),) = DataLoader(ArrayDataset(np.zeros((2, 3), np.float32)), batch_size=2)
    assert y is None and x.shape == (2, 3)
    assert loader_module._tensor(None) is None
