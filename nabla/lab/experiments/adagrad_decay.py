"""``nabla experiment adagrad-decay``: AdaGrad's effective learning rate decays like 1/sqrt(t),
so on a non-convex problem it stalls where RMSProp, at the same base lr, keeps learning (the
lecture's motivation for RMSProp; Hinton's lecture 6e, 2012; Duchi, Hazan and Singer 2011).

AdaGrad divides by the root of the *sum* of past squared gradients, RMSProp by the root of their
moving *average*:

    AdaGrad:  r_t = sum_{k <= t} g_k^2,                     effective lr  alpha / sqrt(r_t)
    RMSProp:  r_t = beta r_(t-1) + (1 - beta) g_t^2,         effective lr  alpha / sqrt(r_t)

If a parameter's gradients keep roughly the same size G, AdaGrad's r_t = t G^2 and its effective
lr is alpha / (G sqrt(t)): slope -1/2 on a log-log plot. More generally, if g^2 grows like
t^gamma, r_t grows like t^(1 + gamma) and the slope is -(1 + gamma) / 2. RMSProp's r_t tracks
the recent G^2, so its step stays about alpha.

Setup: a deep sigmoid MLP 64-64-64-64-64-10 (the classic plateau-prone network) on the embedded
digits, batches of 32, cross-entropy; nabla's AdaGrad and RMSProp (beta 0.9) both at lr 0.01
(the default of each), a few seeds (initialization and batch order shared by the two). The
effective lr alpha / (sqrt(r) + eps) of every parameter is read from the optimizer's own state
(``state_dict()``) at log-spaced steps. Over the window [T/10, T] each parameter gets a fitted
log-log slope, and its gradient-size trend gamma from the same state: the mean g^2 over two
halves of the window (log scale) is a difference of r, and gamma is the log-log slope between
them. "Roughly constant size" means |gamma| <= 0.25.

The check, fixed before running, for every seed: (1) among the parameters whose gradients keep
roughly constant size, the median slope of AdaGrad's effective lr is within 0.1 of -1/2;
(2) stall: over the second half of training RMSProp's training loss falls by a larger fraction
than AdaGrad's, and ends lower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nabla as nb
from nabla import models, optim
from nabla.data import DataLoader
from nabla.train import callbacks

from .common import classifier, seeds, splits
from .framework import Experiment, Outcome

LR = 0.01
CONSTANT = 0.25  # |gamma| at most this: the gradient keeps roughly constant size
TOLERANCE = 0.1  # on the slope
OPTIMIZERS = {"AdaGrad": ("sum_squares", optim.AdaGrad), "RMSProp": ("square_avg", optim.RMSProp)}
COLORS = {"AdaGrad": "#d62728", "RMSProp": "#2ca02c"}


@dataclass(frozen=True)
class Size:
    hidden: tuple
    epochs: int
    seeds: int
    snapshots: int  # log-spaced steps at which the optimizer state is read


@dataclass
class Run:
    loss: np.ndarray  # the training loss of every update
    t: np.ndarray  # the snapshot steps
    r: np.ndarray  # the optimizer's r at each of them: (snapshots, all parameters flat)


@dataclass
class SeedCheck:
    """What one seed gives the check; losses are epoch means of the training loss."""

    seed: int
    constant: float  # the share of parameters whose gradients keep roughly constant size
    slope: float  # the median slope of AdaGrad's effective lr over those
    slope_all: float  # and over all parameters
    half: dict  # optimizer -> the loss at the middle of training
    final: dict  # optimizer -> the loss of the last epoch

    def drop(self, m: str) -> float:
        return 1 - self.final[m] / self.half[m]

    def row(self) -> list:
        stall = [v for m in OPTIMIZERS for v in (self.half[m], self.final[m], self.drop(m))]
        return [self.seed, f"{self.constant:.0%}", self.slope, self.slope_all, *stall]


@dataclass
class Results:
    size: Size
    seeds: list
    runs: dict  # (optimizer, seed) -> Run
    checks: list  # one SeedCheck per seed


def snapshot_steps(total: int, count: int) -> np.ndarray:
    """``count`` log-spaced steps in [1, total], always including total/10, total/sqrt(10) and
    total (the ends and the middle of the fitting window)."""
    marks = np.geomspace(1, total, count).round().astype(int)
    window = np.round(total / np.array([10.0, np.sqrt(10.0), 1.0])).astype(int)
    return np.unique(np.concatenate([marks, np.maximum(window, 1)]))


class Snapshots(callbacks.Callback):
    """The optimizer's state buffer ``key`` (all parameters, flat, by name) after the updates
    ``steps``."""

    def __init__(self, key: str, steps: np.ndarray):
        self.key, self.steps, self.r = key, steps, []

    def on_batch_end(self, trainer, step, logs):
        if step in self.steps:
            state = trainer.optimizer.state_dict()["state"]
            self.r.append(np.concatenate([state[n][self.key].ravel() for n in sorted(state)]))


def train(name: str, train_set, size: Size, seed: int) -> Run:
    key, cls = OPTIMIZERS[name]
    nb.manual_seed(seed)
    model = models.mlp([64, *size.hidden, 10], activation="sigmoid")
    opt = cls(model.named_parameters(), lr=LR)
    loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=seed)
    snapshots = Snapshots(key, snapshot_steps(size.epochs * len(loader), size.snapshots))
    trainer = classifier(model, opt, callbacks=[snapshots])
    trainer.fit(loader, size.epochs, verbose=0)
    return Run(np.array(trainer.history.steps["loss"]), snapshots.steps, np.array(snapshots.r))


def decay_fit(t: np.ndarray, r: np.ndarray, eps: float = 1e-10) -> dict:
    """Per parameter over [T/10, T]: the log-log slope of alpha / (sqrt(r) + eps), and gamma,
    the log-log slope of the mean squared gradient between the window's two halves (mean g^2
    over (t_a, t_b] is (r_b - r_a) / (t_b - t_a) for AdaGrad's running sum)."""
    total = t[-1]
    a, b = (int(np.argmin(np.abs(t - total / k))) for k in (10.0, np.sqrt(10.0)))
    window = slice(a, len(t))
    live = np.all(r[window] > 0, axis=0)
    log_lr = np.log(LR / (np.sqrt(r[window][:, live]) + eps))
    slopes = np.polyfit(np.log(t[window]), log_lr, 1)[0]
    early = (r[b, live] - r[a, live]) / (t[b] - t[a])
    late = (r[-1, live] - r[b, live]) / (t[-1] - t[b])
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.log(late / early) / np.log(np.sqrt(t[-1] * t[b]) / np.sqrt(t[b] * t[a]))
    return {"slope": slopes, "gamma": gamma, "live": live, "window": (int(t[a]), int(total))}


