"""Datasets, splits and the DataLoader: coverage, order, batch sizes, resume."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla.data import (
    ArrayDataset,
    ConcatDataset,
    DataLoader,
    Subset,
    random_split,
    train_dev_split,
)
from nabla.data.transforms import Transform
from nabla.optim.scaling import BatchSizeSchedule


def dataset(n=23, classes=3):
    return ArrayDataset(
        np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32),
        np.arange(n) % classes,
    )


def seen(loader) -> list:
    return [int(v) for _, y in loader for v in np.asarray(y.data)]


@pytest.mark.parametrize(
    ("batch_size", "shuffle"), [(1, False), (4, True), (5, True), (23, True), (100, False)]
)
def test_every_sample_exactly_once_per_epoch(batch_size, shuffle):
    ds = ArrayDataset(np.arange(23, dtype=np.float32)[:, None], np.arange(23))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, seed=1)
    for _ in range(3):
        labels = seen(loader)
        assert sorted(labels) == list(range(23))
    assert len(loader) == -(-23 // batch_size)


def test_batches_are_tensors_with_the_dataset_dtypes():
    x, y = next(iter(DataLoader(dataset(), batch_size=4)))
    assert isinstance(x, nb.Tensor) and x.dtype == np.float32 and x.shape == (4, 2)
    assert y.dtype == np.int64 and y.shape == (4,)


def test_drop_last_and_len():
    loader = DataLoader(dataset(23), batch_size=5, drop_last=True, shuffle=True, seed=0)
    assert len(loader) == 4
    batches = [len(y.data) for _, y in loader]
    assert batches == [5, 5, 5, 5]


def test_same_seed_same_order_new_epoch_new_order():
    a = DataLoader(dataset(), batch_size=4, shuffle=True, seed=7)
    b = DataLoader(dataset(), batch_size=4, shuffle=True, seed=7)
    first_a, first_b = seen(a), seen(b)
    assert first_a == first_b
    assert seen(a) != first_a  # epoch 1 reshuffles
    c = DataLoader(dataset(), batch_size=4, shuffle=True, seed=8)
    assert seen(c) != first_a


def test_default_seed_follows_manual_seed():
    nb.manual_seed(3)
    a = seen(DataLoader(dataset(), batch_size=4, shuffle=True))
    nb.manual_seed(3)
    assert seen(DataLoader(dataset(), batch_size=4, shuffle=True)) == a


def test_batch_size_schedule_changes_batches_per_epoch():
    loader = DataLoader(
        dataset(40), batch_size=BatchSizeSchedule(4, milestones=[1, 2], factor=2), shuffle=True
    )
    sizes = []
    for _ in range(3):
        assert len(loader) == -(-40 // loader.batch_size_at(loader.epoch))
        sizes.append({len(y.data) for _, y in loader})
    assert sizes == [{4}, {8}, {16, 8}]


def test_resume_mid_epoch_continues_the_same_order():
    straight = DataLoader(dataset(30), batch_size=4, shuffle=True, seed=2)
    full = [seen(straight) for _ in range(2)]

    loader = DataLoader(dataset(30), batch_size=4, shuffle=True, seed=2)
    first = []
    for i, (_, y) in enumerate(loader):
        first += np.asarray(y.data).tolist()
        if i == 2:
            state = loader.state_dict()
            break
    resumed = DataLoader(dataset(30), batch_size=4, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    rest = seen(resumed)
    assert first + rest == full[0]
    assert seen(resumed) == full[1]


class Record(Transform):
    def __init__(self):
        self.calls = []

    def apply(self, x, y, context):
        self.calls.append((context.epoch, context.indices.copy()))
        return x * 2, y


def test_transform_sees_the_sample_indices_and_epoch():
    record = Record()
    ds = ArrayDataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0, transform=record)
    for _ in range(2):
        for x, y in loader:
            np.testing.assert_array_equal(x.data[:, 0], 2 * y.data)  # the transform's output
    assert [e for e, _ in record.calls] == [0, 0, 0, 1, 1, 1]
    epoch0 = np.concatenate([i for e, i in record.calls if e == 0])
    assert sorted(epoch0.tolist()) == list(range(10))
    np.testing.assert_array_equal(epoch0, DataLoader(dataset(10), shuffle=True, seed=0).order(0))


def test_subset_concat_and_generic_datasets():
    ds = dataset(10)
    sub = Subset(ds, [9, 2, 5])
    assert [int(sub[i][1]) for i in range(3)] == [0, 2, 2]
    np.testing.assert_array_equal(sub.y, ds.y[[9, 2, 5]])
    both = ConcatDataset([sub, dataset(4)])
    assert len(both) == 7 and int(both[3][1]) == 0 and float(both[6][0][0]) == 3.0
    x, y = both.batch(np.array([6, 0, 4]))
    np.testing.assert_array_equal(x[:, 0], [3.0, 9.0, 1.0])
    np.testing.assert_array_equal(y, [0, 0, 1])

    class Plain:  # any object with __len__ and __getitem__
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(3, i, np.float32), i

    assert seen(DataLoader(Plain(), batch_size=2)) == [0, 1, 2, 3, 4]


def test_random_split_is_a_seeded_partition():
    ds = dataset(50)
    parts = random_split(ds, [0.6, 0.2, 0.2], seed=4)
    assert [len(p) for p in parts] == [30, 10, 10]
    together = np.concatenate([p.indices for p in parts])
    assert sorted(together.tolist()) == list(range(50))
    again = random_split(ds, [30, 10, 10], seed=4)
    assert all((a.indices == b.indices).all() for a, b in zip(parts, again))
    with pytest.raises(ValueError, match="add up"):
        random_split(ds, [10, 10])


def test_train_dev_split_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    ds = ArrayDataset(np.zeros((100, 1), np.float32), labels)
    train, dev = train_dev_split(ds, dev_fraction=0.2, seed=0)
    assert np.bincount(ds.y[dev.indices]).tolist() == [12, 6, 2]
    assert len(np.intersect1d(train.indices, dev.indices)) == 0 and len(train) + len(dev) == 100
    again = train_dev_split(ds, dev_fraction=0.2, seed=0)[1]
    np.testing.assert_array_equal(dev.indices, again.indices)
    with pytest.raises(ValueError, match="class label"):
        train_dev_split(ArrayDataset(np.zeros((4, 1)), np.zeros((4, 2))), 0.5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(dataset(), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        DataLoader(ArrayDataset(np.zeros((0, 2))), batch_size=2)
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(2))


def test_workers_give_the_same_batches_in_the_same_order():
    from nabla.data.transforms import Compose, GaussianNoise, RandomTranslate

    ds = ArrayDataset(
        np.random.default_rng(0).random((50, 1, 6, 6), dtype=np.float32), np.arange(50)
    )
    pipeline = Compose([RandomTranslate(2), GaussianNoise(0.1)])
    plain = DataLoader(ds, batch_size=8, shuffle=True, seed=3, transform=pipeline)
    threaded = DataLoader(ds, batch_size=8, shuffle=True, seed=3, transform=pipeline, workers=2)
    for _ in range(2):
        for (xa, ya), (xb, yb) in zip(plain, threaded, strict=True):
            np.testing.assert_array_equal(xa.data, xb.data)
            np.testing.assert_array_equal(ya.data, yb.data)
    with pytest.raises(ValueError, match="workers"):
        DataLoader(ds, workers=-1)
