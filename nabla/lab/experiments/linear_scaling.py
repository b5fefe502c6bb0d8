"""The linear scaling rule with gradual warmup (Goyal et al. 2017), on MNIST-10k.

Goyal et al. train ResNet-50 on ImageNet with SGD (momentum 0.9) for the same 90 epochs at every
minibatch size B, with the learning rate scaled with the batch::

    η(B) = η_ref · B / B_ref                                   (the linear scaling rule, §2.1)

and reached by a *gradual warmup*: a linear ramp from η_ref to η(B) over the first 5 epochs
(§2.2). Their claim (table 1, figures 1 and 4): from B = 256 to 8k the final error stays within
a few tenths of a point of the small-batch error, and beyond 8k it degrades (the breaking
point); at 8k, training without warmup or with a *constant* warmup (η_ref for 5 epochs, then a
jump to η(B)) ends worse than gradual warmup, whose training curve matches the small batch's.

Here: an MLP 784-256-10 on MNIST-10k (7,000 training images), SGD with momentum 0.9, the
paper's schedule divided by 5 in time (18 epochs; warmup 1 epoch; lr / 10 at epochs 6, 12 and
16, as the paper's 30, 60, 80 of 90). η_ref is tuned at B_ref = 16 on a small grid (the
paper's η_ref is the well-tuned rate of its baseline), then every B up to 4096 runs with
η_ref · B / 16 and gradual warmup, for several seeds. Same epochs at every B: a large batch
makes far fewer updates (7,000 / B per epoch).

**The check, stated before the run.** Seed noise σ is the pooled standard deviation over seeds
of the final dev error at B_ref (all grid rates); the tolerance is
X = max(0.5 points, 2 σ sqrt(2 / seeds)): the paper's ~0.5 point loosened to two standard errors
of a difference of two seed means. B* is the largest batch such that every batch up to it has a
mean dev error within X of B_ref's; the batches after it are past the breaking point. PASS if
B* >= 8 B_ref, a breaking point is seen in the sweep, and at B* gradual warmup ends with a mean
dev error no higher than both no warmup and constant warmup.

Tiny size: the embedded digits, an MLP 64-32-10, 3 epochs, B = 16, 128 and 1024 at one rate and
one seed: seconds, and proves nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import nabla as nb

from ... import models, optim
from ...data import DataLoader
from ...optim import scaling, schedules
from ...train import TrainingDivergedError
from .common import classifier, pooled_std, seeds, splits
from .framework import Experiment, Outcome

MOMENTUM = 0.9
PAPER_TOLERANCE = 0.005  # "within ~0.5%" of the small-batch error (table 1 / figure 4)
WARMUPS = ("none", "constant", "gradual")
CHANCE = 0.9  # the dev error we record for a run that diverged (10 classes)


@dataclass(frozen=True)
class Size:
    data: str  # "mnist10k" (needs NABLA_DATA) or "digits" (embedded)
    hidden: tuple
    epochs: int
    warmup_epochs: int
    decay_epochs: tuple  # lr / 10 at the start of each
    base_batch: int  # B_ref
    batches: tuple  # the sweep, from B_ref up
    lrs: tuple  # the η_ref grid, tuned at B_ref
    seeds: int


@dataclass
class Run:
    """One training run: its settings, per-epoch curves and final dev and test error."""

    batch: int
    lr: float  # the peak rate η(B)
    warmup: str
    seed: int
    loss: list  # training loss per epoch (the mean over the epoch's batches)
    dev_error: list  # per epoch
    test_error: float
    updates: int
    diverged: bool
    lr_steps: list = field(default_factory=list)  # the rate of every update

    @property
    def final(self) -> float:
        return CHANCE if self.diverged else self.dev_error[-1]


@dataclass
class Results:
    size: Size
    seeds: list
    dataset: str  # the training set's name
    inputs: int
    train: int  # training images
    grid: dict = field(default_factory=dict)  # η_ref -> the runs at B_ref, gradual warmup
    sweep: dict = field(default_factory=dict)  # B -> the runs at η_ref B / B_ref, gradual warmup
    warmups: dict = field(default_factory=dict)  # B*, breaking B (if above B_ref) -> warmup -> runs

    @property
    def base_lr(self) -> float:
        """η_ref: the rate of the grid with the lowest mean dev error at B_ref."""
        return min(self.size.lrs, key=lambda lr: mean_final(self.grid[lr]))

    @property
    def sigma(self) -> float:
        return pooled_std([[r.final for r in runs] for runs in self.grid.values()])

    @property
    def tol(self) -> float:
        return tolerance(self.sigma, len(self.seeds))

    @property
    def errors(self) -> dict:
        return {b: mean_final(runs) for b, runs in self.sweep.items()}

    @property
    def reference(self) -> float:
        return self.errors[self.size.base_batch]

    @property
    def stable(self) -> int:
        """B*."""
        return largest_stable(self.errors, self.reference, self.tol)[0]

    @property
    def breaking(self) -> int:
        """The first batch past B*, 0 if none."""
        return largest_stable(self.errors, self.reference, self.tol)[1]

    def warm_errors(self) -> dict:
        return {w: mean_final(runs) for w, runs in self.warmups.get(self.stable, {}).items()}


def learning_rate(
    base_lr: float, batch: int, size: Size, steps_per_epoch: int, warmup: str
) -> schedules.Schedule:
    """η_ref · B / B_ref with the paper's step decays, and one of three warmups:

    - ``none``: the scaled rate from the first step;
    - ``constant``: η_ref for the warmup epochs, then a jump to the scaled rate (§2.2);
    - ``gradual``: a linear ramp from η_ref to the scaled rate over the warmup epochs.
    """
    peak = scaling.linear_scaling_rule(base_lr, batch, size.base_batch)
    boundaries = [e * steps_per_epoch - 1 for e in size.decay_epochs]  # last step of the old rate
    decayed = schedules.PiecewiseConstant(
        boundaries, [peak * 0.1**i for i in range(len(boundaries) + 1)]
    )
    if warmup == "none":
        return decayed
    if warmup == "constant":
        end = size.warmup_epochs * steps_per_epoch - 1
        return schedules.PiecewiseConstant([end, *boundaries], [base_lr, *decayed.values])
    if warmup == "gradual":
        return scaling.scaled_learning_rate(
            base_lr, batch, size.base_batch, size.warmup_epochs, steps_per_epoch, schedule=decayed
        )
    raise ValueError(f"linear-scaling: warmup must be one of {WARMUPS}, got {warmup!r}")


def sgd_mlp(train_set, hidden: tuple, batch, seed: int, lr_of):
    """(trainer, loader): the MLP inputs-hidden-10 seeded with ``seed``, SGD with momentum 0.9 at
    the rate ``lr_of(loader)``, and its loader of ``batch`` (an int or a schedule), shuffled with
    ``seed``. batch-size-increase trains the same way."""
    nb.manual_seed(seed)
    model = models.mlp([train_set.x.shape[1], *hidden, 10])
    loader = DataLoader(train_set, batch_size=batch, shuffle=True, seed=seed)
    opt = optim.SGD(model.parameters(), lr=lr_of(loader), momentum=MOMENTUM)
    return classifier(model, opt), loader


def train(data, size: Size, batch: int, base_lr: float, warmup: str, seed: int) -> Run:
    """Train the MLP at batch size ``batch`` with the scaled rate; a divergence is recorded."""
    train_set, dev_set, test_set = data
    trainer, loader = sgd_mlp(
        train_set,
        size.hidden,
        batch,
        seed,
        lambda loader: learning_rate(base_lr, batch, size, len(loader), warmup),
    )
    try:  # past the breaking point the weights may overflow: a divergence, not a warning
        with np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(loader, size.epochs, dev=DataLoader(dev_set, batch_size=1000), verbose=0)
        diverged = False
    except TrainingDivergedError:
        diverged = True
    h = trainer.history
    test = CHANCE if diverged else 1 - trainer.evaluate(DataLoader(test_set, 1000))["accuracy"]
    return Run(
        batch,
        scaling.linear_scaling_rule(base_lr, batch, size.base_batch),
        warmup,
        seed,
        h["loss"] if len(h) else [],
        [1 - a for a in h["dev_accuracy"]] if len(h) else [],
        test,
        trainer.step,
        diverged,
        list(h.steps["lr"]),
    )


def mean_final(runs: list[Run]) -> float:
    return float(np.mean([r.final for r in runs]))


def _final_loss(runs: list[Run]) -> float:
    """The mean over seeds of the last epoch's training loss (NaN if a run diverged)."""
    return float(np.mean([r.loss[-1] if r.loss and not r.diverged else math.nan for r in runs]))


