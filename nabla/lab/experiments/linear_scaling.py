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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import nabla as nb
from nabla import models, nn, optim
from nabla.data import ArrayDataset, DataLoader, datasets
from nabla.optim import scaling, schedules
from nabla.train import Trainer, TrainingDivergedError

from . import Outcome

NAME = "linear-scaling"
TITLE = "Linear scaling rule and gradual warmup for large minibatches"
REFERENCE = "Goyal et al. 2017, Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"
SUMMARY = (
    "lr proportional to batch size + gradual warmup keeps dev error flat up to a breaking point"
)

MOMENTUM = 0.9
PAPER_TOLERANCE = 0.005  # "within ~0.5%" of the small-batch error (table 1 / figure 4)
WARMUPS = ("none", "constant", "gradual")
CHANCE = 0.9  # the dev error we record for a run that diverged (10 classes)


@dataclass(frozen=True)
class Setting:
    data: str  # "mnist10k" (needs NABLA_DATA) or "digits" (embedded)
    hidden: tuple
    epochs: int
    warmup_epochs: int
    decay_epochs: tuple  # lr / 10 at the start of each
    base_batch: int  # B_ref
    batches: tuple  # the sweep, from B_ref up
    lrs: tuple  # the η_ref grid, tuned at B_ref
    seeds: int


SETTINGS = {
    "full": Setting(
        "mnist10k",
        (256,),
        18,
        1,
        (6, 12, 16),
        16,
        tuple(16 * 2**k for k in range(9)),
        (0.02, 0.04, 0.08),
        3,
    ),
    "tiny": Setting("digits", (32,), 3, 1, (2,), 16, (16, 128, 1024), (0.05,), 1),
}


@dataclass
class Result:
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


def load(data: str):
    """(train, dev, test), images flattened for the MLP: MNIST-10k 7,000 / 1,000 / 2,000, or the
    digits' 1,437 training images with the 360 test images serving as both dev and test."""
    if data == "mnist10k":
        parts = datasets.mnist10k(seed=0)
        return tuple(ArrayDataset(d.x.reshape(len(d), -1), d.y, name=d.name) for d in parts)
    train, test = datasets.digits(flatten=True)
    return train, test, test


def learning_rate(
    base_lr: float, batch: int, cfg: Setting, steps_per_epoch: int, warmup: str
) -> schedules.Schedule:
    """η_ref · B / B_ref with the paper's step decays, and one of three warmups:

    - ``none``: the scaled rate from the first step;
    - ``constant``: η_ref for the warmup epochs, then a jump to the scaled rate (§2.2);
    - ``gradual``: a linear ramp from η_ref to the scaled rate over the warmup epochs.
    """
    peak = scaling.linear_scaling_rule(base_lr, batch, cfg.base_batch)
    boundaries = [e * steps_per_epoch - 1 for e in cfg.decay_epochs]  # last step of the old rate
    decayed = schedules.PiecewiseConstant(
        boundaries, [peak * 0.1**i for i in range(len(boundaries) + 1)]
    )
    if warmup == "none":
        return decayed
    if warmup == "constant":
        end = cfg.warmup_epochs * steps_per_epoch - 1
        return schedules.PiecewiseConstant([end, *boundaries], [base_lr, *decayed.values])
    if warmup == "gradual":
        return scaling.scaled_learning_rate(
            base_lr, batch, cfg.base_batch, cfg.warmup_epochs, steps_per_epoch, schedule=decayed
        )
    raise ValueError(f"linear-scaling: warmup must be one of {WARMUPS}, got {warmup!r}")


