"""The whole stack together: data -> model -> loss -> backward -> optimizer, on real data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import nabla as nb
from nabla import models, nn, optim
from nabla.data import DataLoader, datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import train_digits


@pytest.mark.parametrize("seed", [0, 1])
def test_mlp_learns_the_digits(seed):
    _, accuracy = train_digits.train(epochs=30, seed=seed, verbose=False)
    assert accuracy >= 0.95  # chance is 0.10; torch with the same recipe reaches ~0.96-0.97


def test_small_cnn_learns_the_digits():
    nb.manual_seed(0)
    train_set, test_set = datasets.digits()
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(8 * 4 * 4, 10),
    )
    opt = optim.SGD(model.named_parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = DataLoader(train_set, batch_size=32, shuffle=True)
    for _ in range(8):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    with nb.no_grad():
        predictions = model(nb.tensor(test_set.x)).data.argmax(axis=1)
    assert (predictions == test_set.y).mean() >= 0.93


def test_training_is_bit_reproducible_for_a_seed():
    def run():
        nb.manual_seed(5)
        model = models.mlp([64, 32, 10], dropout=0.2)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loader = DataLoader(datasets.digits("train"), batch_size=64, shuffle=True)
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x.reshape(len(x), -1)), y).backward()
            opt.step()
        return np.concatenate([p.data.ravel() for p in model.parameters()])

    np.testing.assert_array_equal(run(), run())