def tolerance(sigma: float, seeds: int) -> float:
    """X = max(0.5 points, 2 standard errors of a difference of two means over ``seeds`` seeds)."""
    return max(PAPER_TOLERANCE, 2 * sigma * math.sqrt(2 / seeds))


def largest_stable(errors: dict[int, float], reference: float, tol: float) -> tuple[int, int]:
    """(B*, breaking batch): B* is the largest batch with every batch up to it within ``tol``
    of ``reference``; the breaking batch is the first one past it (0 if there is none)."""
    batches = sorted(errors)
    stable = batches[0]
    for b in batches:
        if errors[b] > reference + tol:
            return stable, b
        stable = b
    return stable, 0


class LinearScaling(Experiment):
    name = "linear-scaling"
    title = "Linear scaling rule and gradual warmup for large minibatches"
    reference = "Goyal et al. 2017, Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"
    summary = (
        "lr proportional to batch size + gradual warmup keeps dev error flat up to a breaking point"
    )
    sizes = {
        "tiny": Size("digits", (32,), 3, 1, (2,), 16, (16, 128, 1024), (0.05,), 1),
        "full": Size(
            "mnist10k",
            hidden=(256,),
            epochs=18,
            warmup_epochs=1,
            decay_epochs=(6, 12, 16),
            base_batch=16,
            batches=tuple(16 * 2**k for k in range(9)),
            lrs=(0.02, 0.04, 0.08),
            seeds=3,
        ),
    }

    def measure(self, size: Size, seed: int) -> Results:
        data = splits(size.data, flat=True)
        run_seeds = seeds(seed, size.seeds)

        def seeded(batch: int, lr: float, warmup: str) -> list[Run]:
            runs = [train(data, size, batch, lr, warmup, s) for s in run_seeds]
            for r in runs:
                state = "diverged" if r.diverged else f"dev error {r.final:.2%}"
                self.log(f"B {r.batch:>5} lr {r.lr:<8.4g} {r.warmup:<8} seed {r.seed}: {state}")
            return runs

        train_set = data[0]
        r = Results(size, run_seeds, train_set.name, train_set.x.shape[1], len(train_set))
        r.grid = {lr: seeded(size.base_batch, lr, "gradual") for lr in size.lrs}
        base_lr = r.base_lr
        r.sweep = {
            b: r.grid[base_lr] if b == size.base_batch else seeded(b, base_lr, "gradual")
            for b in size.batches
        }
        r.warmups = {
            b: {"gradual": r.sweep[b]} | {w: seeded(b, base_lr, w) for w in WARMUPS[:2]}
            for b in (r.stable, r.breaking)
            if b and b != size.base_batch
        }
        return r

    def verdict(self, results: Results) -> Outcome:
        r, warm = results, results.warm_errors()
        gradual_best = bool(warm) and warm["gradual"] <= min(warm["none"], warm["constant"])
        return Outcome(
            claim="with lr = η_ref B / B_ref and gradual warmup, dev error stays within ~0.5 "
            "point (here X) of the small batch's up to a breaking point, B* ≥ 8 B_ref; at B* "
            "gradual warmup beats no warmup and constant warmup",
            ours=f"B_ref {r.size.base_batch} (η_ref {r.base_lr:g}) {r.reference:.2%}; X "
            f"{r.tol:.2%}; B* {r.stable} ({r.errors[r.stable]:.2%}); breaking at "
            + (f"{r.breaking} ({r.errors[r.breaking]:.2%})" if r.breaking else "none")
            + (
                f"; at B* none {warm['none']:.2%} / constant {warm['constant']:.2%} / "
                f"gradual {warm['gradual']:.2%}"
                if warm
                else "; no B* above B_ref, so no warmup comparison"
            ),
            passed=bool(r.stable >= 8 * r.size.base_batch and r.breaking and gradual_best),
        )

    def report(self, page, results: Results) -> None:
        r, size = results, results.size
        page.text(
            f"MLP {r.inputs}-{'-'.join(map(str, size.hidden))}-10 on {r.dataset}, SGD momentum "
            f"{MOMENTUM}, {size.epochs} epochs of {r.train} images at every batch size, "
            f"lr / 10 at epochs {', '.join(map(str, size.decay_epochs))}, warmup "
            f"{size.warmup_epochs} epoch(s) (the paper's 90-epoch schedule compressed). "
            f"η_ref is the best of {list(size.lrs)} at B_ref = {size.base_batch} (mean dev error "
            f"over seeds {r.seeds}); then every B in {list(size.batches)} runs with lr = η_ref B "
            f"/ {size.base_batch} and gradual warmup.",
            "Check, stated before the run: σ = the seed std of the final dev error at B_ref "
            "pooled over the lr grid; X = max(0.5 points, 2 σ sqrt(2 / seeds)); B* = the largest "
            "batch with every batch up to it within X of B_ref's mean dev error. PASS if B* >= 8 "
            "B_ref, a breaking point (a batch beyond X) is seen, and at B* gradual warmup's mean "
            "dev error is no higher than no warmup's and constant warmup's.",
        )
        page.table(
            ["η_ref at B_ref", *[f"seed {s}" for s in r.seeds], "mean dev error"],
            [[lr, *[run.final for run in r.grid[lr]], mean_final(r.grid[lr])] for lr in size.lrs],
            caption=f"tuning η_ref at B_ref = {size.base_batch}: chosen {r.base_lr:g}; pooled "
            f"seed std σ = {r.sigma:.2%}, tolerance X = {r.tol:.2%}",
        )
        page.figure(
            error_figure(r),
            "error",
            "final dev error against batch size with lr = η_ref B / B_ref and "
            "gradual warmup (mean and min-max over seeds; the band is B_ref's error ± X); "
            "compare figure 1 of the paper",
        )
        page.figure(
            curves_figure(r),
            "curves",
            "training loss and dev error per epoch for every batch size (mean over "
            "seeds): the curves of the stable batches lie on top of each other",
        )
        if r.warmups:
            page.figure(
                warmup_figure(r),
                "warmup",
                "no warmup, constant warmup (η_ref, then a jump) and gradual warmup at B* "
                "and at the breaking batch: the learning rate over the first epochs and "
                "the training loss per epoch against B_ref's (dashed; compare figure 2 "
                "of the paper)",
            )
        page.table(
            [
                "batch",
                "lr",
                "updates",
                "mean dev error",
                "Δ vs B_ref",
                "mean test error",
                "mean final training loss",
                "diverged",
            ],
            [
                [
                    b,
                    runs[0].lr,
                    runs[0].updates,
                    r.errors[b],
                    r.errors[b] - r.reference,
                    float(np.mean([run.test_error for run in runs])),
                    _final_loss(runs),
                    sum(run.diverged for run in runs),
                ]
                for b, runs in sorted(r.sweep.items())
            ],
            caption=f"gradual warmup, {len(r.seeds)} seed(s); B* = {r.stable}, breaking batch "
            f"{r.breaking or 'none in the sweep'}",
        )
        page.table(
            ["batch", "warmup", "mean dev error", "mean final training loss", "diverged"],
            [
                [b, w, mean_final(runs), _final_loss(runs), sum(run.diverged for run in runs)]
                for b, by_warmup in r.warmups.items()
                for w, runs in by_warmup.items()
            ],
            caption="the three warmups",
        )