def train(data, cfg: Setting, batch: int, base_lr: float, warmup: str, seed: int) -> Result:
    """Train the MLP at batch size ``batch`` with the scaled rate; a divergence is recorded."""
    train_set, dev_set, test_set = data
    nb.manual_seed(seed)
    model = models.mlp([train_set.x.shape[1], *cfg.hidden, 10])
    loader = DataLoader(train_set, batch_size=batch, shuffle=True, seed=seed)
    lr = learning_rate(base_lr, batch, cfg, len(loader), warmup)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, metrics=["accuracy"])
    dev = DataLoader(dev_set, batch_size=1000)
    try:  # past the breaking point the weights may overflow: a divergence, not a warning
        with np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(loader, epochs=cfg.epochs, dev=dev, verbose=0)
        diverged = False
    except TrainingDivergedError:
        diverged = True
    h = trainer.history
    test = CHANCE if diverged else 1 - trainer.evaluate(DataLoader(test_set, 1000))["accuracy"]
    return Result(
        batch,
        scaling.linear_scaling_rule(base_lr, batch, cfg.base_batch),
        warmup,
        seed,
        h["loss"] if len(h) else [],
        [1 - a for a in h["dev_accuracy"]] if len(h) else [],
        test,
        trainer.step,
        diverged,
        list(h.steps["lr"]),
    )


def mean_final(runs: list[Result]) -> float:
    return float(np.mean([r.final for r in runs]))


def _final_loss(runs: list[Result]) -> float:
    """The mean over seeds of the last epoch's training loss (NaN if a run diverged)."""
    return float(np.mean([r.loss[-1] if r.loss and not r.diverged else math.nan for r in runs]))


def pooled_std(groups: list[list[float]]) -> float:
    """sqrt(Σ_g Σ_i (x_gi - mean_g)² / Σ_g (n_g - 1)): the seed std pooled over groups."""
    dof = sum(len(g) - 1 for g in groups)
    if dof <= 0:
        return 0.0
    return math.sqrt(sum(float(np.sum((np.asarray(g) - np.mean(g)) ** 2)) for g in groups) / dof)


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


