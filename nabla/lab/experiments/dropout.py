"""Dropout reduces overfitting (Srivastava et al. 2014).

Claim (Srivastava, Hinton, Krizhevsky, Sutskever and Salakhutdinov, "Dropout: A Simple Way to
Prevent Neural Networks from Overfitting", JMLR 15, 2014, sections 6.1 and 7): a large network
trained with dropout, each hidden unit kept with probability 0.5 and each input with 0.8, has a
lower test error than the same network trained without; the gain is largest where a big network
overfits a small training set.

Setup: MNIST-10k, a stratified 2,000-sample training subset (the same for every run) and the
1,000-sample dev split; an MLP 784-800-800-10 with ReLU (the size of the classic "2 layers of 800
units" MNIST baseline), about 1.3M weights for 2,000 samples, so without dropout it fits the
training set exactly within a few epochs. Both nets are trained identically: Adam, lr 1e-3 with
cosine decay to 0 over 40 epochs of batch 64, no weight decay, no early stopping (the claim is
about the trained net, not about stopping before it overfits). With dropout: p = 0.2 on the
inputs, p = 0.5 after each hidden layer (inverted dropout, so evaluation uses the plain net: the
paper's weight scaling). The paper trains with SGD, momentum and a max-norm constraint; we keep
the optimizer the same for both nets and change only dropout.

Check, fixed before running: over 3 seeds (initialization, shuffling and dropout masks), the mean
final dev error with dropout is below the mean without by more than the larger of the two
seed-to-seed standard deviations (sample std, n - 1).

Tiny size: the embedded digits (300 training samples, the rest of the training split as dev), a
64-256-256-10 net, 8 epochs: seconds, and proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import models, nn, optim
from ...data import DataLoader
from ...optim import schedules
from .common import EvaluateEachEpoch, classifier, seeds, splits, stratified_subset
from .framework import Experiment, Outcome

SEEDS = 3
LR = 1e-3
P_INPUT, P_HIDDEN = 0.2, 0.5
NETS = ("no dropout", "dropout")
CURVES = ("train_error", "dev_error", "train_loss", "dev_loss")


@dataclass(frozen=True)
class Size:
    dataset: str
    train: int  # training samples
    hidden: tuple
    epochs: int
    batch: int


@dataclass
class Results:
    size: Size
    seeds: list
    inputs: int
    train: int
    dev: int
    runs: dict  # net -> one dict of per-epoch curves (CURVES) per seed

    def final(self, net: str, key: str = "dev_error") -> np.ndarray:
        return np.array([r[key][-1] for r in self.runs[net]])

    def setup(self) -> str:
        net = "-".join(map(str, [self.inputs, *self.size.hidden, 10]))
        return (
            f"{self.size.dataset}: {self.train} training / {self.dev} dev samples; mlp {net}; "
            f"Adam lr {LR:g} cosine, {self.size.epochs} epochs of batch {self.size.batch}"
        )


def data(size: Size):
    """(train subset, dev), flattened; digits' dev set is the rest of its training split."""
    train, dev, _ = splits(size.dataset, flat=True)
    subset, rest = stratified_subset(train, size.train, name="train subset")
    return subset, rest if size.dataset == "digits" else dev


def model(inputs: int, hidden: tuple, dropout: bool) -> nn.Module:
    body = models.mlp([inputs, *hidden, 10], "relu", P_HIDDEN if dropout else 0.0)
    return nn.Sequential(nn.Dropout(P_INPUT), *body) if dropout else body


def train(train_set, dev, size: Size, dropout: bool, seed: int) -> dict:
    """Train one net; its per-epoch train/dev error and loss, measured in eval mode."""
    nb.manual_seed(seed)
    net = model(train_set.x.shape[1], size.hidden, dropout)
    loader = DataLoader(train_set, batch_size=size.batch, shuffle=True, seed=seed)
    lr = schedules.CosineDecay(LR, size.epochs * len(loader))
    trainer = classifier(net, optim.Adam(net.parameters(), lr=lr))
    trainer.callbacks.append(EvaluateEachEpoch(clean=train_set, dev=dev))
    history = trainer.fit(loader, size.epochs, verbose=0)
    return {
        "train_error": 1 - np.array(history["clean_accuracy"]),
        "dev_error": 1 - np.array(history["dev_accuracy"]),
        "train_loss": np.array(history["clean_loss"]),
        "dev_loss": np.array(history["dev_loss"]),
    }