def epoch_means(loss: np.ndarray, epochs: int) -> np.ndarray:
    return loss[: len(loss) // epochs * epochs].reshape(epochs, -1).mean(axis=1)


def check(runs: dict, size: Size, seed: int) -> SeedCheck:
    """The slopes of AdaGrad's effective lr and both optimizers' stall, for one seed."""
    fit = decay_fit(runs["AdaGrad", seed].t, runs["AdaGrad", seed].r)
    constant = np.abs(fit["gamma"]) <= CONSTANT
    median = float(np.median(fit["slope"][constant])) if constant.any() else float("nan")
    curves = {m: epoch_means(runs[m, seed].loss, size.epochs) for m in OPTIMIZERS}
    half = {m: c[len(c) // 2 - 1] for m, c in curves.items()}  # the epoch at the middle
    final = {m: c[-1] for m, c in curves.items()}
    return SeedCheck(seed, constant.mean(), median, float(np.median(fit["slope"])), half, final)


class AdagradDecay(Experiment):
    name = "adagrad-decay"
    title = "AdaGrad's effective learning rate decays like 1/sqrt(t); RMSProp's does not"
    reference = (
        "Duchi, Hazan and Singer 2011 (AdaGrad); Hinton, Neural Networks for Machine Learning, "
        "lecture 6e, 2012 (RMSProp)"
    )
    summary = (
        "AdaGrad's alpha/sqrt(sum g^2) falls like t^-1/2 and stalls a deep net; RMSProp goes on"
    )
    sizes = {
        "tiny": Size((32, 32), 3, 1, 12),
        "full": Size((64, 64, 64, 64), 40, 3, 40),
    }

    def measure(self, size: Size, seed: int) -> Results:
        train_set = splits("digits", flat=True).train
        results = Results(size, seeds(seed * 1000, size.seeds), {}, [])
        for s in results.seeds:
            for m in OPTIMIZERS:
                results.runs[m, s] = train(m, train_set, size, s)
            results.checks.append(c := check(results.runs, size, s))
            self.log(
                f"seed {s}: median slope (constant-size gradients) {c.slope:.3f}; loss at the end "
                f"AdaGrad {c.final['AdaGrad']:.3f}, RMSProp {c.final['RMSProp']:.3f}"
            )
        return results

    def verdict(self, results: Results) -> Outcome:
        checks = results.checks
        slope_ok = all(abs(c.slope + 0.5) <= TOLERANCE for c in checks)
        stall_ok = all(
            c.drop("RMSProp") > c.drop("AdaGrad") and c.final["RMSProp"] < c.final["AdaGrad"]
            for c in checks
        )

        def each(form: str, value) -> str:
            return ", ".join(format(value(c), form) for c in checks)

        return Outcome(
            claim="AdaGrad's effective lr alpha/sqrt(sum g^2) decays like t^-1/2 (gradients of "
            "roughly constant size) and stalls on a non-convex problem where RMSProp at the same "
            "lr keeps learning",
            ours=f"{len(checks)} seeds, deep sigmoid MLP on digits, lr {LR}: median log-log "
            f"slope {each('.2f', lambda c: c.slope)} (|gamma| <= {CONSTANT}); second-half loss "
            f"drop AdaGrad {each('.0%', lambda c: c.drop('AdaGrad'))}, RMSProp "
            f"{each('.0%', lambda c: c.drop('RMSProp'))}; final loss AdaGrad "
            f"{each('.3f', lambda c: c.final['AdaGrad'])}, RMSProp "
            f"{each('.3f', lambda c: c.final['RMSProp'])}",
            passed=bool(slope_ok and stall_ok),
        )

    def report(self, page, results: Results) -> None:
        size, runs, first = results.size, results.runs, results.seeds[0]
        fit = decay_fit(runs["AdaGrad", first].t, runs["AdaGrad", first].r)
        page.text(
            f"Setup: MLP 64-{'-'.join(map(str, size.hidden))}-10 with sigmoid activations on the "
            f"embedded digits, batch 32, {size.epochs} epochs "
            f"({len(runs['AdaGrad', first].loss)} updates), AdaGrad and RMSProp (beta 0.9) at lr "
            f"{LR}, seeds {results.seeds}. Slopes are fitted over updates "
            f"{fit['window'][0]}-{fit['window'][1]}.",
            f"The check, fixed before running, for every seed: (1) the median log-log slope of "
            f"AdaGrad's effective lr over the parameters with |gamma| <= {CONSTANT} within "
            f"{TOLERANCE} of -1/2; (2) over the second half of training RMSProp's loss falls by a "
            "larger fraction than AdaGrad's and ends lower.",
        )
        page.table(
            [
                "seed",
                "params with constant-size g",
                "median slope (those)",
                "median slope (all)",
                *(f"{m} {what}" for m in OPTIMIZERS for what in ("loss at half", "final", "drop")),
            ],
            [c.row() for c in results.checks],
            caption="losses are epoch means of the training loss; drop = 1 - final / half",
        )
        page.figure(
            loss_figure(results),
            "loss",
            "Training loss (epoch means) of every seed: AdaGrad against RMSProp at the same lr.",
        )
        page.figure(
            lr_figure(runs, first, fit),
            "effective-lr",
            "Effective learning rates from the optimizers' state (first seed). Left: "
            "AdaGrad, 40 parameters whose gradients keep roughly constant size (thin) and "
            "the median of all such parameters (bold), with a t^-1/2 line. Right: the "
            "median over all parameters for both optimizers.",
        )
        page.figure(
            slope_figure(fit),
            "slopes",
            "Left: fitted slopes of AdaGrad's per-parameter effective lr (first seed). "
            "Right: slope against the gradient-size trend gamma, with -(1 + gamma) / 2, the "
            "slope for gradients growing exactly like a power of t.",
        )


def loss_figure(results: Results):
    from ..report import new_figure

    fig = new_figure((6, 3.8))
    ax = fig.add_subplot()
    for m in OPTIMIZERS:
        for i, s in enumerate(results.seeds):
            curve = epoch_means(results.runs[m, s].loss, results.size.epochs)
            ax.semilogy(
                np.arange(1, len(curve) + 1),
                curve,
                color=COLORS[m],
                alpha=0.8,
                label=f"{m} (lr {LR})" if i == 0 else None,
            )
    ax.set(xlabel="epoch", ylabel="training loss", title="deep sigmoid MLP on digits")
    ax.legend()
    return fig


def lr_figure(runs: dict, seed: int, fit: dict):
    from ..report import new_figure

    fig = new_figure((10, 3.8))
    left, right = fig.subplots(1, 2)
    t, r = runs["AdaGrad", seed].t, runs["AdaGrad", seed].r
    live = np.flatnonzero(fit["live"])
    constant = live[np.abs(fit["gamma"]) <= CONSTANT]
    rng = np.random.default_rng(seed)
    for j in rng.choice(constant, size=min(40, len(constant)), replace=False):
        left.loglog(t, LR / (np.sqrt(r[:, j]) + 1e-10), color="gray", lw=0.5, alpha=0.6)
    if len(constant):
        typical = np.median(LR / (np.sqrt(r[:, constant]) + 1e-10), axis=1)
        left.loglog(t, typical, color=COLORS["AdaGrad"], lw=2.5, label="median of those")
        ref = typical[-1] * np.sqrt(t[-1] / t)
        left.loglog(t, ref, "k--", lw=1, label="slope -1/2")
        left.set_ylim(typical.min() / 100, typical.max() * 100)  # a few start with r ~ 0
    left.set(xlabel="update t", ylabel="alpha / sqrt(r)", title="AdaGrad, constant-size gradients")
    left.legend()
    for m, eps in (("AdaGrad", 1e-10), ("RMSProp", 1e-8)):
        positive = np.where(runs[m, seed].r > 0, runs[m, seed].r, np.nan)
        right.loglog(
            runs[m, seed].t,
            np.nanmedian(LR / (np.sqrt(positive) + eps), axis=1),
            color=COLORS[m],
            label=m,
        )
    right.set(xlabel="update t", ylabel="median alpha / sqrt(r)", title="all parameters")
    right.legend()
    return fig


def slope_figure(fit: dict):
    from ..report import new_figure

    fig = new_figure((10, 3.8))
    hist_ax, scatter_ax = fig.subplots(1, 2)
    slopes, gamma = fit["slope"], fit["gamma"]
    constant = np.abs(gamma) <= CONSTANT
    bins = np.linspace(-2.5, 0.5, 61)
    hist_ax.hist(np.clip(slopes, -2.5, 0.5), bins=bins, color="lightgray", label="all parameters")
    hist_ax.hist(
        np.clip(slopes[constant], -2.5, 0.5),
        bins=bins,
        color=COLORS["AdaGrad"],
        label=f"|gamma| <= {CONSTANT}",
    )
    hist_ax.axvline(-0.5, color="k", ls="--", lw=1)
    hist_ax.set(
        xlabel="log-log slope of alpha / sqrt(r)", ylabel="parameters", title="fitted slopes"
    )
    hist_ax.legend()
    finite = np.isfinite(gamma)
    scatter_ax.plot(gamma[finite], slopes[finite], ".", ms=1.5, alpha=0.3, color="gray")
    grid = np.linspace(-1.5, 3.5, 50)
    scatter_ax.plot(grid, -(1 + grid) / 2, "k--", lw=1, label="-(1 + gamma) / 2")
    scatter_ax.set(
        xlim=(-1.5, 3.5),
        ylim=(-2.5, 0.5),
        xlabel="gradient-size trend gamma",
        ylabel="slope",
        title="slope against gamma",
    )
    scatter_ax.legend()
    return fig
