"""Capacity and regularization: train and dev error against model size, L2 and dropout
(``nabla lab capacity``).

On a small training set (``train_size`` samples drawn stratified, always the same ones), MLPs
of growing hidden width are trained to the end of a fixed budget of epochs without any
regularization, and their error (1 - accuracy, in eval mode) is measured on that training set
and on the dev split. The lecture's picture:

- **underfitting** (too little capacity): both errors high and close together; more width helps;
- **overfitting** (more capacity than the data can pin down): the training error goes to 0 and
  the gap dev - train grows; dev error stops improving or rises.

The chosen width splits the axis into the two regions, shaded in the plot: the smallest width
whose mean dev error is within one standard error of the lowest (see :func:`best_index`), since
differences smaller than that are the dev set's sampling noise. The plot also shows the
cross-entropy, whose dev value rises again past some width even where the dev error does not.
Then, at the largest width, the same training with L2 regularization (coupled weight decay
λ: the gradient of L + λ/2 ||θ||²) and with dropout p after each hidden layer shows how each
trades training error for dev error. Everything is trained by :class:`nabla.train.Trainer` with
the models and optimizers of ``nabla train`` (Adam, lr 1e-2 with cosine decay, batch 32, unless
told otherwise); the seeds move initialization, shuffling and dropout, never the data.

Writes ``capacity_width.png``, ``capacity_regularization.png``, ``capacity.csv`` (one row per
trained model) and ``report.html``.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import write_text_atomic

__all__ = ["Point", "Sweep", "load", "train_one", "sweep", "best_index"]

EXAMPLES = """examples:
  nabla lab capacity                                 # digits, 300 training samples: ~1 minute
  nabla lab capacity --dataset mnist10k --train-size 500 --widths 4,16,64,256,1024
  nabla lab capacity --widths 8,64,512 --depth 2 --seeds 3 --out /tmp/capacity
