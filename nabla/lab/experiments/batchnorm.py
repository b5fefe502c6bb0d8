"""Batch normalization on the MNIST sigmoid MLP of Ioffe and Szegedy (2015), section 4.1.

The network: 784 -> 100 -> 100 -> 100 -> 10, sigmoid hidden units, weights initialized to small
random Gaussian values (here N(0, 0.1²), the scale at which the first layer's inputs to the
sigmoids have a standard deviation near 1 on MNIST), biases 0, softmax cross-entropy, plain SGD
on minibatches of 60. With BN, each hidden Linear is followed by ``BatchNorm1d``::

    x̂ = (x - μ_B) / sqrt(σ²_B + ε);    y = γ x̂ + β         (per unit, over the minibatch B)

The paper's claims (its figure 1): the BN network converges faster and reaches a higher test
accuracy, and the distribution of a typical sigmoid's input, shown by its 15th, 50th and 85th
percentiles over training, stays stable with BN while it drifts without ("internal covariate
shift"). We train both networks on MNIST-10k (7,000 images; fewer steps than the paper's 50,000)
at each lr of one grid, keep each network's lr with the best final dev accuracy, and record the
dev accuracy and the percentiles of the last hidden layer's sigmoid inputs over a fixed probe of
training images, computed with batch statistics as in training.

**Drift** of a unit: for each of the three percentiles, its range (max - min) over the recorded
steps, divided by the unit's final 15-85 spread so that a network whose inputs are merely
larger is not penalized for the scale; averaged over the three percentiles and all units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import nabla as nb
from nabla import models, nn, optim
from nabla.autograd.grad_mode import no_grad
from nabla.data import ArrayDataset, DataLoader, datasets
from nabla.train import Trainer, TrainingDivergedError, callbacks

from . import Outcome

NAME = "batchnorm"
TITLE = "Batch normalization: faster training and stable sigmoid inputs"
REFERENCE = "Ioffe and Szegedy 2015, section 4.1 and figure 1"
SUMMARY = "a 3x100 sigmoid MLP with BN trains faster and its sigmoid inputs drift less"

PERCENTILES = (15, 50, 85)
INIT_STD = 0.1
BATCH = 60  # the paper's minibatch size


@dataclass(frozen=True)
class Setting:
    data: str
    hidden: tuple
    epochs: int
    lrs: tuple
    every: int  # steps between records of dev accuracy and percentiles
    probe: int  # training images whose sigmoid inputs give the percentiles
    threshold: float  # dev accuracy whose first crossing measures the speed


SETTINGS = {
    # 0.93: above what a linear classifier reaches on MNIST (about 92%), so the hidden layers
    # must be learning; 100 epochs of 117 steps = 11,700 steps of 60 images
    "full": Setting("mnist10k", (100, 100, 100), 100, (0.1, 0.3, 1.0, 3.0, 10.0), 100, 1000, 0.93),
    "tiny": Setting("digits", (32, 32, 32), 8, (0.5,), 10, 200, 0.9),
}


def load(data: str):
    """(train, dev) flattened: mnist10k's 7,000 / 1,000 or the digits' 1,437 / 360."""
    if data == "mnist10k":
        train, dev, _ = datasets.mnist10k(seed=0)
        flat = [ArrayDataset(d.x.reshape(len(d), -1), d.y, name=d.name) for d in (train, dev)]
        return flat[0], flat[1]
    return datasets.digits(flatten=True)


def build(sizes, batch_norm: bool, seed: int) -> nn.Sequential:
    """The sigmoid MLP; with the same seed both variants get the same Linear weights."""
    model = models.mlp(sizes, activation="sigmoid", batch_norm=batch_norm)
    rng = np.random.default_rng(seed)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=INIT_STD, generator=rng)
            nn.init.zeros_(layer.bias)
    return model


def last_sigmoid(model: nn.Sequential) -> int:
    """Index of the last hidden layer's Sigmoid: ``model[:k]`` computes its input."""
    return max(i for i, layer in enumerate(model) if isinstance(layer, nn.Sigmoid))


