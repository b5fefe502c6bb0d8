"""A DataLoader epoch interrupted and resumed several times, each resume from the state of the
loader resumed before it, yields exactly the batches of one straight epoch: same samples, same
batch boundaries, same transformed values, nothing repeated or skipped; and so does the next one.
"""

from __future__ import annotations

import numpy as np
import pytest

from nabla.data import ArrayDataset, DataLoader
from nabla.data.transforms import Transform

N, BATCH = 47, 5  # 9 full batches and one of 2: drop_last matters


class Jitter(Transform):
    """Random per-sample noise from the transform's stream: a batch's values depend on the seed,
    the epoch and its indices, which a resume must all restore."""

    def apply(self, x, y, context):
        return x + self.normal(context, x.shape[1]).astype(x.dtype), y


def make_loader(shuffle, drop_last, seed=3):
    x = np.arange(N, dtype=np.float32)[:, None] * np.array([1, -1, 0.5], np.float32)
    data = ArrayDataset(x, np.arange(N))
    return DataLoader(
        data, BATCH, shuffle=shuffle, seed=seed, drop_last=drop_last, transform=Jitter()
    )


def batches(iterator, count=None) -> list:
    """``count`` batches (all, if None) as (values, labels) arrays."""
    out = []
    for x, y in iterator:
        out.append((np.asarray(x.data).copy(), np.asarray(y.data).copy()))
        if count is not None and len(out) == count:
            break
    return out


def assert_same_batches(got, want):
    assert [y.tolist() for _, y in got] == [y.tolist() for _, y in want]
    for (x, _), (x_want, _) in zip(got, want):
        np.testing.assert_array_equal(x, x_want)


def interrupted_epoch(shuffle, drop_last, cuts):
    """One epoch stopped after ``cuts[0]`` batches, saved, loaded into a new loader (another
    seed: the state must carry it), that one stopped after ``cuts[1]`` batches of the epoch, ...;
    the last loader finishes the epoch. Returns the epoch's batches, the last loader and the
    positions the saved states gave."""
    loader = make_loader(shuffle, drop_last)
    got, positions = batches(loader, cuts[0]), []
    for delivered, cut in zip(cuts, [*cuts[1:], None]):
        state = loader.state_dict()
        positions.append(state["position"])
        loader = make_loader(shuffle, drop_last, seed=99)
        loader.load_state_dict(state)
        got += batches(loader, None if cut is None else cut - delivered)
    return got, loader, positions


@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("cuts", [(2, 5), (1, 4, 8), (3, 4, 5)], ids=["twice", "3x", "3x-adjacent"])
def test_an_epoch_resumed_again_and_again_is_the_straight_epoch(shuffle, drop_last, cuts):
    straight = make_loader(shuffle, drop_last)
    want = [batches(straight) for _ in range(2)]
    assert len(want[0]) == (9 if drop_last else 10)
    assert cuts[-1] < len(want[0])
    got, loader, positions = interrupted_epoch(shuffle, drop_last, cuts)
    assert_same_batches(got, want[0])
    assert_same_batches(batches(loader), want[1])  # the next epoch: its own order, in full
    seen = np.concatenate([y for _, y in got])
    assert len(seen) == len(set(seen.tolist()))  # nothing twice
    assert positions == list(cuts)  # each state counts the batches of the whole epoch so far


@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
def test_a_resume_saved_after_the_last_batch_starts_the_next_epoch(drop_last):
    straight = make_loader(True, drop_last)
    want = [batches(straight) for _ in range(2)]
    last = len(want[0])
    got, _, _ = interrupted_epoch(True, drop_last, (2, last - 1))
    assert_same_batches(got, want[0])
    # cut after the final batch: the epoch is done, the next iteration is the next epoch
    loader = make_loader(True, drop_last)
    first = batches(loader, 3)
    resumed = make_loader(True, drop_last, seed=99)
    resumed.load_state_dict(loader.state_dict())
    rest = batches(resumed, last - 3)
    again = make_loader(True, drop_last, seed=99)
    again.load_state_dict(resumed.state_dict())
    assert_same_batches(first + rest, want[0])
    assert_same_batches(batches(again), want[1])


def test_a_loaded_state_saved_again_before_iterating_is_the_same_state():
    loader = make_loader(True, False)
    batches(loader, 2)
    state = loader.state_dict()
    resumed = make_loader(True, False, seed=99)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
