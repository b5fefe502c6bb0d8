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

from ... import models, nn, optim
from ...autograd.grad_mode import no_grad
from ...data import DataLoader
from ...train import TrainingDivergedError, callbacks
from .common import classifier, splits
from .framework import Experiment, Outcome

PERCENTILES = (15, 50, 85)
INIT_STD = 0.1
BATCH = 60  # the paper's minibatch size
COLORS = {False: "#d62728", True: "#1f77b4"}  # without, with BN


@dataclass(frozen=True)
class Size:
    data: str
    hidden: tuple
    epochs: int
    lrs: tuple
    every: int  # steps between records of dev accuracy and percentiles
    probe: int  # training images whose sigmoid inputs give the percentiles
    threshold: float  # dev accuracy whose first crossing measures the speed


@dataclass
class Run:
    """One network at one lr: the records (steps, dev accuracy, percentiles of shape
    (records, 3, units)) and what the check reads from them."""

    bn: bool
    lr: float
    steps: np.ndarray
    accuracy: np.ndarray
    percentiles: np.ndarray
    drift: float
    raw_drift: float
    reach: float  # the first recorded step at the threshold (inf if never)
    final: float  # the mean dev accuracy of the last 10 records (nan if diverged)
    time: float

    @property
    def label(self) -> str:
        return f"{'with BN' if self.bn else 'without BN'}, lr {self.lr:g}"

    def score(self) -> float:
        return -math.inf if math.isnan(self.final) else self.final


@dataclass
class Results:
    size: Size
    widths: list  # the layers of the MLP, as shown
    train: int  # training images
    runs: list  # of Run: without BN at every lr, then with

    def best(self, bn: bool) -> Run:
        """The network's run with the best final dev accuracy (a diverged run never)."""
        return max((r for r in self.runs if r.bn == bn), key=Run.score)


def load(data: str):
    """(train, dev) flattened: mnist10k's 7,000 / 1,000 or the digits' 1,437 / 360."""
    return splits(data, flat=True)[:2]


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


def train(data, size: Size, batch_norm: bool, lr: float, seed: int) -> Run:
    train_set, dev_set = data
    sizes = [train_set.x.shape[1], *size.hidden, int(train_set.y.max()) + 1]
    nb.manual_seed(seed)
    model = build(sizes, batch_norm, seed)
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, seed=seed)
    probe_rows = np.random.default_rng(seed).permutation(len(train_set))[: size.probe]
    recorder = Recorder(
        DataLoader(dev_set, batch_size=1000), nb.tensor(train_set.x[probe_rows]), size.every
    )
    trainer = classifier(model, optim.SGD(model.parameters(), lr=lr), callbacks=[recorder])
    try:
        trainer.fit(loader, epochs=size.epochs, verbose=0)
    except TrainingDivergedError:  # too large an lr: the run drops out of the selection
        recorder.accuracy[-1] = math.nan
    p = np.asarray(recorder.percentiles)
    drift, raw = percentile_drift(p)
    return Run(
        batch_norm,
        lr,
        steps=np.asarray(recorder.steps),
        accuracy=np.asarray(recorder.accuracy),
        percentiles=p,
        drift=drift,
        raw_drift=raw,
        reach=steps_to(recorder.steps, recorder.accuracy, size.threshold),
        final=float(np.mean(recorder.accuracy[-10:])),
        time=trainer.elapsed,
    )


