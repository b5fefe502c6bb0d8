"""Batch norm smooths the loss landscape; it does not reduce internal covariate shift.

Claim (Santurkar, Tsipras, Ilyas and Madry 2018, "How Does Batch Normalization Help
Optimization?", NeurIPS, sections 2.2, 3.1 and 3.2, figures 3 and 4): along training, at the same
lr, the network with BN has a smoother loss landscape than the same network without: from the
current weights w with minibatch gradient g, over a range of step sizes η,

    loss landscape           the range  max_η L(w - ηg) - min_η L(w - ηg)
    gradient predictiveness  max_η ||g(w - ηg) - g(w)||
    effective β-smoothness   max_η ||g(w - ηg) - g(w)|| / ||ηg||

are all smaller with BN, while the internal covariate shift (ICS) of a layer i, the change of
its gradient caused by the SGD update of the layers before it on the same batch (definition 2.1),

    G_i = ∇_{W_i} L(W_1, ..., W_k),
    G'_i = ∇_{W_i} L(W_1 - lr g_1, ..., W_{i-1} - lr g_{i-1}, W_i, ..., W_k),

measured by ||G_i - G'_i|| and cos(G_i, G'_i), is not smaller with BN (cosine as low or lower).

Setup: a deep ReLU MLP 784-(100 x 7)-10 on MNIST-10k (7,000 training images), with and without
BatchNorm1d after every hidden Linear; He-normal weights and zero biases, the same for both nets
(the default uniform init shrinks a deep plain net's signal, which would flatten its landscape
for the wrong reason); plain SGD (no momentum, so an update is exactly -lr g) at the same
constant lr for both, batches of 128, 8 epochs. Every 20 steps and at step 0, on one fixed batch
of 128 training images in train mode (BN normalizes with that batch's statistics; the weights and
running buffers are put back afterwards): L and g at w, then L and g at w - ηg for
η = lr x (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4) (the paper's figure 4 caps η at 0.4), and
G'_i for every Linear but the first (which has no layer before it). The measures of a run are
their medians over the probes (ICS: over probes and layers). Three seeds (initialization, data
order, probe batch) at each lr of (0.01, 0.03, 0.1): all three train both nets.

Choices that could bias the verdict: the comparison is at equal η, not equal distance (β divides
by the distance; ||g|| is reported); the loss range counts a larger decrease along -g as
roughness, as the paper's measure does; a probe batch of 128 in train mode; 8 epochs, far
shorter than the paper's runs. An exploratory run (seed 100, 3 epochs, lr 0.01, 0.03, 0.1), made
after the measures and the comparison below were written down for lr 0.1 alone, showed that the
answer depends on the lr; the check was therefore extended to every lr of that grid (the grid
itself is the exploratory run's), unchanged otherwise. LeNet is not run (time).

Check, fixed before the full run: at every lr and for every seed, the BN net's medians of the loss
range, of max_η ||Δg|| and of the effective β are each below the plain net's; and ICS is not
smaller with BN: its median cos(G_i, G'_i) is at most the plain net's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import models, nn, optim
from ...data import DataLoader
from ...train import callbacks
from .. import landscape as ls
from .common import classifier, derive_seed, one_thread, seeds, splits
from .framework import Experiment, Outcome

STEP_MULTIPLES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0)  # η / lr
NETS = {False: "without BN", True: "with BN"}
COLORS = {False: "#d62728", True: "#1f77b4"}


@dataclass(frozen=True)
class Size:
    data: str
    hidden: tuple
    epochs: int
    batch: int
    lrs: tuple
    every: int  # steps between probes
    seeds: int


def build(sizes: list, batch_norm: bool, seed: int) -> nn.Sequential:
    """The ReLU MLP, He-normal weights and zero biases: the same Linear weights for both nets."""
    model = models.mlp(sizes, activation="relu", batch_norm=batch_norm)
    rng = np.random.default_rng(seed)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=rng)
            nn.init.zeros_(layer.bias)
    return model


def loss_and_gradient(model, criterion, x, y) -> tuple[float, dict]:
    """L and ∇L by parameter name at the model's current weights (its current mode)."""
    model.zero_grad()
    with np.errstate(all="ignore"):  # a big step can overflow the plain net's loss
        loss = criterion(model(x), y)
        loss.backward()
    return float(loss.data), {n: p.grad.astype(np.float64) for n, p in model.named_parameters()}


def norm(arrays) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))


