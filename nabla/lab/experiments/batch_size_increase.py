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
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

import nabla as nb
from nabla import models, nn, optim
from nabla.data import ArrayDataset, DataLoader, datasets
from nabla.optim import scaling, schedules
from nabla.train import Trainer

from . import Outcome

NAME = "batch-size-increase"
TITLE = "Don't decay the learning rate, increase the batch size"
REFERENCE = (
    "Smith, Kindermans, Ying and Le 2018, Don't Decay the Learning Rate, Increase the Batch Size"
)
SUMMARY = (
    "multiplying the batch by k matches dividing the lr by k, epoch for epoch, in fewer updates"
)

MOMENTUM = 0.9
PAPER_TOLERANCE = 0.005
SCHEDULES = ("control", "decay", "increase", "hybrid")
COLORS = {"control": "#7f7f7f", "decay": "#1f77b4", "increase": "#d62728", "hybrid": "#2ca02c"}
STYLES = {"control": ":", "decay": "-", "increase": "--", "hybrid": "-."}


@dataclass(frozen=True)
class Setting:
    data: str  # "mnist10k" (needs NABLA_DATA) or "digits" (embedded)
    hidden: tuple
    epochs: int
    milestones: tuple  # the epochs at which the lr falls or the batch grows
    factor: int  # k
    batch: int  # the initial batch size
    lr: float  # the initial learning rate ε
    seeds: int


SETTINGS = {
    "full": Setting("mnist10k", (256,), 20, (6, 12, 16), 5, 16, 0.02, 3),
    "tiny": Setting("digits", (32,), 3, (1, 2), 2, 16, 0.05, 1),
}


def load(data: str):
    """(train, dev, test), flattened: MNIST-10k 7,000 / 1,000 / 2,000, or the digits' 1,437
    training images with the 360 test images serving as both dev and test."""
    if data == "mnist10k":
        parts = datasets.mnist10k(seed=0)
        return tuple(ArrayDataset(d.x.reshape(len(d), -1), d.y, name=d.name) for d in parts)
    train, test = datasets.digits(flatten=True)
    return train, test, test


def plan(name: str, cfg: Setting):
    """(batch size, learning rate) of the schedule ``name``: the batch as an int or a
    :class:`BatchSizeSchedule` for the loader, the rate as a list with one value per epoch."""
    passed = [bisect.bisect_right(cfg.milestones, e) for e in range(cfg.epochs)]
    last = len(cfg.milestones) - 1  # the hybrid grows the batch at all steps but the last
    k, b0, lr = cfg.factor, cfg.batch, cfg.lr
    if name == "control":
        return b0, [lr] * cfg.epochs
    if name == "decay":
        return b0, [lr / k**i for i in passed]
    if name == "increase":
        return scaling.BatchSizeSchedule(b0, cfg.milestones, k), [lr] * cfg.epochs
    if name == "hybrid":
        batch = scaling.BatchSizeSchedule(b0, cfg.milestones, k, maximum=b0 * k**last)
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