def sigmoid_inputs(model: nn.Sequential, x) -> np.ndarray:
    """(n, units): the inputs of the last hidden sigmoid on ``x``, with batch statistics as in
    training; BatchNorm's running buffers are put back, so probing leaves training unchanged."""
    saved = [(b, b.data.copy()) for b in model.buffers()]
    was_training = model.training
    model.train()
    with no_grad():
        h = model[: last_sigmoid(model)](x).data.copy()
    model.train(was_training)
    for buffer, value in saved:
        buffer.data[...] = value
    return h


def percentile_drift(p: np.ndarray) -> tuple[float, float]:
    """``p``: (records, 3, units) percentiles over training. Returns (normalized, raw) drift: the
    range over records of each percentile, divided by the unit's final 15-85 spread (or not),
    averaged over percentiles and units."""
    span = p.max(axis=0) - p.min(axis=0)
    spread = np.maximum(p[-1, -1] - p[-1, 0], 1e-12)
    return float(np.mean(span / spread)), float(np.mean(span))


def steps_to(steps, accuracy, threshold: float) -> float:
    """The first recorded step whose dev accuracy is at least ``threshold`` (inf if none)."""
    hits = [s for s, a in zip(steps, accuracy) if a >= threshold]
    return hits[0] if hits else math.inf


class Recorder(callbacks.Callback):
    """Dev accuracy and the probe's percentiles before the first step, then every ``every``
    steps, and ten times as often during the first ``5 * every`` steps (where most changes)."""

    def __init__(self, dev: DataLoader, probe, every: int):
        self.dev, self.probe, self.every = dev, probe, every
        self.steps, self.accuracy, self.percentiles = [], [], []

    def record(self, trainer, step: int) -> None:
        self.steps.append(step)
        self.accuracy.append(trainer.evaluate(self.dev)["accuracy"])
        h = sigmoid_inputs(trainer.model, self.probe)
        self.percentiles.append(np.percentile(h, PERCENTILES, axis=0))

    def on_train_begin(self, trainer) -> None:
        self.record(trainer, 0)

    def on_batch_end(self, trainer, step: int, logs: dict) -> None:
        early = step < 5 * self.every and step % max(self.every // 10, 1) == 0
        if step % self.every == 0 or early:
            self.record(trainer, step)


def train(data, cfg: Setting, batch_norm: bool, lr: float, seed: int) -> dict:
    train_set, dev_set = data
    sizes = [train_set.x.shape[1], *cfg.hidden, int(train_set.y.max()) + 1]
    nb.manual_seed(seed)
    model = build(sizes, batch_norm, seed)
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, seed=seed)
    probe_rows = np.random.default_rng(seed).permutation(len(train_set))[: cfg.probe]
    recorder = Recorder(
        DataLoader(dev_set, batch_size=1000), nb.tensor(train_set.x[probe_rows]), cfg.every
    )
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=lr),
        metrics=["accuracy"],
        callbacks=[recorder],
    )
    try:
        trainer.fit(loader, epochs=cfg.epochs, verbose=0)
    except TrainingDivergedError:  # too large an lr: the run drops out of the selection
        recorder.accuracy[-1] = math.nan
    p = np.asarray(recorder.percentiles)
    drift, raw = percentile_drift(p)
    return dict(
        bn=batch_norm,
        lr=lr,
        steps=np.asarray(recorder.steps),
        accuracy=np.asarray(recorder.accuracy),
        percentiles=p,
        drift=drift,
        raw_drift=raw,
        reach=steps_to(recorder.steps, recorder.accuracy, cfg.threshold),
        final=float(np.mean(recorder.accuracy[-10:])),
        time=trainer.elapsed,
    )