def along_gradient(model, criterion, x, y, etas) -> dict:
    """From w: L(w), ||g||, and for each η: L(w - ηg) and ||g(w - ηg) - g(w)||. The model's
    weights and buffers are put back."""
    with ls.restored(model):
        w = ls.get_weights(model)
        loss, g = loss_and_gradient(model, criterion, x, y)
        losses, changes = [], []
        for eta in etas:
            ls.set_weights(model, {n: (w[n] - eta * g[n]).astype(w[n].dtype) for n in w})
            loss_eta, g_eta = loss_and_gradient(model, criterion, x, y)
            losses.append(loss_eta)
            changes.append(norm(g_eta[n] - g[n] for n in g))
    return {"loss": loss, "grad_norm": norm(g.values()), "losses": losses, "changes": changes}


def covariate_shift(model: nn.Sequential, criterion, x, y, lr: float) -> list[tuple]:
    """Santurkar et al.'s ICS, definition 2.1: for every Linear layer i but the first,
    (||G_i - G'_i||, ||G_i||, cos(G_i, G'_i)), G'_i its weight's gradient after the layers
    before it (every module of ``model`` before it) took their SGD step -lr g on (x, y)."""
    owner = {n: int(n.split(".")[0]) for n, _ in model.named_parameters()}
    layers = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)][1:]
    shifts = []
    with ls.restored(model):
        w = ls.get_weights(model)
        _, g = loss_and_gradient(model, criterion, x, y)
        for i in layers:
            moved = {n: w[n] - lr * g[n] if owner[n] < i else w[n] for n in w}
            ls.set_weights(model, {n: v.astype(w[n].dtype) for n, v in moved.items()})
            _, g_moved = loss_and_gradient(model, criterion, x, y)
            before, after = g[f"{i}.weight"].ravel(), g_moved[f"{i}.weight"].ravel()
            scale = max(np.linalg.norm(before) * np.linalg.norm(after), 1e-300)
            shifts.append((norm([before - after]), norm([before]), float(before @ after / scale)))
    return shifts


@dataclass
class Run:
    """One net, lr and seed: at each probe step, the measures above (per η or per layer)."""

    bn: bool
    lr: float
    seed: int
    steps: np.ndarray
    etas: np.ndarray
    loss: np.ndarray  # L(w)
    grad_norm: np.ndarray  # ||g||
    losses: np.ndarray  # (probes, etas): L(w - ηg)
    changes: np.ndarray  # (probes, etas): ||g(w - ηg) - g(w)||
    ics: np.ndarray  # (probes, layers, 3): ||G - G'||, ||G||, cos(G, G')
    final_loss: float  # the last epoch's training loss (train mode)
    dev_accuracy: float

    @property
    def loss_range(self) -> np.ndarray:
        return self.losses.max(axis=1) - self.losses.min(axis=1)

    @property
    def predictiveness(self) -> np.ndarray:
        return self.changes.max(axis=1)

    @property
    def beta(self) -> np.ndarray:
        return (self.changes / (self.etas * self.grad_norm[:, None])).max(axis=1)

    def medians(self) -> dict:
        return {
            "loss range": float(np.median(self.loss_range)),
            "max ||Δg||": float(np.median(self.predictiveness)),
            "effective β": float(np.median(self.beta)),
            "ICS cos": float(np.median(self.ics[..., 2])),
            "ICS ||G-G'||": float(np.median(self.ics[..., 0])),
            "ICS ||G-G'||/||G||": float(np.median(self.ics[..., 0] / self.ics[..., 1])),
            "||g||": float(np.median(self.grad_norm)),
        }


JUDGED = ("loss range", "max ||Δg||", "effective β", "ICS cos")


def judged(plain: Run, bn: Run) -> dict:
    """Each judged measure: whether it goes the claim's way for this lr and seed (smaller with
    BN; for the ICS cosine, at most the plain net's)."""
    p, b = plain.medians(), bn.medians()
    return {k: b[k] <= p[k] if k == "ICS cos" else b[k] < p[k] for k in JUDGED}


@dataclass
class Results:
    size: Size
    runs: list  # of Run

    def pairs(self) -> list:
        """(plain, bn) for every lr and seed."""
        runs = {(r.lr, r.seed, r.bn): r for r in self.runs}
        return [(r, runs[r.lr, r.seed, True]) for r in self.runs if not r.bn]

    def select(self, bn: bool, lr: float) -> list:
        return [r for r in self.runs if r.bn == bn and r.lr == lr]


class Probe(callbacks.Callback):
    """At step 0 and every ``every`` steps: the landscape along -g and the ICS on (x, y)."""

    def __init__(self, x, y, etas, lr: float, every: int):
        self.x, self.y, self.etas, self.lr, self.every = x, y, etas, lr, every
        self.steps, self.along, self.ics = [], [], []

    def probe(self, trainer, step: int) -> None:
        model, criterion = trainer.model, trainer.loss
        self.steps.append(step)
        self.along.append(along_gradient(model, criterion, self.x, self.y, self.etas))
        self.ics.append(covariate_shift(model, criterion, self.x, self.y, self.lr))

    def on_train_begin(self, trainer) -> None:
        self.probe(trainer, 0)

    def on_batch_end(self, trainer, step: int, logs: dict) -> None:
        if step % self.every == 0:
            self.probe(trainer, step)