def run(out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    from nabla.lab.report import LabReport

    cfg = SETTINGS[size]
    data = load(cfg.data)
    seeds = [seed + i for i in range(cfg.seeds)]
    report = LabReport(
        out, TITLE, subtitle=f"{REFERENCE}; {data[0].name}, size {size}, seed {seed}"
    )
    report.text(
        f"MLP {data[0].x.shape[1]}-{'-'.join(map(str, cfg.hidden))}-10, SGD momentum "
        f"{MOMENTUM}, {cfg.epochs} epochs of {len(data[0])} images at every batch size, "
        f"lr / 10 at epochs {', '.join(map(str, cfg.decay_epochs))}, warmup "
        f"{cfg.warmup_epochs} epoch(s) (the paper's 90-epoch schedule compressed). "
        f"η_ref is the best of {list(cfg.lrs)} at B_ref = {cfg.base_batch} (mean dev error over "
        f"seeds {seeds}); then every B in {list(cfg.batches)} runs with lr = η_ref B / "
        f"{cfg.base_batch} and gradual warmup.",
        "Check, stated before the run: σ = the seed std of the final dev error at B_ref pooled "
        "over the lr grid; X = max(0.5 points, 2 σ sqrt(2 / seeds)); B* = the largest batch "
        "with every batch up to it within X of B_ref's mean dev error. PASS if B* >= 8 B_ref, a "
        "breaking point (a batch beyond X) is seen, and at B* gradual warmup's mean dev error "
        "is no higher than no warmup's and constant warmup's.",
    )

    def seeded(batch: int, lr: float, warmup: str) -> list[Result]:
        runs = [train(data, cfg, batch, lr, warmup, s) for s in seeds]
        for r in runs if verbose else ():
            state = "diverged" if r.diverged else f"dev error {r.final:.2%}"
            print(f"B {r.batch:>5} lr {r.lr:<8.4g} {r.warmup:<8} seed {r.seed}: {state}")
        return runs

    grid = {lr: seeded(cfg.base_batch, lr, "gradual") for lr in cfg.lrs}
    base_lr = min(cfg.lrs, key=lambda lr: mean_final(grid[lr]))
    sigma = pooled_std([[r.final for r in runs] for runs in grid.values()])
    tol = tolerance(sigma, len(seeds))
    sweep = {
        b: grid[base_lr] if b == cfg.base_batch else seeded(b, base_lr, "gradual")
        for b in cfg.batches
    }
    errors = {b: mean_final(runs) for b, runs in sweep.items()}
    reference = errors[cfg.base_batch]
    stable, breaking = largest_stable(errors, reference, tol)
    report.table(
        ["η_ref at B_ref", *[f"seed {s}" for s in seeds], "mean dev error"],
        [[lr, *[r.final for r in grid[lr]], mean_final(grid[lr])] for lr in cfg.lrs],
        caption=f"tuning η_ref at B_ref = {cfg.base_batch}: chosen {base_lr:g}; pooled seed "
        f"std σ = {sigma:.2%}, tolerance X = {tol:.2%}",
    )

    compare = [b for b in (stable, breaking) if b and b != cfg.base_batch]
    warmups = {
        b: {"gradual": sweep[b]} | {w: seeded(b, base_lr, w) for w in WARMUPS[:2]} for b in compare
    }
    warm_errors = {w: mean_final(runs) for w, runs in warmups.get(stable, {}).items()}

    report.figure(
        error_figure(errors, sweep, reference, tol, stable, breaking, cfg),
        "error",
        "final dev error against batch size with lr = η_ref B / B_ref and "
        "gradual warmup (mean and min-max over seeds; the band is B_ref's error ± X); "
        "compare figure 1 of the paper",
    )
    report.figure(
        curves_figure(sweep, cfg),
        "curves",
        "training loss and dev error per epoch for every batch size (mean over "
        "seeds): the curves of the stable batches lie on top of each other",
    )
    if warmups:
        report.figure(
            warmup_figure(warmups, sweep[cfg.base_batch], cfg),
            "warmup",
            "no warmup, constant warmup (η_ref, then a jump) and gradual warmup at B* "
            "and at the breaking batch: the learning rate over the first epochs and "
            "the training loss per epoch against B_ref's (dashed; compare figure 2 "
            "of the paper)",
        )
    report.table(
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
                errors[b],
                errors[b] - reference,
                float(np.mean([r.test_error for r in runs])),
                _final_loss(runs),
                sum(r.diverged for r in runs),
            ]
            for b, runs in sorted(sweep.items())
        ],
        caption=f"gradual warmup, {len(seeds)} seed(s); B* = {stable}, breaking batch "
        f"{breaking or 'none in the sweep'}",
    )
    report.table(
        ["batch", "warmup", "mean dev error", "mean final training loss", "diverged"],
        [
            [b, w, mean_final(runs), _final_loss(runs), sum(r.diverged for r in runs)]
            for b, by_warmup in warmups.items()
            for w, runs in by_warmup.items()
        ],
        caption="the three warmups",
    )

    scaled = stable >= 8 * cfg.base_batch
    gradual_best = bool(warm_errors) and warm_errors["gradual"] <= min(
        warm_errors["none"], warm_errors["constant"]
    )
    outcome = Outcome(
        claim="with lr = η_ref B / B_ref and gradual warmup, dev error stays within ~0.5 point "
        "(here X) of the small batch's up to a breaking point, B* ≥ 8 B_ref; at B* gradual "
        "warmup beats no warmup and constant warmup",
        ours=f"B_ref {cfg.base_batch} (η_ref {base_lr:g}) {reference:.2%}; X {tol:.2%}; "
        f"B* {stable} ({errors[stable]:.2%}); breaking at "
        + (f"{breaking} ({errors[breaking]:.2%})" if breaking else "none")
        + (
            f"; at B* none {warm_errors['none']:.2%} / constant {warm_errors['constant']:.2%} / "
            f"gradual {warm_errors['gradual']:.2%}"
            if warm_errors
            else "; no B* above B_ref, so no warmup comparison"
        ),
        passed=bool(scaled and breaking and gradual_best),
    )
    report.outcome(outcome.line(), outcome.passed)
    report.write()
    return outcome


# --- figures -------------------------------------------------------------------------------------


def _colors(batches):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return {b: cmap(i / max(len(batches) - 1, 1)) for i, b in enumerate(sorted(batches))}


