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

``size="tiny"``: the embedded digits (300 training samples, the rest of the training split as
dev), a 64-256-256-10 net, 8 epochs: seconds, and proves nothing.
"""

from __future__ import annotations

import time

import numpy as np

from . import Outcome

NAME = "dropout"
TITLE = "Dropout reduces overfitting"
REFERENCE = (
    "N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov, Dropout: A Simple "
    "Way to Prevent Neural Networks from Overfitting, JMLR 15 (2014) 1929-1958"
)
SUMMARY = "a big MLP on 2,000 MNIST samples: dev error with dropout (0.2 in, 0.5 hidden) vs without"

SEEDS = 3
SIZES = {  # dataset, training samples, hidden widths, epochs, batch size
    "tiny": dict(dataset="digits", train=300, hidden=[256, 256], epochs=8, batch=32),
    "full": dict(dataset="mnist10k", train=2000, hidden=[800, 800], epochs=40, batch=64),
}
LR = 1e-3
P_INPUT, P_HIDDEN = 0.2, 0.5


def _data(spec: dict):
    """(train, dev) ArrayDatasets, flattened; the training subset is stratified with seed 0."""
    from ...data import ArrayDataset, datasets

    if spec["dataset"] == "digits":
        pool = datasets.digits("train", flatten=True)
        dev = None
    else:
        pool, dev, _ = datasets.mnist10k(seed=0)
    n = len(pool)
    keep, rest = datasets.stratified_indices(
        pool.y, [spec["train"], n - spec["train"]], np.random.default_rng(0)
    )
    flat = pool.x.reshape(n, -1)
    train = ArrayDataset(flat[keep], pool.y[keep], name="train subset")
    if dev is None:  # digits: the rest of the training split is the dev set
        dev = ArrayDataset(flat[rest], pool.y[rest], name="dev")
    else:
        dev = ArrayDataset(dev.x.reshape(len(dev), -1), dev.y, name=dev.name)
    return train, dev


def _model(inputs: int, hidden: list, dropout: bool):
    from ... import models, nn

    body = models.mlp([inputs, *hidden, 10], "relu", P_HIDDEN if dropout else 0.0)
    return nn.Sequential(nn.Dropout(P_INPUT), *body) if dropout else body


def _train(train, dev, spec: dict, dropout: bool, seed: int) -> dict:
    """Train one net; return its per-epoch train/dev error and dev loss (eval mode)."""
    import nabla as nb

    from ... import nn, optim
    from ...data import DataLoader
    from ...optim import schedules
    from ...train import Trainer, callbacks

    nb.manual_seed(seed)
    model = _model(train.x.shape[1], spec["hidden"], dropout)
    loader = DataLoader(train, batch_size=spec["batch"], shuffle=True, seed=seed)
    lr = schedules.CosineDecay(LR, spec["epochs"] * len(loader))
    trainer = Trainer(
        model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=lr), metrics=["accuracy"]
    )
    curves = {"train_error": [], "dev_error": [], "train_loss": [], "dev_loss": []}
    train_eval = DataLoader(train, batch_size=1000)
    dev_eval = DataLoader(dev, batch_size=1000)

    class Record(callbacks.Callback):
        """Errors in eval mode after every epoch (the training-mode accuracy has dropout on)."""

        def on_epoch_end(self, trainer, epoch, logs):
            for split, split_loader in (("train", train_eval), ("dev", dev_eval)):
                result = trainer.evaluate(split_loader)
                curves[f"{split}_error"].append(1.0 - result["accuracy"])
                curves[f"{split}_loss"].append(result["loss"])

    trainer.callbacks.append(Record())
    trainer.fit(loader, spec["epochs"], verbose=0)
    return {k: np.array(v) for k, v in curves.items()}


def _plot(runs: dict, epochs: int, title: str):
    from ..report import new_figure

    figure = new_figure((11, 4.2))
    left, right = figure.subplots(1, 2)
    x = np.arange(1, epochs + 1)
    for label, color in (("no dropout", "C3"), ("dropout", "C0")):
        for key, style, ax in (
            ("dev_error", "-", left),
            ("train_error", "--", left),
            ("dev_loss", "-", right),
        ):
            curves = np.stack([r[key] for r in runs[label]])
            split = key.split("_")[0]
            ax.plot(x, curves.mean(axis=0), style, color=color, label=f"{label}: {split}")
            ax.fill_between(
                x, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15, lw=0
            )
    left.set(
        xlabel="epoch",
        ylabel="error (1 - accuracy), eval mode",
        ylim=(0, None),
        title="train (dashed) and dev (solid) error",
    )
    right.set(xlabel="epoch", ylabel="dev cross-entropy", title="dev loss")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylim(
        0, min(1.0, 2.5 * max(np.mean([r["dev_error"][-1] for r in runs[k]]) for k in runs))
    )
    figure.suptitle(f"{title}; mean of {SEEDS} seeds, band min-max", fontsize=10)
    return figure


def run(out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    from ..report import LabReport

    spec = SIZES[size]
    train, dev = _data(spec)
    seeds = [seed + i for i in range(SEEDS)]
    runs, start = {"no dropout": [], "dropout": []}, time.perf_counter()
    for label in runs:
        for s in seeds:
            runs[label].append(_train(train, dev, spec, label == "dropout", s))
            if verbose:
                r = runs[label][-1]
                print(
                    f"{label:10s} seed {s}: train error {r['train_error'][-1]:.4f}  dev error "
                    f"{r['dev_error'][-1]:.4f}  ({time.perf_counter() - start:.0f}s)",
                    flush=True,
                )
    final = {k: np.array([r["dev_error"][-1] for r in v]) for k, v in runs.items()}
    mean = {k: float(v.mean()) for k, v in final.items()}
    std = {k: float(v.std(ddof=1)) for k, v in final.items()}
    margin = max(std.values())
    passed = mean["no dropout"] - mean["dropout"] > margin
    net = "-".join(map(str, [train.x.shape[1], *spec["hidden"], 10]))
    setup = (
        f"{spec['dataset']}: {len(train)} training / {len(dev)} dev samples; mlp {net}; "
        f"Adam lr {LR:g} cosine, {spec['epochs']} epochs of batch {spec['batch']}"
    )
    outcome = Outcome(
        claim="dropout (p=0.2 input, 0.5 hidden) lowers the dev error of a big net on a small "
        "training set by more than the seed-to-seed std",
        ours=f"dev error {mean['dropout']:.4f} with vs {mean['no dropout']:.4f} without "
        f"(difference {mean['no dropout'] - mean['dropout']:.4f}, larger std {margin:.4f}, "
        f"{SEEDS} seeds)",
        passed=bool(passed),
    )
    page = LabReport(out, TITLE, subtitle=REFERENCE)
    page.text(
        "Claim: a large network trained with dropout overfits less than the same network "
        "trained without, and reaches a lower test error (Srivastava et al. 2014).",
        f"Setup: {setup}. Both nets are trained identically; with dropout, p = {P_INPUT} on the "
        f"inputs and p = {P_HIDDEN} after each hidden layer (inverted dropout). Errors are "
        "measured in eval mode after every epoch; no early stopping.",
        f"Check (fixed before running): over {SEEDS} seeds the mean final dev error with dropout "
        "is lower than without by more than the larger seed-to-seed standard deviation.",
    )
    page.figure(
        _plot(runs, spec["epochs"], setup),
        "dropout_curves",
        "error and dev loss per epoch, with and without dropout",
    )
    rows = [
        [label, s, r["train_error"][-1], r["dev_error"][-1], r["dev_loss"][-1]]
        for label in runs
        for s, r in zip(seeds, runs[label])
    ]
    rows += [
        [
            f"{label}: mean ± std",
            "",
            float(np.mean([r["train_error"][-1] for r in runs[label]])),
            f"{mean[label]:.4f} ± {std[label]:.4f}",
            float(np.mean([r["dev_loss"][-1] for r in runs[label]])),
        ]
        for label in runs
    ]
    page.table(
        ["net", "seed", "train error", "dev error", "dev loss"],
        rows,
        caption="after the last epoch",
    )
    page.text(f"Wall time: {time.perf_counter() - start:.0f} s.")
    page.outcome(outcome.line(), outcome.passed)
    page.write()
    return outcome