class BatchNorm(Experiment):
    name = "batchnorm"
    title = "Batch normalization: faster training and stable sigmoid inputs"
    reference = "Ioffe and Szegedy 2015, section 4.1 and figure 1"
    summary = "a 3x100 sigmoid MLP with BN trains faster and its sigmoid inputs drift less"
    sizes = {
        "tiny": Size("digits", (32,) * 3, 8, (0.5,), 10, 200, 0.9),
        # 0.93: above what a linear classifier reaches on MNIST (about 92%), so the hidden layers
        # must be learning; 100 epochs of 117 steps = 11,700 steps of 60 images
        "full": Size("mnist10k", (100,) * 3, 100, (0.1, 0.3, 1.0, 3.0, 10.0), 100, 1000, 0.93),
    }

    def measure(self, size: Size, seed: int) -> Results:
        data = load(size.data)
        results = Results(size, [data[0].x.shape[1], *size.hidden, 10], len(data[0]), [])
        for bn in (False, True):
            for lr in size.lrs:
                r = train(data, size, bn, lr, seed)
                results.runs.append(r)
                self.log(
                    f"BN {bn!s:5} lr {lr:<4g} dev {r.final:.4f} reach {r.reach} "
                    f"drift {r.drift:.3f} ({r.time:.0f} s)"
                )
        return results

    def verdict(self, results: Results) -> Outcome:
        plain, bn, threshold = results.best(False), results.best(True), results.size.threshold
        return Outcome(
            claim=f"with BN the sigmoid MLP reaches {threshold:.0%} dev accuracy in fewer steps "
            "and its sigmoid inputs' 15/50/85th percentiles drift less over training",
            ours=f"steps to {threshold:.0%}: BN {bn.reach} vs plain {plain.reach}; "
            f"final dev {bn.final:.2%} vs {plain.final:.2%}; drift {bn.drift:.2f} vs "
            f"{plain.drift:.2f} (lr {bn.lr:g} vs {plain.lr:g})",
            passed=bool(bn.reach < plain.reach and bn.drift < plain.drift),
        )

    def report(self, page, results: Results) -> None:
        size, runs = results.size, results.runs
        page.text(
            f"Sigmoid MLP {'-'.join(map(str, results.widths))}, weights N(0, {INIT_STD}²), biases "
            f"0, plain SGD on minibatches of {BATCH}, {size.epochs} epochs of {results.train} "
            f"{size.data} training images, with and without BatchNorm1d after each hidden "
            "Linear; the same initial weights for both. Each network runs at every lr of "
            f"{list(size.lrs)} and is "
            "shown at the lr with the best final dev accuracy (the mean of its last 10 records; a "
            f"diverged run drops out). Every {size.every} steps (every "
            f"{max(size.every // 10, 1)} during the first {5 * size.every}): dev accuracy, and "
            f"the {'/'.join(map(str, PERCENTILES))}th percentiles of each last-hidden-layer "
            f"sigmoid input over {size.probe} fixed training images (batch statistics, as in "
            "training).",
            f"Check, stated before the run: the BN network reaches {size.threshold:.0%} dev "
            "accuracy in fewer steps (never counts as infinitely many), and its percentile drift "
            "(range over training / final 15-85 spread, mean over units and percentiles) is "
            "smaller.",
        )
        speed = f"steps to {size.threshold:.0%}"
        page.table(
            ["network", "lr", "final dev accuracy", speed, "drift", "raw drift", "training s"],
            [
                ["BN" if r.bn else "plain", r.lr, r.final, r.reach, r.drift, r.raw_drift, r.time]
                for r in runs
            ],
            caption="every run; drift: percentile range over training / final 15-85 spread; "
            "raw: the range itself",
        )
        plain, bn = results.best(False), results.best(True)
        page.figure(
            accuracy_figure(plain, bn, runs, size.threshold),
            "accuracy",
            "left: dev accuracy against training steps, each network at its best lr; "
            f"right: steps to {size.threshold:.0%} dev accuracy at every lr of the grid "
            "(missing: never reached, or diverged)",
        )
        levels = sorted({0.8, 0.85, 0.9, size.threshold, 0.95})
        page.table(
            ["network", *[f"steps to {q:.0%}" for q in levels]],
            [[r.label, *[steps_to(r.steps, r.accuracy, q) for q in levels]] for r in (plain, bn)],
            caption="the selected runs at other dev accuracy levels (reported, not part of the "
            "check)",
        )
        reach = {(r.lr, r.bn): r.reach for r in runs}
        first = {
            net: ", ".join(f"{lr:g}" for lr in size.lrs if reach[lr, bn] < reach[lr, not bn])
            or "no lr"
            for net, bn in (("BN", True), ("plain", False))
        }
        page.text(
            f"At equal lr, BN reaches the threshold first at {first['BN']}; the plain network "
            f"first at {first['plain']} (ties and never-reached pairs at the others)."
        )
        page.figure(
            percentile_figure(plain, bn),
            "percentiles",
            "the 15th, 50th and 85th percentiles of one sigmoid's input (unit 0 of the "
            "last hidden layer) over training: without BN it drifts, with BN it stays put "
            "(compare figure 1(b, c) of the paper)",
        )
        page.figure(
            drift_figure(plain, bn),
            "drift",
            "drift of every unit of the last hidden layer: the range of each percentile "
            "over training divided by the unit's final 15-85 spread",
        )


def accuracy_figure(plain: Run, bn: Run, runs: list, threshold: float):
    from ..report import new_figure

    fig = new_figure((10, 4))
    ax, right = fig.subplots(1, 2, width_ratios=(3, 2))
    for flag, name in ((False, "without BN"), (True, "with BN")):
        mine = [r for r in runs if r.bn == flag and math.isfinite(r.reach)]
        right.plot(
            [r.lr for r in mine], [r.reach for r in mine], "o-", color=COLORS[flag], label=name
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
    for r in (plain, bn):
        ax.plot(r.steps[1:], r.accuracy[1:], color=COLORS[r.bn], label=r.label)  # log x: no 0
        if math.isfinite(r.reach):
            ax.plot(r.reach, threshold, "o", color=COLORS[r.bn])
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


def percentile_figure(plain: Run, bn: Run):
    from ..report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, r in zip(axes, (plain, bn)):
        for i, q in enumerate(PERCENTILES):
            ax.plot(
                r.steps,
                r.percentiles[:, i, 0],
                color="k",
                lw=1.6 if q == 50 else 1,
                ls="-" if q == 50 else "--",
                label=f"{q}th percentile",
            )
        ax.set(xlabel="training steps", title=f"{r.label}: drift {r.drift:.2f}")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("input of a last-layer sigmoid")
    axes[0].legend(loc="lower right", fontsize=8)
    return fig


def drift_figure(plain: Run, bn: Run):
    from ..report import new_figure

    def per_unit(p):
        return ((p.max(axis=0) - p.min(axis=0)) / np.maximum(p[-1, -1] - p[-1, 0], 1e-12)).mean(0)

    fig = new_figure((6, 3.6))
    ax = fig.add_subplot()
    values = [per_unit(r.percentiles) for r in (plain, bn)]
    bins = np.geomspace(max(min(v.min() for v in values), 1e-3), max(v.max() for v in values), 30)
    for v, r in zip(values, (plain, bn)):
        ax.hist(
            v, bins=bins, alpha=0.6, color=COLORS[r.bn], label=f"{r.label} (mean {v.mean():.2f})"
        )
    ax.set(xscale="log", xlabel="drift of a unit (range / final 15-85 spread)", ylabel="units")
    ax.legend(fontsize=8)
    return fig
