"""Increase the batch size instead of decaying the learning rate (Smith et al. 2018), on MNIST-10k.

SGD with learning rate ε, momentum m and batch size B on N training samples behaves, for small
ε, like a stochastic differential equation whose noise has the scale (their eq. 2 and 6)::

    g = ε (N / B - 1) / (1 - m)  ≈  ε N / (B (1 - m))          (B << N)

Dividing ε by k and multiplying B by k divide g by the same k, and per *epoch* both make the
same drift (ε / k · N / B = ε · N / (k B) steps' worth of gradient). So a step schedule that
decays the learning rate by k at some epochs should give the same curves, epoch for epoch, as
one that keeps ε and multiplies the batch size by k at those epochs, while the latter makes far
fewer parameter updates (N / B per epoch). Their figures 2 and 3 (wide ResNet, CIFAR-10, decays
by 5 at epochs 60, 120, 160 of 200) show three matching curves: "decaying learning rate",
"increasing batch size" (128 -> 640 -> 3,200 -> 16,000) and a "hybrid" that increases the batch
at the first two steps and decays the learning rate at the last one.

Here: an MLP 784-256-10 on MNIST-10k (N = 7,000), SGD momentum 0.9, 20 epochs with the steps at
epochs 6, 12 and 16 (the paper's schedule divided by 10 in time) and k = 5; batch 16 -> 80 ->
400 -> 2,000 (the last is 29% of N, as the paper's 16,000 is 32% of 50,000). A *control* keeps
ε and B constant. The regime: ε = 0.02, well below the rates at which this MLP's large-batch
runs break (about 1, see linear-scaling), so that the small-ε SDE picture applies, with initial
noise scale g = 0.02 * 7,000 / (16 * 0.1) = 87.5.

**The check, stated before the run.** Over the seeds: (1) the final dev error of "increase" and
of "hybrid" are each within X of "decay", X = max(0.5 points, 2 σ sqrt(2 / seeds)) with σ the
seed std of the final dev error pooled over the four schedules; (2) their training-loss curves
match "decay" per epoch: the mean over the epochs from the first step on of |ln L_s - ln L_decay|
is at most half the same distance of the control; (3) "increase" makes at most half the updates
of "decay".

Tiny size: the embedded digits, an MLP 64-32-10, 3 epochs with steps by k = 2 at epochs 1 and 2,
one seed: seconds, and proves nothing.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ...data import DataLoader
from ...optim import scaling, schedules
from .common import pooled_std, seeds, splits
from .framework import Experiment, Outcome
from .linear_scaling import MOMENTUM, log_axis, mean_curve, sgd_mlp, tolerance

SCHEDULES = ("control", "decay", "increase", "hybrid")
COLORS = {"control": "#7f7f7f", "decay": "#1f77b4", "increase": "#d62728", "hybrid": "#2ca02c"}
STYLES = {"control": ":", "decay": "-", "increase": "--", "hybrid": "-."}
PERCENT_TICKS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1)


@dataclass(frozen=True)
class Size:
    data: str  # "mnist10k" (needs NABLA_DATA) or "digits" (embedded)
    hidden: tuple
    epochs: int
    milestones: tuple  # the epochs at which the lr falls or the batch grows
    factor: int  # k
    batch: int  # the initial batch size
    lr: float  # the initial learning rate ε
    seeds: int


@dataclass
class Run:
    """One run of a schedule: its per-epoch curves, batch sizes, rates and noise scales."""

    name: str
    seed: int
    loss: np.ndarray  # training loss per epoch
    dev_error: np.ndarray  # per epoch
    updates: np.ndarray  # the updates made by the end of each epoch
    batch: list  # per epoch
    lr: list  # per epoch
    lr_steps: np.ndarray  # the rate of every update
    noise: list  # g per epoch
    test_error: float
    time: float  # seconds in training


@dataclass
class Results:
    size: Size
    seeds: list
    dataset: str  # the training set's name
    inputs: int
    n: int  # training images
    runs: dict  # schedule -> one Run per seed

    @property
    def final(self) -> dict:
        """Schedule -> the mean over seeds of the final dev error."""
        return {
            name: float(np.mean([r.dev_error[-1] for r in rs])) for name, rs in self.runs.items()
        }

    @property
    def loss(self) -> dict:
        """Schedule -> the mean over seeds of the training-loss curve."""
        return {name: mean_curve(rs, "loss")[1] for name, rs in self.runs.items()}

    @property
    def updates(self) -> dict:
        return {name: int(rs[0].updates[-1]) for name, rs in self.runs.items()}

    @property
    def sigma(self) -> float:
        return pooled_std([[r.dev_error[-1] for r in rs] for rs in self.runs.values()])

    @property
    def tol(self) -> float:
        return tolerance(self.sigma, len(self.seeds))

    @property
    def distance(self) -> dict:
        """Schedule -> its loss curve's distance to decay's from the first milestone on."""
        loss, first = self.loss, self.size.milestones[0]
        return {name: curve_distance(loss[name], loss["decay"], first) for name in SCHEDULES}


def plan(name: str, size: Size):
    """(batch size, learning rate) of the schedule ``name``: the batch as an int or a
    :class:`BatchSizeSchedule` for the loader, the rate as a list with one value per epoch."""
    passed = [bisect.bisect_right(size.milestones, e) for e in range(size.epochs)]
    last = len(size.milestones) - 1  # the hybrid grows the batch at all steps but the last
    k, b0, lr = size.factor, size.batch, size.lr
    if name == "control":
        return b0, [lr] * size.epochs
    if name == "decay":
        return b0, [lr / k**i for i in passed]
    if name == "increase":
        return scaling.BatchSizeSchedule(b0, size.milestones, k), [lr] * size.epochs
    if name == "hybrid":
        batch = scaling.BatchSizeSchedule(b0, size.milestones, k, maximum=b0 * k**last)
        return batch, [lr / k ** max(i - last, 0) for i in passed]
    raise ValueError(f"batch-size-increase: schedule must be one of {SCHEDULES}, got {name!r}")


def epoch_starts(loader: DataLoader, epochs: int) -> list[int]:
    """The number of updates made before each epoch (and after the last), from the loader's
    batch size at each epoch: ceil(N / B(e)) updates in epoch e."""
    n = len(loader.dataset)
    counts = [math.ceil(n / loader.batch_size_at(e)) for e in range(epochs)]
    return [0, *np.cumsum(counts).tolist()]


def per_step(lr_by_epoch: list[float], starts: list[int]) -> schedules.Schedule:
    """The per-epoch rates as a schedule of the update count: a step of the rate at the first
    update of an epoch (a PiecewiseConstant boundary is the last step of the old value)."""
    changes = [e for e in range(1, len(lr_by_epoch)) if lr_by_epoch[e] != lr_by_epoch[e - 1]]
    if not changes:
        return schedules.Constant(lr_by_epoch[0])
    return schedules.PiecewiseConstant(
        [starts[e] - 1 for e in changes], [lr_by_epoch[0], *(lr_by_epoch[e] for e in changes)]
    )


def train(data, size: Size, name: str, seed: int) -> Run:
    """One run of schedule ``name``: per-epoch training loss, dev error, updates, batch and lr."""
    train_set, dev_set, test_set = data
    batch, lr_by_epoch = plan(name, size)
    trainer, loader = sgd_mlp(
        train_set,
        size.hidden,
        batch,
        seed,
        lambda loader: per_step(lr_by_epoch, epoch_starts(loader, size.epochs)),
    )
    h = trainer.fit(loader, size.epochs, dev=DataLoader(dev_set, batch_size=1000), verbose=0)
    batches = [loader.batch_size_at(e) for e in range(size.epochs)]
    return Run(
        name,
        seed,
        loss=np.asarray(h["loss"]),
        dev_error=1 - np.asarray(h["dev_accuracy"]),
        updates=np.asarray(epoch_starts(loader, size.epochs)[1:]),
        batch=batches,
        lr=lr_by_epoch,
        lr_steps=np.asarray(h.steps["lr"]),
        noise=[
            scaling.noise_scale(a, len(train_set), b, MOMENTUM)
            for a, b in zip(lr_by_epoch, batches)
        ],
        test_error=1 - trainer.evaluate(DataLoader(test_set, 1000))["accuracy"],
        time=trainer.elapsed,
    )


def curve_distance(a: np.ndarray, b: np.ndarray, start: int) -> float:
    """mean over epochs e >= start of |ln a_e - ln b_e|: how far two loss curves are, in ratio."""
    return float(np.mean(np.abs(np.log(a[start:]) - np.log(b[start:]))))


class BatchSizeIncrease(Experiment):
    name = "batch-size-increase"
    title = "Don't decay the learning rate, increase the batch size"
    reference = (
        "Smith, Kindermans, Ying and Le 2018, Don't Decay the Learning Rate, Increase the Batch "
        "Size"
    )
    summary = (
        "multiplying the batch by k matches dividing the lr by k, epoch for epoch, in fewer updates"
    )
    sizes = {
        "tiny": Size("digits", (32,), 3, (1, 2), 2, 16, 0.05, 1),
        "full": Size("mnist10k", (256,), 20, (6, 12, 16), 5, 16, 0.02, 3),
    }

    def measure(self, size: Size, seed: int) -> Results:
        data = splits(size.data, flat=True)
        train_set = data[0]
        results = Results(
            size, seeds(seed, size.seeds), train_set.name, train_set.x.shape[1], len(train_set), {}
        )
        for name in SCHEDULES:
            results.runs[name] = []
            for s in results.seeds:
                r = train(data, size, name, s)
                results.runs[name].append(r)
                self.log(
                    f"{name:<8} seed {s}: dev error {r.dev_error[-1]:.2%}, "
                    f"{r.updates[-1]} updates ({r.time:.0f} s)"
                )
        return results

    def verdict(self, results: Results) -> Outcome:
        final, distance, updates = results.final, results.distance, results.updates
        close = all(abs(final[s] - final["decay"]) <= results.tol for s in ("increase", "hybrid"))
        match = all(distance[s] <= distance["control"] / 2 for s in ("increase", "hybrid"))
        fewer = updates["increase"] <= updates["decay"] / 2
        return Outcome(
            claim="multiplying the batch by k instead of dividing the lr by k (or the hybrid) "
            "gives the same dev error (within X) and training-loss curve per epoch, in far fewer "
            "updates",
            ours=f"dev error decay {final['decay']:.2%} / increase {final['increase']:.2%} / "
            f"hybrid {final['hybrid']:.2%} / control {final['control']:.2%} (X "
            f"{results.tol:.2%}); loss-curve distance to decay: increase "
            f"{distance['increase']:.3f}, hybrid {distance['hybrid']:.3f}, control "
            f"{distance['control']:.3f}; updates {updates['increase']} vs {updates['decay']} "
            f"({updates['increase'] / updates['decay']:.0%})",
            passed=bool(close and match and fewer),
        )

    def report(self, page, results: Results) -> None:
        r, size = results, results.size
        page.text(
            f"MLP {r.inputs}-{'-'.join(map(str, size.hidden))}-10 on {r.dataset}, SGD momentum "
            f"{MOMENTUM}, {size.epochs} epochs of N = {r.n} images, seeds {r.seeds}. Steps at "
            f"epochs {', '.join(map(str, size.milestones))} by k = {size.factor}: 'decay' divides "
            f"the lr {size.lr:g} by k at each (batch {size.batch}); 'increase' multiplies the "
            f"batch by k at each (lr {size.lr:g}); 'hybrid' multiplies the batch at all steps but "
            f"the last and divides the lr at the last; 'control' keeps lr {size.lr:g} and batch "
            f"{size.batch}.",
            f"Regime: ε = {size.lr:g} is small (the large-batch runs of this MLP break near lr 1), "
            "so the SDE picture behind the claim applies; the initial noise scale is g = ε N / (B "
            f"(1 - m)) = {scaling.noise_scale(size.lr, r.n, size.batch, MOMENTUM):.4g}.",
            "Check, stated before the run: (1) the mean final dev error of increase and of hybrid "
            "are within X of decay's, X = max(0.5 points, 2 σ sqrt(2 / seeds)), σ the seed std "
            "pooled over the four schedules; (2) their mean training-loss curves stay closer to "
            "decay's than half the control's distance (mean |ln L - ln L_decay| over the epochs "
            "from the first step on); (3) increase makes at most half of decay's updates.",
        )
        page.figure(
            schedule_figure(r),
            "schedules",
            "the four schedules: learning rate, batch size and noise scale g = ε N / (B (1 "
            "- m)) per epoch (compare figure 1 of the paper)",
        )
        page.figure(
            curves_figure(r, "epoch"),
            "epochs",
            "training loss and dev error per epoch, mean over seeds: decay, increase and "
            "hybrid should coincide (figures 2a and 3a of the paper)",
        )
        page.figure(
            curves_figure(r, "updates"),
            "updates",
            "the same curves against the number of parameter updates: increase and hybrid "
            "get there in fewer (figures 2b and 3b of the paper)",
        )
        final, loss, distance = r.final, r.loss, r.distance
        page.table(
            [
                "schedule",
                "updates",
                "mean final dev error",
                "Δ vs decay",
                "mean test error",
                "final training loss",
                "curve distance to decay",
            ],
            [
                [
                    name,
                    r.updates[name],
                    final[name],
                    final[name] - final["decay"],
                    float(np.mean([run.test_error for run in r.runs[name]])),
                    float(loss[name][-1]),
                    distance[name],
                ]
                for name in SCHEDULES
            ],
            caption=f"{len(r.seeds)} seed(s); σ = {r.sigma:.2%}, X = {r.tol:.2%}; curve distance: "
            f"mean |ln L - ln L_decay| over epochs {size.milestones[0] + 1}-{size.epochs}",
        )


# --- figures -------------------------------------------------------------------------------------


def schedule_figure(r: Results):
    from ..report import new_figure

    fig = new_figure((12, 3.4))
    axes = fig.subplots(1, 3)
    epochs = np.arange(r.size.epochs + 1)  # the last value drawn over the last epoch too
    keys = ("lr", "batch", "noise")
    for name, rs in r.runs.items():
        for ax, key in zip(axes, keys):
            values = getattr(rs[0], key)
            ax.step(
                epochs,
                [*values, values[-1]],
                where="post",
                color=COLORS[name],
                ls=STYLES[name],
                lw=1.8,
                label=name,
            )
    for ax, key, label in zip(axes, keys, ("learning rate ε", "batch size B", "noise scale g")):
        ax.set(xlabel="epoch", ylabel=f"{label} (log scale)", yscale="log", title=label)
        log_axis(ax, sorted({v for rs in r.runs.values() for v in getattr(rs[0], key)}))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def curves_figure(r: Results, axis: str):
    from matplotlib.ticker import MaxNLocator

    from ..report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    for name, rs in r.runs.items():
        x = np.arange(1, r.size.epochs + 1) if axis == "epoch" else rs[0].updates
        for ax, key in zip(axes, ("loss", "dev_error")):
            ax.plot(
                x,
                mean_curve(rs, key)[1],
                color=COLORS[name],
                ls=STYLES[name],
                lw=1.8,
                label=name,
            )
    for ax, label, percent in zip(axes, ("training loss", "dev error"), (False, True)):
        ax.set(
            xlabel="epoch" if axis == "epoch" else "parameter updates",
            ylabel=f"{label} (log scale)",
            yscale="log",
            title=f"{label.capitalize()} against {'epochs' if axis == 'epoch' else axis}",
        )
        log_axis(ax, PERCENT_TICKS if percent else None, percent=percent)
        if axis == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            for e in r.size.milestones:
                ax.axvline(e + 0.5, color="gray", lw=0.6, alpha=0.5)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    return fig