def run(out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    from nabla.lab.report import LabReport

    cfg = SETTINGS[size]
    data = load(cfg.data)
    sizes = [data[0].x.shape[1], *cfg.hidden, 10]
    report = LabReport(
        out, TITLE, subtitle=f"{REFERENCE}; {data[0].name}, size {size}, seed {seed}"
    )
    report.text(
        f"Sigmoid MLP {'-'.join(map(str, sizes))}, weights N(0, {INIT_STD}²), biases 0, plain "
        f"SGD on minibatches of {BATCH}, {cfg.epochs} epochs of {len(data[0])} training images, "
        f"with and without BatchNorm1d after each hidden Linear; the same initial weights for "
        f"both. Each network runs at every lr of {list(cfg.lrs)} and is shown at the lr with "
        "the best final dev accuracy (the mean of its last 10 records; a diverged run drops "
        f"out). Every {cfg.every} steps (every {max(cfg.every // 10, 1)} during the first "
        f"{5 * cfg.every}): dev accuracy, and the {'/'.join(map(str, PERCENTILES))}th "
        f"percentiles of each last-hidden-layer sigmoid input over {cfg.probe} fixed training "
        "images (batch statistics, as in training).",
        f"Check, stated before the run: the BN network reaches {cfg.threshold:.0%} dev accuracy "
        "in fewer steps (never counts as infinitely many), and its percentile drift (range over "
        "training / final 15-85 spread, mean over units and percentiles) is smaller.",
    )
    runs = []
    for bn in (False, True):
        for lr in cfg.lrs:
            r = train(data, cfg, bn, lr, seed)
            runs.append(r)
            if verbose:
                print(
                    f"BN {bn!s:5} lr {lr:<4g} dev {r['final']:.4f} reach {r['reach']} "
                    f"drift {r['drift']:.3f} ({r['time']:.0f} s)"
                )
    report.table(
        [
            "network",
            "lr",
            "final dev accuracy",
            f"steps to {cfg.threshold:.0%}",
            "drift",
            "raw drift",
            "training s",
        ],
        [
            [
                "BN" if r["bn"] else "plain",
                r["lr"],
                r["final"],
                r["reach"],
                r["drift"],
                r["raw_drift"],
                r["time"],
            ]
            for r in runs
        ],
        caption="every run; drift: percentile range over training / final 15-85 spread; raw: "
        "the range itself",
    )
    plain, bn = (max((r for r in runs if r["bn"] == b), key=_score) for b in (False, True))
    report.figure(
        _accuracy_figure(plain, bn, runs, cfg.threshold),
        "accuracy",
        "left: dev accuracy against training steps, each network at its best lr; "
        f"right: steps to {cfg.threshold:.0%} dev accuracy at every lr of the grid "
        "(missing: never reached, or diverged)",
    )
    levels = sorted({0.8, 0.85, 0.9, cfg.threshold, 0.95})
    report.table(
        ["network", *[f"steps to {q:.0%}" for q in levels]],
        [
            [_label(r), *[steps_to(r["steps"], r["accuracy"], q) for q in levels]]
            for r in (plain, bn)
        ],
        caption="the selected runs at other dev accuracy levels (reported, not part of the check)",
    )
    pairs = [
        (
            lr,
            *(
                next(r["reach"] for r in runs if r["lr"] == lr and r["bn"] == b)
                for b in (True, False)
            ),
        )
        for lr in cfg.lrs
    ]
    report.text(
        "At equal lr, BN reaches the threshold first at "
        + (", ".join(f"{lr:g}" for lr, b, p in pairs if b < p) or "no lr")
        + "; the plain network first at "
        + (", ".join(f"{lr:g}" for lr, b, p in pairs if p < b) or "no lr")
        + " (ties and never-reached pairs at the others)."
    )
    report.figure(
        _percentile_figure(plain, bn),
        "percentiles",
        "the 15th, 50th and 85th percentiles of one sigmoid's input (unit 0 of the "
        "last hidden layer) over training: without BN it drifts, with BN it stays put "
        "(compare figure 1(b, c) of the paper)",
    )
    report.figure(
        _drift_figure(plain, bn),
        "drift",
        "drift of every unit of the last hidden layer: the range of each percentile "
        "over training divided by the unit's final 15-85 spread",
    )
    faster = bn["reach"] < plain["reach"]
    stable = bn["drift"] < plain["drift"]
    outcome = Outcome(
        claim=f"with BN the sigmoid MLP reaches {cfg.threshold:.0%} dev accuracy in fewer steps "
        "and its sigmoid inputs' 15/50/85th percentiles drift less over training",
        ours=f"steps to {cfg.threshold:.0%}: BN {bn['reach']} vs plain {plain['reach']}; "
        f"final dev {bn['final']:.2%} vs {plain['final']:.2%}; drift {bn['drift']:.2f} vs "
        f"{plain['drift']:.2f} (lr {bn['lr']:g} vs {plain['lr']:g})",
        passed=bool(faster and stable),
    )
    report.outcome(outcome.line(), outcome.passed)
    report.write()
    return outcome


def _label(r: dict) -> str:
    return f"{'with BN' if r['bn'] else 'without BN'}, lr {r['lr']:g}"


def _score(r: dict) -> float:
    return -math.inf if math.isnan(r["final"]) else r["final"]


def _accuracy_figure(plain: dict, bn: dict, runs: list, threshold: float):
    from nabla.lab.report import new_figure

    fig = new_figure((10, 4))
    ax, right = fig.subplots(1, 2, width_ratios=(3, 2))
    for flag, color, name in ((False, "#d62728", "without BN"), (True, "#1f77b4", "with BN")):
        mine = [r for r in runs if r["bn"] == flag and math.isfinite(r["reach"])]
        right.plot(
            [r["lr"] for r in mine], [r["reach"] for r in mine], "o-", color=color, label=name
        )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel=f"steps to {threshold:.0%} dev accuracy",
        title="Speed at each lr",
    )
    right.grid(True, which="both", alpha=0.3)
    right.legend()
    for r, color in ((plain, "#d62728"), (bn, "#1f77b4")):
        ax.plot(r["steps"][1:], r["accuracy"][1:], color=color, label=_label(r))  # log x: no 0
        if math.isfinite(r["reach"]):
            ax.plot(r["reach"], threshold, "o", color=color)
    ax.axhline(threshold, color="gray", ls="--", lw=1, label=f"{threshold:.0%}")
    ax.set(
        xscale="log",
        xlabel="training steps",
        ylabel="dev accuracy",
        ylim=(max(threshold - 0.15, 0), 1),
        title="Dev accuracy with and without batch normalization",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    return fig


def _percentile_figure(plain: dict, bn: dict):
    from nabla.lab.report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, r in zip(axes, (plain, bn)):
        for i, q in enumerate(PERCENTILES):
            ax.plot(
                r["steps"],
                r["percentiles"][:, i, 0],
                color="k",
                lw=1.6 if q == 50 else 1,
                ls="-" if q == 50 else "--",
                label=f"{q}th percentile",
            )
        ax.set(xlabel="training steps", title=f"{_label(r)}: drift {r['drift']:.2f}")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("input of a last-layer sigmoid")
    axes[0].legend(loc="lower right", fontsize=8)
    return fig


def _drift_figure(plain: dict, bn: dict):
    from nabla.lab.report import new_figure

    def per_unit(p):
        return ((p.max(axis=0) - p.min(axis=0)) / np.maximum(p[-1, -1] - p[-1, 0], 1e-12)).mean(0)

    fig = new_figure((6, 3.6))
    ax = fig.add_subplot()
    values = [per_unit(r["percentiles"]) for r in (plain, bn)]
    bins = np.geomspace(max(min(v.min() for v in values), 1e-3), max(v.max() for v in values), 30)
    for v, r, color in zip(values, (plain, bn), ("#d62728", "#1f77b4")):
        ax.hist(v, bins=bins, alpha=0.6, color=color, label=f"{_label(r)} (mean {v.mean():.2f})")
    ax.set(xscale="log", xlabel="drift of a unit (range / final 15-85 spread)", ylabel="units")
    ax.legend(fontsize=8)
    return fig