"""
WIDTHS = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
DROPOUTS = (0.0, 0.1, 0.3, 0.5, 0.7)


@dataclass
class Point:
    """One trained model: which sweep, the value swept, the seed, and its errors and losses."""

    sweep: str  # "width", "weight_decay" or "dropout"
    value: float
    seed: int
    train_error: float
    dev_error: float
    train_loss: float
    dev_loss: float


@dataclass
class Sweep:
    points: list[Point] = field(default_factory=list)
    n_dev: int = 0  # dev samples: the sampling error of a dev error

    def curve(self, sweep: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, mean, std over seeds) of ``key`` (``"dev_error"``, ``"train_loss"``, ...)
        for one sweep, values in increasing order; the std is the sample std (n - 1)."""
        values, runs = self._runs(sweep, key)
        std = [np.std(r, ddof=1) if len(r) > 1 else 0.0 for r in runs]
        return values, np.array([np.mean(r) for r in runs]), np.array(std)

    def spread(self, sweep: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) of ``key`` over seeds at each value of one sweep."""
        _, runs = self._runs(sweep, key)
        return np.array([min(r) for r in runs]), np.array([max(r) for r in runs])

    def _runs(self, sweep: str, key: str):
        values = sorted({p.value for p in self.points if p.sweep == sweep})
        runs = [
            [getattr(p, key) for p in self.points if p.sweep == sweep and p.value == v]
            for v in values
        ]
        return np.array(values), runs


def best_index(mean_dev_error, n_dev: int) -> tuple[int, int]:
    """(lowest, chosen): the index of the lowest mean dev error, and the smallest model whose
    mean dev error is within one standard error of it (the one-standard-error rule, Hastie,
    Tibshirani and Friedman, *Elements of Statistical Learning*, 7.10). The standard error is
    the binomial one of the lowest error e on n_dev samples, sqrt(e (1 - e) / n_dev): dev errors
    closer than that are not told apart by this dev set, so the smaller model is chosen.

    >>> best_index(np.array([0.5, 0.098, 0.095, 0.09, 0.091]), n_dev=1000)
    (3, 1)
    """
    errors = np.asarray(mean_dev_error, dtype=float)
    lowest = int(np.argmin(errors))
    if n_dev < 1:
        raise ValueError(f"best_index: n_dev must be >= 1, got {n_dev}")
    e = errors[lowest]
    return lowest, int(np.flatnonzero(errors <= e + np.sqrt(e * (1 - e) / n_dev))[0])


def load(dataset: str, train_size: int, dev_fraction: float = 0.5):
    """The data of ``dataset`` with its training split cut to ``train_size`` samples (stratified,
    drawn with seed 0, so every model sees the same ones); a :class:`nabla.train.build.Data`."""
    from ..data import ArrayDataset, datasets
    from ..train import build, config

    cfg = config.resolve({"dataset": dataset, "dev_fraction": dev_fraction})
    data = build.load_data(cfg)
    n = len(data.train)
    if not data.classes <= train_size <= n:
        raise config.ConfigError(
            f"--train-size must be between {data.classes} (one sample per class) and {n} (the "
            f"training split of {dataset}), got {train_size}"
        )
    if train_size < n:
        keep, _ = datasets.stratified_indices(
            data.train.y, [train_size, n - train_size], np.random.default_rng(build.SPLIT_SEED)
        )
        data.train = ArrayDataset(data.train.x[keep], data.train.y[keep], name="train subset")
    return data


def train_one(data, settings: dict) -> dict:
    """Train the MLP of ``settings`` (training settings, see :mod:`nabla.train.config`) on
    ``data``; return train and dev loss and error, measured in eval mode at the end."""
    import nabla

    from ..data import DataLoader
    from ..train import Trainer, build, config

    cfg = config.resolve({"model": "mlp", "schedule": "cosine", **settings})
    nabla.manual_seed(cfg["seed"])
    loader, dev, _ = build.build_loaders(cfg, data)
    model = build.build_model(cfg, data)
    optimizer = build.build_optimizer(cfg, model, len(loader))
    trainer = Trainer(model, nabla.nn.CrossEntropyLoss(), optimizer, metrics=["accuracy"])
    trainer.fit(loader, cfg["epochs"], verbose=0)
    train_eval = DataLoader(data.train, batch_size=512, transform=dev.transform)
    out = {}
    for split, split_loader in (("train", train_eval), ("dev", dev)):
        result = trainer.evaluate(split_loader)
        out[f"{split}_error"], out[f"{split}_loss"] = 1.0 - result["accuracy"], result["loss"]
    return out


def sweep(
    data,
    widths=WIDTHS,
    depth: int = 1,
    epochs: int = 100,
    seeds: int = 3,
    weight_decays=WEIGHT_DECAYS,
    dropouts=DROPOUTS,
    settings: dict | None = None,
    verbose: bool = True,
) -> Sweep:
    """Train every width (no regularization), then every L2 strength and every dropout rate at
    the largest width, each for ``seeds`` seeds (0, 1, ...)."""
    runs = [("width", w, {"hidden": [w] * depth}) for w in widths]
    big = [max(widths)] * depth
    runs += [("weight_decay", wd, {"hidden": big, "weight_decay": wd}) for wd in weight_decays]
    runs += [("dropout", p, {"hidden": big, "dropout": p}) for p in dropouts]
    result, start, done = Sweep(n_dev=len(data.dev)), time.perf_counter(), {}
    for name, value, extra in runs:
        for seed in range(seeds):
            run = {
                "dropout": 0.0,
                "weight_decay": 0.0,
                "epochs": epochs,
                **(settings or {}),
                **extra,
                "seed": seed,
            }
            key = repr(sorted(run.items()))  # λ = 0 and p = 0 at the largest width: trained once
            errors = done[key] = done[key] if key in done else train_one(data, run)
            result.points.append(Point(name, float(value), seed, **errors))
            if verbose:
                print(
                    f"{name} {value:g} seed {seed}: train error {errors['train_error']:.4f}  "
                    f"dev error {errors['dev_error']:.4f}  ({time.perf_counter() - start:.0f}s)",
                    flush=True,
                )
    return result


def _band(ax, result: Sweep, sweep: str, key: str, x, color: str, label: str) -> np.ndarray:
    """Mean over seeds as a line with markers, min to max as a band; returns the mean."""
    _, mean, _ = result.curve(sweep, key)
    low, high = result.spread(sweep, key)
    ax.plot(x, mean, "o-", color=color, label=label, ms=4)
    ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
    return mean


def plot_width(result: Sweep, title: str):
    """Error (left) and cross-entropy (right) against width, log axis; the chosen width splits
    the axis into the underfitting and overfitting regions."""
    from .report import new_figure

    widths, dev, _ = result.curve("width", "dev_error")
    lowest, chosen = best_index(dev, result.n_dev)
    figure = new_figure((11, 4.4))
    left, right = figure.subplots(1, 2)
    for ax, kind in ((left, "error"), (right, "loss")):
        ax.axvspan(widths[0] / 1.3, widths[chosen], color="C0", alpha=0.07)
        ax.axvspan(widths[chosen], widths[-1] * 1.3, color="C3", alpha=0.07)
        for split, color in (("train", "C0"), ("dev", "C3")):
            _band(ax, result, "width", f"{split}_{kind}", widths, color, f"{split} {kind}")
        ax.axvline(
            widths[chosen], color="k", ls="--", lw=1, label=f"chosen width {widths[chosen]:g}"
        )
        ax.set(xscale="log", xlim=(widths[0] / 1.3, widths[-1] * 1.3), xlabel="hidden width")
        ax.set_xticks(widths, [f"{w:g}" for w in widths])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    left.plot(
        widths[lowest],
        dev[lowest],
        "*",
        color="k",
        ms=11,
        label=f"lowest dev error {dev[lowest]:.3f} (width {widths[lowest]:g})",
    )
    left.set(ylim=(0, None), ylabel="error (1 - accuracy)")
    right.set(yscale="log", ylabel="cross-entropy (log scale)")
    top = left.get_ylim()[1]
    left.text(widths[0] * 1.05, top * 0.97, "underfitting", color="C0", va="top")
    left.text(widths[-1] / 1.05, top * 0.97, "overfitting", color="C3", va="top", ha="right")
    left.legend(fontsize=8, loc="center right")
    right.legend(fontsize=8, loc="lower left")
    figure.suptitle(
        f"{title}\nmean over seeds, band min-max; chosen width: smallest within one "
        "standard error of the lowest dev error",
        fontsize=10,
    )
    return figure


def plot_regularization(result: Sweep, title: str):
    """Train and dev error against the L2 strength and against the dropout rate."""
    from .report import new_figure

    figure = new_figure((11, 4.2))
    axes = figure.subplots(1, 2, sharey=True)
    for ax, name, label in (
        (axes[0], "weight_decay", "L2 strength λ (coupled weight decay)"),
        (axes[1], "dropout", "dropout rate p (after each hidden layer)"),
    ):
        values, dev, _ = result.curve(name, "dev_error")
        if not len(values):
            continue
        # λ = 0 cannot sit on a log axis: the λ values are shown at evenly spaced positions
        x = np.arange(len(values)) if name == "weight_decay" else values
        for split, color in (("train", "C0"), ("dev", "C3")):
            _band(ax, result, name, f"{split}_error", x, color, f"{split} error")
        lowest = int(np.argmin(dev))
        ax.plot(
            x[lowest],
            dev[lowest],
            "*",
            color="k",
            ms=11,
            label=f"lowest dev error {dev[lowest]:.3f}",
        )
        if name == "weight_decay":
            ax.set_xticks(x, ["0" if v == 0 else f"{v:.0e}" for v in values])
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("error (1 - accuracy)")
    axes[0].set_ylim(bottom=0)
    figure.suptitle(title, fontsize=10)
    return figure


def write_csv(result: Sweep, path: Path) -> None:
    fields = ["sweep", "value", "seed", "train_error", "dev_error", "train_loss", "dev_loss"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fields)
    for p in result.points:
        writer.writerow(
            [p.sweep, f"{p.value:g}", p.seed, *(f"{getattr(p, k):.6g}" for k in fields[3:])]
        )
    write_text_atomic(path, buffer.getvalue())


def _list(kind, text: str, name: str) -> list:
    from ..train.config import ConfigError

    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"--{name}: give at least one value")
    return values


def add_arguments(parser) -> None:
    from ..train.config import DATASETS

    add = parser.add_argument
    add("--dataset", default="digits", choices=DATASETS, help="the dataset (default digits)")
    add("--train-size", type=int, default=300, help="training samples used (default 300)")
    add(
        "--dev-fraction",
        type=float,
        default=0.5,
        help="share of the training split held out as dev data, for datasets without a dev "
        "split such as digits (default 0.5: a larger dev set, a less noisy dev error)",
    )
    add("--widths", default=",".join(map(str, WIDTHS)), help="hidden widths (default 2,...,1024)")
    add("--depth", type=int, default=1, help="hidden layers, each of the width (default 1)")
    add("--epochs", type=int, default=100, help="epochs per model (default 100)")
    add("--seeds", type=int, default=3, help="seeds per point (default 3)")
    add(
        "--weight-decays",
        default=",".join(f"{v:g}" for v in WEIGHT_DECAYS),
        help="L2 strengths tried at the largest width (default 0,1e-5,...,0.1)",
    )
    add(
        "--dropouts",
        default=",".join(f"{v:g}" for v in DROPOUTS),
        help="dropout rates tried at the largest width (default 0,0.1,0.3,0.5,0.7)",
    )
    add("--optimizer", default="adam", help="the optimizer (default adam)")
    add("--lr", type=float, default=0.01, help="peak lr of the cosine schedule (default 0.01)")
    add("--batch-size", type=int, default=32, help="minibatch size (default 32)")
    add("--out", default="capacity", help="the output folder (default capacity/)")
    add("--quiet", action="store_true", help="print only the summary")


def main(args) -> int:
    from ..train import config
    from .report import LabReport

    widths = sorted(_list(int, args.widths, "widths"))
    decays, dropouts = (
        _list(float, args.weight_decays, "weight-decays"),
        _list(float, args.dropouts, "dropouts"),
    )
    if widths[0] < 1 or args.depth < 1 or args.seeds < 1 or args.epochs < 1:
        raise config.ConfigError("--widths, --depth, --seeds and --epochs must be positive")
    settings = {
        "dataset": args.dataset,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.batch_size,
    }
    config.resolve({**settings, "dropout": 0.0, "epochs": args.epochs})  # checks them
    for p in dropouts:
        config.check("dropout", p)
    for wd in decays:
        config.check("weight_decay", wd)
    data = load(args.dataset, args.train_size, args.dev_fraction)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = sweep(
        data,
        widths,
        args.depth,
        args.epochs,
        args.seeds,
        decays,
        dropouts,
        settings,
        verbose=not args.quiet,
    )
    seconds = time.perf_counter() - start
    setup = (
        f"{args.dataset}, {len(data.train)} training / {len(data.dev)} dev samples; "
        f"mlp of depth {args.depth}, {args.optimizer} lr {args.lr:g} cosine, "
        f"{args.epochs} epochs of batch {args.batch_size}, {args.seeds} seeds"
    )
    write_csv(result, out / "capacity.csv")
    page = LabReport(out, "Capacity and regularization", subtitle=setup)
    w, train, _ = result.curve("width", "train_error")
    _, dev, _ = result.curve("width", "dev_error")
    lowest, chosen = best_index(dev, result.n_dev)
    summary = (
        f"lowest mean dev error {dev[lowest]:.4f} at width {w[lowest]:g}; chosen width "
        f"{w[chosen]:g} (dev {dev[chosen]:.4f}, train {train[chosen]:.4f}); width {w[0]:g}: "
        f"train {train[0]:.4f}, dev {dev[0]:.4f}; width {w[-1]:g}: train {train[-1]:.4f}, "
        f"dev {dev[-1]:.4f}"
    )
    page.text(
        "Every model is trained without regularization to the end of its budget; errors are "
        "measured in eval mode on the training subset and on the dev split. The chosen width is "
        "the smallest whose mean dev error is within one binomial standard error "
        f"sqrt(e (1 - e) / {result.n_dev}) of the lowest (the one-standard-error rule). Left of "
        "it (blue) more capacity lowers the dev error: underfitting. Right of it (red) more "
        "capacity no longer lowers the dev error while the training loss keeps falling: the "
        "gap dev - train is what the model memorized (overfitting).",
        summary,
    )
    page.figure(
        plot_width(result, f"Capacity: {setup}"),
        "capacity_width",
        "error and cross-entropy against hidden width",
    )
    page.figure(
        plot_regularization(result, f"Regularization at width {w[-1]:g}: {setup}"),
        "capacity_regularization",
        "error against L2 strength and dropout rate",
    )
    for name in ("width", "weight_decay", "dropout"):
        values, tr, tr_std = result.curve(name, "train_error")
        _, dv, dv_std = result.curve(name, "dev_error")
        _, dl, _ = result.curve(name, "dev_loss")
        page.table(
            [name, "train error", "std", "dev error", "std", "gap", "dev loss"],
            [list(row) for row in zip(values, tr, tr_std, dv, dv_std, dv - tr, dl)],
            caption=f"mean and std over {args.seeds} seeds; gap = dev - train error",
        )
    page.text(f"{len(result.points)} models trained in {seconds:.0f} s.")
    page.write()
    print(summary)
    if not args.quiet:
        print(f"{len(result.points)} models in {seconds:.0f}s; report: {out / 'report.html'}")
    return 0