def train(data, size: Size, batch_norm: bool, lr: float, seed: int) -> Run:
    train_set, dev_set = data
    nb.manual_seed(seed)
    model = build([train_set.x.shape[1], *size.hidden, 10], batch_norm, seed)
    rows = np.random.default_rng(derive_seed(seed, 1)).permutation(len(train_set))[: size.batch]
    etas = lr * np.asarray(STEP_MULTIPLES)
    x, y = nb.tensor(train_set.x[rows]), nb.tensor(train_set.y[rows])
    probe = Probe(x, y, etas, lr, size.every)
    trainer = classifier(model, optim.SGD(model.parameters(), lr=lr), callbacks=[probe])
    loader = DataLoader(train_set, batch_size=size.batch, shuffle=True, seed=seed)
    history = trainer.fit(loader, epochs=size.epochs, verbose=0)
    dev = trainer.evaluate(DataLoader(dev_set, batch_size=1000))["accuracy"]

    def column(key):
        return np.array([a[key] for a in probe.along], dtype=np.float64)

    return Run(
        batch_norm,
        lr,
        seed,
        np.asarray(probe.steps),
        etas,
        column("loss"),
        column("grad_norm"),
        column("losses"),
        column("changes"),
        np.asarray(probe.ics, dtype=np.float64),
        float(history["loss"][-1]),
        float(dev),
    )


class BatchNormSmoothness(Experiment):
    name = "batchnorm-smoothness"
    title = "Batch norm smooths the loss landscape, not internal covariate shift"
    reference = (
        "Santurkar, Tsipras, Ilyas and Madry 2018, How Does Batch Normalization Help "
        "Optimization? (NeurIPS), sections 2.2, 3.1, 3.2 and figures 3, 4"
    )
    summary = "loss and gradient change along -ηg, and each layer's gradient shift, with/without BN"
    sizes = {
        "tiny": Size("digits", (16,) * 3, 2, 64, (0.1,), 5, 2),
        "full": Size("mnist10k", (100,) * 7, 8, 128, (0.01, 0.03, 0.1), 20, 3),
    }

    def measure(self, size: Size, seed: int) -> Results:
        train_set, dev_set, _ = splits(size.data, flat=True)
        results = Results(size, [])
        # 128 x 100 matrices: one BLAS thread is faster than two, and far faster on a busy machine
        with one_thread():
            for lr in size.lrs:
                for s in seeds(seed, size.seeds):
                    for bn in (False, True):
                        run = train((train_set, dev_set), size, bn, lr, s)
                        results.runs.append(run)
                        m = run.medians()
                        self.log(
                            f"lr {lr:g} seed {s} {NETS[bn]:10s} "
                            + " ".join(f"{k} {v:.4g}" for k, v in m.items())
                            + f" | train loss {run.final_loss:.4f} dev {run.dev_accuracy:.4f}"
                        )
        return results

    def verdict(self, results: Results) -> Outcome:
        pairs = results.pairs()
        checks = [judged(p, b) for p, b in pairs]
        tally = ", ".join(f"{k} {sum(c[k] for c in checks)}/{len(checks)}" for k in JUDGED)

        def mean(bn, lr, key):
            return np.mean([r.medians()[key] for r in results.select(bn, lr)])

        means = "; ".join(
            f"lr {lr:g}: "
            + ", ".join(f"{k} {mean(True, lr, k):.3g} vs {mean(False, lr, k):.3g}" for k in JUDGED)
            for lr in results.size.lrs
        )
        return Outcome(
            claim="at the same lr, BN makes the loss and gradient vary less along -ηg (loss range, "
            "max ||Δg||, effective β smaller) while its ICS is not smaller (cos(G, G') as low or "
            "lower) (Santurkar et al. 2018)",
            ours=f"(lr, seed) pairs going the claim's way: {tally}; seed means, BN vs plain, at "
            f"{means}",
            passed=all(all(c.values()) for c in checks),
        )

    def report(self, page, results: Results) -> None:
        size = results.size
        page.text(
            f"ReLU MLP 784-({size.hidden[0]} x {len(size.hidden)})-10 on {size.data}, with and "
            "without BatchNorm1d after each hidden Linear, the same He-normal initial weights; "
            f"plain SGD at the same lr for both (each of {', '.join(map(str, size.lrs))}), "
            f"batches of {size.batch}, {size.epochs} epochs, {size.seeds} seeds. At step 0 and "
            f"every {size.every} steps, on a fixed batch of {size.batch} training images in train "
            "mode: L(w - ηg) and ||g(w - ηg) - g(w)|| for η = lr x "
            f"{', '.join(f'{m:g}' for m in STEP_MULTIPLES)}; effective β = max_η ||Δg|| / ||ηg||; "
            "and the ICS of every Linear but the first: its weight gradient G before and G' after "
            "the layers below take their SGD step on that batch.",
            "Check, fixed before the full run: at every lr and seed, the BN net's medians over "
            "probes of the loss range, max_η ||Δg|| and effective β are below the plain net's, and "
            "its median cos(G, G') (probes and layers) is at most the plain net's.",
        )
        page.figure(
            summary_figure(results),
            "summary",
            "each measure's median over training against the lr (dots: seeds, line: their mean); "
            "red without BN, blue with. (a)-(c): lower is smoother, the claim wants blue below "
            "red; (d): higher is more covariate shift, the claim wants blue not below red",
        )
        shown = (min(size.lrs), max(size.lrs)) if len(size.lrs) > 1 else size.lrs
        page.figure(
            bands_figure(results, shown),
            "training",
            "along training, first seed (the paper's figure 4), at the smallest and the largest "
            "lr: the band from min_η to max_η at each probe step of L(w - ηg) and of "
            "||g(w - ηg) - g(w)||, and the effective β-smoothness",
        )
        rows = []
        for p, b in results.pairs():
            for run in (p, b):
                values = run.medians().values()
                rows.append([run.lr, run.seed, NETS[run.bn], *values, run.final_loss])
                rows[-1].append(run.dev_accuracy)
            ok = judged(p, b)
            rows.append(["", "", "claim's way?", *(ok.get(k, "") for k in p.medians()), "", ""])
        page.table(
            ["lr", "seed", "net", *results.runs[0].medians(), "train loss", "dev acc"],
            rows,
            caption="medians over probes (ICS: probes and layers); judged: loss range, max ||Δg||, "
            "effective β, ICS cos; train loss of the last epoch (train mode), final dev accuracy",
        )


