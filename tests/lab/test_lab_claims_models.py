"""Unit tests of the transfer and ensemble experiments' parts (the experiments themselves run at
tiny size in test_experiments.py)."""

import math
from itertools import combinations

import numpy as np
import pytest

import nabla as nb
from nabla import optim
from nabla.data import ArrayDataset
from nabla.lab.experiments import ensemble, transfer


def small_digits(n_per_class: int = 6):
    """A few 8x8 digits 5-9 (labels 0-4), as the tiny transfer setup sees them."""
    parts = transfer.load(transfer.Transfer.sizes["tiny"])
    pool = parts["target", "train"]
    picks = transfer.few_shot(pool.y, n_per_class, np.random.default_rng(0))
    return ArrayDataset(*pool.batch(picks))


def test_few_shot_draws_n_distinct_examples_of_every_class_reproducibly():
    labels = np.repeat(np.arange(4), [5, 7, 9, 6])
    picks = transfer.few_shot(labels, 3, np.random.default_rng(1))
    assert len(np.unique(picks)) == len(picks) == 12
    assert np.bincount(labels[picks]).tolist() == [3, 3, 3, 3]
    assert (picks == transfer.few_shot(labels, 3, np.random.default_rng(1))).all()
    with pytest.raises(ValueError, match="class 0 has 5 examples, 6 requested"):
        transfer.few_shot(labels, 6, np.random.default_rng(1))


def test_a_frozen_body_stays_bitwise_unchanged_and_gets_no_optimizer_state():
    train = small_digits()
    size = transfer.Transfer.sizes["tiny"]
    nb.manual_seed(0)
    body_state = {k: v.data.copy() for k, v in transfer.make_model(8)[0].state_dict().items()}
    error, checks = transfer.train_target("frozen", body_state, size, train, train, seed=3)
    assert 0.0 <= error <= 1.0
    assert checks and all(checks.values()), checks


def test_the_frozen_checks_catch_a_body_that_trained():
    # the negative control: the same checks on a model whose body was not frozen must fail
    train = small_digits()
    nb.manual_seed(0)
    model = transfer.make_model(8)
    before = {k: v.data.copy() for k, v in model[0].state_dict().items()}
    opt = optim.Adam(model.named_parameters(), lr=1e-2)
    transfer.fit(model, opt, train, steps=5, batch_size=32, seed=0)
    checks = transfer.frozen_checks(model[0], before, opt, model[1])
    assert not any(checks.values()), checks


def test_the_ensemble_log_probability_is_the_log_of_the_mean_probability():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=5.0, size=(4, 50, 3))
    member = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    expected = np.log(np.exp(member).mean(axis=0))
    assert np.allclose(ensemble.ensemble_log_probs(member), expected, rtol=0, atol=1e-12)
    # stable where the naive formula underflows to log(0)
    far = member - 1000.0
    assert np.allclose(ensemble.ensemble_log_probs(far), expected - 1000.0, atol=1e-9)


def test_scores_and_the_subsets_of_every_size():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 200, 5))
    member = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    y = rng.integers(0, 5, size=200)
    error, nll = ensemble.scores(member[0], y)
    assert error == np.mean(np.argmax(logits[0], axis=1) != y)
    assert math.isclose(nll, -np.mean([member[0, i, y[i]] for i in range(200)]), rel_tol=1e-12)
    sizes = ensemble.by_size(member, y)
    assert {k: len(v) for k, v in sizes.items()} == {k: math.comb(4, k) for k in range(1, 5)}
    assert np.allclose(sizes[1], [ensemble.scores(m, y) for m in member])
    # Jensen: each subset's NLL is at most the mean NLL of its members
    for k in range(2, 5):
        for subset, (_, pooled) in zip(combinations(range(4), k), sizes[k]):
            assert pooled <= np.mean(sizes[1][list(subset), 1]) + 1e-12
