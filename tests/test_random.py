"""Random numbers: one seed drives every draw; explicit generators; independent derived streams."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import random


@pytest.fixture(autouse=True)
def _restore_seed():
    seed = random.initial_seed()
    yield
    nb.manual_seed(seed)


def test_manual_seed_reproduces_draws():
    nb.manual_seed(123)
    first = [nb.randn(3, 2).data, nb.rand(4).data, nb.randint(0, 10, 5).data]
    nb.manual_seed(123)
    second = [nb.randn(3, 2).data, nb.rand(4).data, nb.randint(0, 10, 5).data]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_manual_seed_matches_numpy_default_rng():
    nb.manual_seed(7)
    t = nb.randn(5)
    np.testing.assert_array_equal(
        t.data, np.random.default_rng(7).standard_normal(5, dtype=np.float32)
    )


def test_different_seeds_differ():
    nb.manual_seed(1)
    a = nb.randn(8).data
    nb.manual_seed(2)
    b = nb.randn(8).data
    assert not np.array_equal(a, b)


def test_consecutive_draws_differ():
    nb.manual_seed(0)
    assert not np.array_equal(nb.rand(8).data, nb.rand(8).data)


def test_manual_seed_returns_the_default_generator():
    g = nb.manual_seed(5)
    assert isinstance(g, np.random.Generator)
    assert g is random.default_generator()
    assert random.initial_seed() == 5
    expected = np.random.default_rng(5).random(3, dtype=np.float32)
    np.testing.assert_array_equal(nb.rand(3).data, expected)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_manual_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        nb.manual_seed(seed)


def test_manual_seed_accepts_numpy_integers():
    nb.manual_seed(np.int64(3))
    assert random.initial_seed() == 3


def test_explicit_generator_is_used_and_default_is_untouched():
    nb.manual_seed(11)
    expected_default = np.random.default_rng(11).standard_normal(4, dtype=np.float32)
    g = np.random.default_rng(99)
    t = nb.randn(2, 3, generator=g)
    np.testing.assert_array_equal(
        t.data, np.random.default_rng(99).standard_normal((2, 3), dtype=np.float32)
    )
    nb.rand(5, generator=g)
    nb.randint(0, 3, 4, generator=g)
    # The default stream continues as if the explicit draws never happened.
    np.testing.assert_array_equal(nb.randn(4).data, expected_default)


def test_resolve():
    g = np.random.default_rng(0)
    assert random.resolve(g) is g
    assert random.resolve(None) is random.default_generator()


def test_derive_is_reproducible_and_independent_of_default_draws():
    nb.manual_seed(4)
    a = random.derive(2, 5).standard_normal(6)
    nb.randn(100)  # draws from the default generator must not shift derived streams
    b = random.derive(2, 5).standard_normal(6)
    np.testing.assert_array_equal(a, b)
    nb.manual_seed(4)
    np.testing.assert_array_equal(random.derive(2, 5).standard_normal(6), a)


def test_derive_does_not_consume_the_default_stream():
    nb.manual_seed(8)
    expected = np.random.default_rng(8).random(3, dtype=np.float32)
    random.derive(0).random(10)
    random.derive(1, 2).random(10)
    np.testing.assert_array_equal(nb.rand(3).data, expected)


def test_derived_streams_differ_by_key_and_by_seed():
    nb.manual_seed(4)
    draws = {keys: random.derive(*keys).standard_normal(8) for keys in [(0,), (1,), (0, 1), (1, 0)]}
    base = random.derive().standard_normal(8)
    nb.manual_seed(5)
    other_seed = random.derive(0).standard_normal(8)
    everything = [*draws.values(), base, other_seed]
    for i, x in enumerate(everything):
        for y in everything[i + 1 :]:
            assert not np.array_equal(x, y)


def test_derived_stream_matches_seed_sequence_spawn_key():
    nb.manual_seed(6)
    expected = np.random.default_rng(np.random.SeedSequence(6, spawn_key=(3, 1))).random(4)
    np.testing.assert_array_equal(random.derive(3, 1).random(4), expected)


def test_derived_generator_drives_creation():
    nb.manual_seed(9)
    a = nb.randn(3, generator=random.derive(1))
    b = nb.randn(3, generator=random.derive(1))
    np.testing.assert_array_equal(a.data, b.data)