def plain_log_ticks(ax) -> None:
    """Log y ticks at 1, 2, 5 x 10^k written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    for formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def summary_figure(results: Results):
    from ..report import new_figure

    fig = new_figure((10, 7))
    axes = fig.subplots(2, 2, sharex=True).ravel()
    panels = (
        ("loss range", "(a) loss range along -ηg (claim: BN lower)", lambda v: v),
        ("max ||Δg||", "(b) gradient predictiveness max ||Δg|| (BN lower)", lambda v: v),
        ("effective β", "(c) effective β-smoothness (BN lower)", lambda v: v),
        ("ICS cos", "(d) covariate shift 1 - cos(G, G') (BN not lower)", lambda v: 1 - v),
    )
    lrs = np.asarray(results.size.lrs)
    for ax, (key, title, transform) in zip(axes, panels):
        for bn in (False, True):
            values = np.array(
                [[transform(r.medians()[key]) for r in results.select(bn, lr)] for lr in lrs]
            )
            for column in values.T:
                ax.plot(lrs, column, "o", color=COLORS[bn], alpha=0.35, ms=4)
            ax.plot(lrs, values.mean(1), "s-", color=COLORS[bn], label=NETS[bn])
        ax.set(xscale="log", yscale="log", title=title, xticks=lrs, xticklabels=map(str, lrs))
        plain_log_ticks(ax)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    for ax in axes[2:]:
        ax.set_xlabel("learning rate (the same for both nets)")
    return fig


def bands_figure(results: Results, lrs: tuple):
    from ..report import new_figure

    fig = new_figure((12, 3.4 * len(lrs)))
    for row, lr in zip(fig.subplots(len(lrs), 3, squeeze=False), lrs):
        for bn in (False, True):
            run = results.select(bn, lr)[0]
            for ax, values in zip(row, (run.losses, run.changes)):
                low, high = values.min(axis=1), values.max(axis=1)
                ax.fill_between(run.steps, low, high, color=COLORS[bn], alpha=0.35, lw=0)
                ax.plot(run.steps, high, color=COLORS[bn], lw=0.8, label=NETS[bn])
            row[2].plot(run.steps, run.beta, color=COLORS[bn], label=NETS[bn])
        titles = ("loss landscape L(w - ηg)", "gradient change ||g(w - ηg) - g(w)||", "effective β")
        for ax, title in zip(row, titles):
            ax.set(yscale="log", xlabel="training step", title=f"lr {lr:g}: {title}")
            plain_log_ticks(ax)
            ax.grid(True, alpha=0.3)
        row[0].legend()
    return fig
