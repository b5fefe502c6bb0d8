"""Train an MLP on the embedded 8x8 digits with the building blocks directly (no Trainer).

    python examples/train_digits.py

This is the loop the Trainer will wrap: a DataLoader, a model, a loss, an optimizer with a
schedule, and evaluation under no_grad. (No augmentation: on 8x8 images even a one-pixel shift
moves a digit by 12% of its width, and it costs accuracy here.)
"""

from __future__ import annotations

import time

import nabla as nb
from nabla import models, nn, optim
from nabla.data import DataLoader, datasets
from nabla.optim import schedules


def accuracy(model, dataset) -> float:
    model.eval()
    with nb.no_grad():
        logits = model(nb.tensor(dataset.x.reshape(len(dataset), -1)))
    model.train()
    return float((logits.data.argmax(axis=1) == dataset.y).mean())


def train(epochs: int = 30, seed: int = 0, verbose: bool = True) -> tuple:
    nb.manual_seed(seed)
    train_set, test_set = datasets.digits()
    loader = DataLoader(train_set, batch_size=32, shuffle=True)
    model = models.mlp([64, 128, 10])
    steps = epochs * len(loader)
    opt = optim.Adam(model.parameters(), lr=schedules.CosineDecay(1e-2, decay_steps=steps))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x.reshape(len(x), -1)), y)
            loss.backward()
            opt.step()
        if verbose:
            print(
                f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  "
                f"test accuracy {accuracy(model, test_set):.3f}"
            )
    return model, accuracy(model, test_set)


if __name__ == "__main__":
    start = time.perf_counter()
    _, test_accuracy = train()
    print(f"test accuracy {test_accuracy:.3f} in {time.perf_counter() - start:.1f} s")