def train(data, cfg: Setting, name: str, seed: int) -> dict:
    """One run of schedule ``name``: per-epoch training loss, dev error, updates, batch and lr."""
    train_set, dev_set, test_set = data
    batch, lr_by_epoch = plan(name, cfg)
    nb.manual_seed(seed)
    model = models.mlp([train_set.x.shape[1], *cfg.hidden, 10])
    loader = DataLoader(train_set, batch_size=batch, shuffle=True, seed=seed)
    starts = epoch_starts(loader, cfg.epochs)
    opt = optim.SGD(model.parameters(), lr=per_step(lr_by_epoch, starts), momentum=MOMENTUM)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, metrics=["accuracy"])
    h = trainer.fit(loader, cfg.epochs, dev=DataLoader(dev_set, batch_size=1000), verbose=0)
    batches = [loader.batch_size_at(e) for e in range(cfg.epochs)]
    return dict(
        name=name,
        seed=seed,
        loss=np.asarray(h["loss"]),
        dev_error=1 - np.asarray(h["dev_accuracy"]),
        updates=np.asarray(starts[1:]),
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


def pooled_std(groups: list[list[float]]) -> float:
    """sqrt(Σ_g Σ_i (x_gi - mean_g)² / Σ_g (n_g - 1)): the seed std pooled over groups."""
    dof = sum(len(g) - 1 for g in groups)
    if dof <= 0:
        return 0.0
    return math.sqrt(sum(float(np.sum((np.asarray(g) - np.mean(g)) ** 2)) for g in groups) / dof)


def curve_distance(a: np.ndarray, b: np.ndarray, start: int) -> float:
    """mean over epochs e >= start of |ln a_e - ln b_e|: how far two loss curves are, in ratio."""
    return float(np.mean(np.abs(np.log(a[start:]) - np.log(b[start:]))))


def run(out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    from nabla.lab.report import LabReport

    cfg = SETTINGS[size]
    data = load(cfg.data)
    seeds = [seed + i for i in range(cfg.seeds)]
    n = len(data[0])
    report = LabReport(
        out, TITLE, subtitle=f"{REFERENCE}; {data[0].name}, size {size}, seed {seed}"
    )
    report.text(
        f"MLP {data[0].x.shape[1]}-{'-'.join(map(str, cfg.hidden))}-10, SGD momentum "
        f"{MOMENTUM}, {cfg.epochs} epochs of N = {n} images, seeds {seeds}. Steps at epochs "
        f"{', '.join(map(str, cfg.milestones))} by k = {cfg.factor}: 'decay' divides the lr "
        f"{cfg.lr:g} by k at each (batch {cfg.batch}); 'increase' multiplies the batch by k "
        f"at each (lr {cfg.lr:g}); 'hybrid' multiplies the batch at all steps but the last and "
        f"divides the lr at the last; 'control' keeps lr {cfg.lr:g} and batch {cfg.batch}.",
        f"Regime: ε = {cfg.lr:g} is small (the large-batch runs of this MLP break near lr 1), so "
        "the SDE picture behind the claim applies; the initial noise scale is g = ε N / (B (1 - "
        f"m)) = {scaling.noise_scale(cfg.lr, n, cfg.batch, MOMENTUM):.4g}.",
        "Check, stated before the run: (1) the mean final dev error of increase and of hybrid "
        "are within X of decay's, X = max(0.5 points, 2 σ sqrt(2 / seeds)), σ the seed std "
        "pooled over the four schedules; (2) their mean training-loss curves stay closer to "
        "decay's than half the control's distance (mean |ln L - ln L_decay| over the epochs "
        "from the first step on); (3) increase makes at most half of decay's updates.",
    )
    runs = {name: [] for name in SCHEDULES}
    for name in SCHEDULES:
        for s in seeds:
            r = train(data, cfg, name, s)
            runs[name].append(r)
            if verbose:
                print(
                    f"{name:<8} seed {s}: dev error {r['dev_error'][-1]:.2%}, "
                    f"{r['updates'][-1]} updates ({r['time']:.0f} s)"
                )

    final = {name: float(np.mean([r["dev_error"][-1] for r in rs])) for name, rs in runs.items()}
    loss = {name: np.mean([r["loss"] for r in rs], axis=0) for name, rs in runs.items()}
    updates = {name: int(rs[0]["updates"][-1]) for name, rs in runs.items()}
    sigma = pooled_std([[r["dev_error"][-1] for r in rs] for rs in runs.values()])
    tol = max(PAPER_TOLERANCE, 2 * sigma * math.sqrt(2 / len(seeds)))
    first = cfg.milestones[0]
    distance = {name: curve_distance(loss[name], loss["decay"], first) for name in SCHEDULES}

    report.figure(
        _schedule_figure(runs, cfg),
        "schedules",
        "the four schedules: learning rate, batch size and noise scale g = ε N / (B (1 "
        "- m)) per epoch (compare figure 1 of the paper)",
    )
    report.figure(
        _curves_figure(runs, cfg, "epoch"),
        "epochs",
        "training loss and dev error per epoch, mean over seeds: decay, increase and "
        "hybrid should coincide (figures 2a and 3a of the paper)",
    )
    report.figure(
        _curves_figure(runs, cfg, "updates"),
        "updates",
        "the same curves against the number of parameter updates: increase and hybrid "
        "get there in fewer (figures 2b and 3b of the paper)",
    )
    report.table(
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
                updates[name],
                final[name],
                final[name] - final["decay"],
                float(np.mean([r["test_error"] for r in runs[name]])),
                float(loss[name][-1]),
                distance[name],
            ]
            for name in SCHEDULES
        ],
        caption=f"{len(seeds)} seed(s); σ = {sigma:.2%}, X = {tol:.2%}; curve distance: mean "
        f"|ln L - ln L_decay| over epochs {first + 1}-{cfg.epochs}",
    )

    close = all(abs(final[s] - final["decay"]) <= tol for s in ("increase", "hybrid"))
    match = all(distance[s] <= distance["control"] / 2 for s in ("increase", "hybrid"))
    fewer = updates["increase"] <= updates["decay"] / 2
    outcome = Outcome(
        claim="multiplying the batch by k instead of dividing the lr by k (or the hybrid) gives "
        "the same dev error (within X) and training-loss curve per epoch, in far fewer updates",
        ours=f"dev error decay {final['decay']:.2%} / increase {final['increase']:.2%} / hybrid "
        f"{final['hybrid']:.2%} / control {final['control']:.2%} (X {tol:.2%}); loss-curve "
        f"distance to decay: increase {distance['increase']:.3f}, hybrid "
        f"{distance['hybrid']:.3f}, control {distance['control']:.3f}; updates "
        f"{updates['increase']} vs {updates['decay']} "
        f"({updates['increase'] / updates['decay']:.0%})",
        passed=bool(close and match and fewer),
    )
    report.outcome(outcome.line(), outcome.passed)
    report.write()
    return outcome