# --- figures -------------------------------------------------------------------------------------


def _colors(batches):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return {b: cmap(i / max(len(batches) - 1, 1)) for i, b in enumerate(sorted(batches))}


def error_figure(r: Results):
    from ..report import new_figure

    fig = new_figure((6.4, 4))
    ax = fig.add_subplot()
    batches = sorted(r.errors)
    finals = [[run.final for run in r.sweep[b]] for b in batches]
    low = [r.errors[b] - min(f) for b, f in zip(batches, finals)]
    high = [max(f) - r.errors[b] for b, f in zip(batches, finals)]
    ax.axhspan(
        r.reference - r.tol,
        r.reference + r.tol,
        color="#1f77b4",
        alpha=0.12,
        label=f"B_ref's error ± X ({r.tol:.2%})",
    )
    ax.errorbar(
        batches,
        [r.errors[b] for b in batches],
        yerr=[low, high],
        fmt="o-",
        capsize=3,
        color="#1f77b4",
        label="lr = η_ref B / B_ref, gradual warmup",
    )
    ax.axvline(r.stable, color="#2ca02c", ls="--", lw=1, label=f"B* = {r.stable}")
    if r.breaking:
        ax.axvline(r.breaking, color="#d62728", ls=":", lw=1.2, label=f"breaking: {r.breaking}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set(
        xlabel="minibatch size B (log scale)",
        ylabel="final dev error (log scale)",
        title="Dev error against batch size, lr scaled with B",
    )
    log_axis(ax, PERCENT_TICKS, percent=True)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