class Dropout(Experiment):
    name = "dropout"
    title = "Dropout reduces overfitting"
    reference = (
        "N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov, Dropout: A "
        "Simple Way to Prevent Neural Networks from Overfitting, JMLR 15 (2014) 1929-1958"
    )
    summary = (
        "a big MLP on 2,000 MNIST samples: dev error with dropout (0.2 in, 0.5 hidden) vs without"
    )
    sizes = {
        "tiny": Size("digits", train=300, hidden=(256, 256), epochs=8, batch=32),
        "full": Size("mnist10k", train=2000, hidden=(800, 800), epochs=40, batch=64),
    }

    def measure(self, size: Size, seed: int) -> Results:
        train_set, dev = data(size)
        inputs = train_set.x.shape[1]
        results = Results(size, seeds(seed, SEEDS), inputs, len(train_set), len(dev), {})
        for net in NETS:
            results.runs[net] = []
            for s in results.seeds:
                run = train(train_set, dev, size, net == "dropout", s)
                results.runs[net].append(run)
                self.log(
                    f"{net:10s} seed {s}: train error {run['train_error'][-1]:.4f}  "
                    f"dev error {run['dev_error'][-1]:.4f}"
                )
        return results

    def verdict(self, results: Results) -> Outcome:
        mean = {net: float(results.final(net).mean()) for net in NETS}
        margin = max(float(results.final(net).std(ddof=1)) for net in NETS)
        gain = mean["no dropout"] - mean["dropout"]
        return Outcome(
            claim="dropout (p=0.2 input, 0.5 hidden) lowers the dev error of a big net on a "
            "small training set by more than the seed-to-seed std",
            ours=f"dev error {mean['dropout']:.4f} with vs {mean['no dropout']:.4f} without "
            f"(difference {gain:.4f}, larger std {margin:.4f}, {SEEDS} seeds)",
            passed=bool(gain > margin),
        )

    def report(self, page, results: Results) -> None:
        page.text(
            "Claim: a large network trained with dropout overfits less than the same network "
            "trained without, and reaches a lower test error (Srivastava et al. 2014).",
            f"Setup: {results.setup()}. Both nets are trained identically; with dropout, "
            f"p = {P_INPUT} on the inputs and p = {P_HIDDEN} after each hidden layer (inverted "
            "dropout). Errors are measured in eval mode after every epoch; no early stopping.",
            f"Check (fixed before running): over {SEEDS} seeds the mean final dev error with "
            "dropout is lower than without by more than the larger seed-to-seed standard "
            "deviation.",
        )
        page.figure(
            curves_figure(results),
            "dropout_curves",
            "error and dev loss per epoch, with and without dropout",
        )
        rows = [
            [net, s, *(r[key][-1] for key in ("train_error", "dev_error", "dev_loss"))]
            for net in NETS
            for s, r in zip(results.seeds, results.runs[net])
        ]
        for net in NETS:
            dev = results.final(net)
            rows.append(
                [
                    f"{net}: mean ± std",
                    "",
                    float(results.final(net, "train_error").mean()),
                    f"{dev.mean():.4f} ± {dev.std(ddof=1):.4f}",
                    float(results.final(net, "dev_loss").mean()),
                ]
            )
        page.table(
            ["net", "seed", "train error", "dev error", "dev loss"],
            rows,
            caption="after the last epoch",
        )


def curves_figure(results: Results):
    from ..report import new_figure

    figure = new_figure((11, 4.2))
    left, right = figure.subplots(1, 2)
    x = np.arange(1, results.size.epochs + 1)
    for net, color in zip(NETS, ("C3", "C0")):
        for key, style, ax in (
            ("dev_error", "-", left),
            ("train_error", "--", left),
            ("dev_loss", "-", right),
        ):
            curves = np.stack([r[key] for r in results.runs[net]])
            split = key.split("_")[0]
            ax.plot(x, curves.mean(axis=0), style, color=color, label=f"{net}: {split}")
            ax.fill_between(
                x, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15, lw=0
            )
    left.set(
        xlabel="epoch",
        ylabel="error (1 - accuracy), eval mode",
        title="train (dashed) and dev (solid) error",
    )
    right.set(xlabel="epoch", ylabel="dev cross-entropy", title="dev loss")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    worst = max(results.final(net).mean() for net in NETS)
    left.set_ylim(0, min(1.0, 2.5 * worst))
    figure.suptitle(f"{results.setup()}; mean of {SEEDS} seeds, band min-max", fontsize=10)
    return figure