def error_figure(errors, sweep, reference, tol, stable, breaking, cfg: Setting):
    from nabla.lab.report import new_figure

    fig = new_figure((6.4, 4))
    ax = fig.add_subplot()
    batches = sorted(errors)
    finals = [[r.final for r in sweep[b]] for b in batches]
    low = [errors[b] - min(f) for b, f in zip(batches, finals)]
    high = [max(f) - errors[b] for b, f in zip(batches, finals)]
    ax.axhspan(
        reference - tol,
        reference + tol,
        color="#1f77b4",
        alpha=0.12,
        label=f"B_ref's error ± X ({tol:.2%})",
    )
    ax.errorbar(
        batches,
        [errors[b] for b in batches],
        yerr=[low, high],
        fmt="o-",
        capsize=3,
        color="#1f77b4",
        label="lr = η_ref B / B_ref, gradual warmup",
    )
    ax.axvline(stable, color="#2ca02c", ls="--", lw=1, label=f"B* = {stable}")
    if breaking:
        ax.axvline(breaking, color="#d62728", ls=":", lw=1.2, label=f"breaking: {breaking}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set(
        xlabel="minibatch size B (log scale)",
        ylabel="final dev error (log scale)",
        title="Dev error against batch size, lr scaled with B",
    )
    _percent_axis(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _percent_axis(ax) -> None:
    """A log axis of error rates labelled 3%, 4%, 5%, 7%, 10%, ... (no crowded minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _mean_curve(runs: list[Result], key: str):
    """The mean over seeds of a per-epoch curve, over the epochs every run completed."""
    curves = [getattr(r, key) for r in runs]
    n = min(len(c) for c in curves)
    return np.arange(1, n + 1), np.mean([c[:n] for c in curves], axis=0) if n else np.array([])


def curves_figure(sweep, cfg: Setting):
    from matplotlib.ticker import MaxNLocator

    from nabla.lab.report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    colors = _colors(sweep)
    for b, runs in sorted(sweep.items()):
        for ax, key in zip(axes, ("loss", "dev_error")):
            epochs, curve = _mean_curve(runs, key)
            ax.plot(epochs, curve, color=colors[b], label=f"B = {b}")
    for ax, label in zip(axes, ("training loss", "dev error")):
        for e in cfg.decay_epochs:
            ax.axvline(e + 0.5, color="gray", lw=0.6, alpha=0.5)
        ax.set(
            xlabel="epoch",
            ylabel=f"{label} (log scale)",
            yscale="log",
            title=f"{label.capitalize()} per epoch",
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
    _percent_axis(axes[1])
    axes[1].legend(fontsize=7, ncol=2)
    return fig


def warmup_figure(warmups, reference: list[Result], cfg: Setting):
    from matplotlib.ticker import MaxNLocator

    from nabla.lab.report import new_figure

    fig = new_figure((5 * len(warmups), 6.4))
    axes = np.asarray(fig.subplots(2, len(warmups), squeeze=False))
    colors = {"none": "#d62728", "constant": "#ff7f0e", "gradual": "#2ca02c"}
    for col, (b, by_warmup) in enumerate(warmups.items()):
        top, bottom = axes[0, col], axes[1, col]
        for w in WARMUPS:
            runs = by_warmup[w]
            steps = len(runs[0].lr_steps)
            per_epoch = math.ceil(steps / max(len(runs[0].loss), 1)) if runs[0].loss else steps
            x = np.arange(steps) / per_epoch
            shown = x < cfg.warmup_epochs + 2
            top.plot(x[shown], np.asarray(runs[0].lr_steps)[shown], color=colors[w], label=w)
            epochs, curve = _mean_curve(runs, "loss")
            bottom.plot(
                epochs,
                curve,
                "o-",
                ms=3,
                color=colors[w],
                label=f"{w}: dev error {mean_final(runs):.2%}",
            )
        epochs, curve = _mean_curve(reference, "loss")
        bottom.plot(epochs, curve, "k--", lw=1, label=f"B_ref = {cfg.base_batch}")
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