PERCENT_TICKS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def log_axis(ax, ticks=None, percent: bool = False) -> None:
    """Readable labels on a log y axis: at ``ticks`` if given, else at 1, 2 and 5 times powers
    of ten; values as 0.02 or 5% rather than powers of ten; no minor labels. Shared with
    batch-size-increase."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(
        FixedLocator(ticks) if ticks is not None else LogLocator(subs=(1, 2, 5))
    )
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{100 * v:.3g}%" if percent else f"{v:.4g}")
    )
    ax.yaxis.set_minor_formatter(NullFormatter())


def mean_curve(runs: list, key: str):
    """(epochs from 1, the mean over seeds of a per-epoch curve), over the epochs every run
    completed."""
    curves = [getattr(r, key) for r in runs]
    n = min(len(c) for c in curves)
    return np.arange(1, n + 1), np.mean([c[:n] for c in curves], axis=0) if n else np.array([])


def curves_figure(r: Results):
    from matplotlib.ticker import MaxNLocator

    from ..report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    colors = _colors(r.sweep)
    for b, runs in sorted(r.sweep.items()):
        for ax, key in zip(axes, ("loss", "dev_error")):
            epochs, curve = mean_curve(runs, key)
            ax.plot(epochs, curve, color=colors[b], label=f"B = {b}")
    for ax, label in zip(axes, ("training loss", "dev error")):
        for e in r.size.decay_epochs:
            ax.axvline(e + 0.5, color="gray", lw=0.6, alpha=0.5)
        ax.set(
            xlabel="epoch",
            ylabel=f"{label} (log scale)",
            yscale="log",
            title=f"{label.capitalize()} per epoch",
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
    log_axis(axes[1], PERCENT_TICKS, percent=True)
    axes[1].legend(fontsize=7, ncol=2)
    return fig


def warmup_figure(r: Results):
    from matplotlib.ticker import MaxNLocator

    from ..report import new_figure

    fig = new_figure((5 * len(r.warmups), 6.4))
    axes = np.asarray(fig.subplots(2, len(r.warmups), squeeze=False))
    colors = {"none": "#d62728", "constant": "#ff7f0e", "gradual": "#2ca02c"}
    for col, (b, by_warmup) in enumerate(r.warmups.items()):
        top, bottom = axes[0, col], axes[1, col]
        for w in WARMUPS:
            runs = by_warmup[w]
            steps = len(runs[0].lr_steps)
            per_epoch = math.ceil(steps / max(len(runs[0].loss), 1)) if runs[0].loss else steps
            x = np.arange(steps) / per_epoch
            shown = x < r.size.warmup_epochs + 2
            top.plot(x[shown], np.asarray(runs[0].lr_steps)[shown], color=colors[w], label=w)
            epochs, curve = mean_curve(runs, "loss")
            bottom.plot(
                epochs,
                curve,
                "o-",
                ms=3,
                color=colors[w],
                label=f"{w}: dev error {mean_final(runs):.2%}",
            )
        epochs, curve = mean_curve(r.sweep[r.size.base_batch], "loss")
        bottom.plot(epochs, curve, "k--", lw=1, label=f"B_ref = {r.size.base_batch}")
        top.set(xlabel="epoch", ylabel="learning rate", title=f"B = {b}: learning rate")
        bottom.set(
            xlabel="epoch",
            ylabel="training loss (log scale)",
            yscale="log",
            title=f"B = {b}: training loss (mean over seeds)",
        )
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    return fig