# --- figures -------------------------------------------------------------------------------------


def _log_axis(ax, ticks=None, percent: bool = False) -> None:
    """Readable labels on a log y axis: at ``ticks`` if given, else at 1, 2 and 5 times powers
    of ten; values as 0.02 or 5% rather than powers of ten; no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if percent:
        ticks = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1]
    locator = FixedLocator(ticks) if ticks is not None else LogLocator(subs=(1, 2, 5))
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{100 * v:.3g}%" if percent else f"{v:.4g}")
    )
    ax.yaxis.set_minor_formatter(NullFormatter())


def _schedule_figure(runs, cfg: Setting):
    from nabla.lab.report import new_figure

    fig = new_figure((12, 3.4))
    axes = fig.subplots(1, 3)
    epochs = np.arange(cfg.epochs + 1)  # the last value drawn over the last epoch too
    for name, rs in runs.items():
        for ax, key in zip(axes, ("lr", "batch", "noise")):
            ax.step(
                epochs,
                [*rs[0][key], rs[0][key][-1]],
                where="post",
                color=COLORS[name],
                ls=STYLES[name],
                lw=1.8,
                label=name,
            )
    for ax, key, label in zip(
        axes, ("lr", "batch", "noise"), ("learning rate ε", "batch size B", "noise scale g")
    ):
        ax.set(xlabel="epoch", ylabel=f"{label} (log scale)", yscale="log", title=label)
        _log_axis(ax, sorted({v for rs in runs.values() for v in rs[0][key]}))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def _curves_figure(runs, cfg: Setting, axis: str):
    from matplotlib.ticker import MaxNLocator

    from nabla.lab.report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    for name, rs in runs.items():
        x = np.arange(1, cfg.epochs + 1) if axis == "epoch" else rs[0]["updates"]
        for ax, key in zip(axes, ("loss", "dev_error")):
            ax.plot(
                x,
                np.mean([r[key] for r in rs], axis=0),
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
        _log_axis(ax, percent=percent)
        if axis == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            for e in cfg.milestones:
                ax.axvline(e + 0.5, color="gray", lw=0.6, alpha=0.5)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    return fig
