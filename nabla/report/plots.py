"""Figures of a training run, read from its run folder (a sweep's comparison: ``sweep.py``).

A run folder holds ``metrics.jsonl`` (one JSON object per line: ``"event": "step"`` after an
update, ``"epoch"`` after an epoch, ``"resume"`` where a run was restarted from a checkpoint),
``results.json`` (final evaluations, confusion matrix, best epoch) and, for images,
``misclassified.safetensors``. :func:`make_plots` turns them into PNGs under ``plots/``, skipping a
figure whose data the run did not record.

Epochs are 0-based in the files. On the plots' x axis epoch ``e`` ends at ``e + 1``, so a point at
x = 3 is "after three epochs" and an update halfway through the first epoch sits at x = 0.5.

Figures are built with :class:`matplotlib.figure.Figure` rather than pyplot: rendering goes through
the Agg canvas whatever backend the caller has chosen (a notebook's included), nothing is
registered globally, and a figure is freed when it goes out of scope.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from statistics import median

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator, PercentFormatter

from ..files import atomic_path
from ..serialization import load

__all__ = ["make_plots", "metric_names", "read_metrics", "read_results"]

TRAIN, DEV = "C0", "C1"
DPI = 100
STYLE = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": True,
    "legend.framealpha": 0.9,
    "legend.edgecolor": "0.85",
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
}


# --- reading a run folder ---------------------------------------------------------------------


def read_metrics(run_dir) -> tuple[list[dict], list[dict]]:
    """The ``step`` and ``epoch`` records of ``run_dir/metrics.jsonl``, sorted by step / epoch.

    A resumed run writes some step and epoch numbers twice; the later line wins. A missing file
    gives two empty lists, and an unfinished last line (a run killed mid-write) is ignored.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    steps, epochs = {}, {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON object ({err})") from None
        event = record.get("event")
        if event == "step":
            steps[record["step"]] = record
        elif event == "epoch":
            epochs[record["epoch"]] = record
    return [steps[k] for k in sorted(steps)], [epochs[k] for k in sorted(epochs)]


def read_results(run_dir) -> dict:
    """``run_dir/results.json`` as a dict; ``{}`` while the run has not finished."""
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def metric_names(epochs: list[dict]) -> list[str]:
    """The metrics other than the loss in the epoch records, in order of first appearance."""
    names = {}
    for record in epochs:
        for split in ("train", "dev"):
            for name in record.get(split) or {}:
                if name != "loss":
                    names[name] = None
    return list(names)


def metric_label(name: str) -> str:
    """``"top5_accuracy"`` -> ``"Top-5 accuracy"``, ``"mse"`` -> ``"MSE"``."""
    if name in ("mse", "mae", "rmse"):
        return name.upper()
    return re.sub(r"top(\d+)", r"top-\1", name).replace("_", " ").capitalize()


def is_fraction(name: str) -> bool:
    """Whether a metric is a fraction in [0, 1], shown as a percentage."""
    return "accuracy" in name


# --- the run's figures ------------------------------------------------------------------------


def make_plots(run_dir) -> list[Path]:
    """Write the run's figures into ``run_dir/plots/`` and return their paths, in reading order.

    ``loss.png``, one ``<metric>.png`` per metric other than the loss, ``lr.png``,
    ``grad_norm.png``, ``confusion.png`` and ``misclassified.png``; each is skipped when the run
    did not record its data (a regression has no confusion matrix, say).
    """
    run_dir = Path(run_dir)
    steps, epochs = read_metrics(run_dir)
    results = read_results(run_dir)
    best = (results.get("best") or {}).get("epoch")
    with mpl.rc_context(STYLE):  # rc parameters are read as each artist is made
        figures = {"loss": _loss(steps, epochs, best)}
        for name in metric_names(epochs):
            figures[file_stem(name)] = _metric(name, epochs, best)
        figures["lr"] = _learning_rate(steps)
        figures["grad_norm"] = _grad_norm(steps)
        figures["confusion"] = _confusion(results)
        figures["misclassified"] = _misclassified(run_dir / "misclassified.safetensors", results)

        out = run_dir / "plots"
        out.mkdir(exist_ok=True)
        written = []
        for stem, figure in figures.items():
            path = out / f"{stem}.png"
            if figure is not None:
                written.append(_save(figure, path))
            else:  # the data is gone (a rebuilt report must not show an old figure)
                path.unlink(missing_ok=True)
    return written


def file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _figure(figsize=(6, 4)) -> Figure:
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def _save(figure: Figure, path: Path) -> Path:
    with atomic_path(path, suffix=Path(path).suffix) as temporary:
        figure.savefig(temporary, dpi=DPI, facecolor="white")
    return path


def _step_positions(steps: list[dict], epochs: list[dict]) -> np.ndarray:
    """x = epoch + the fraction of that epoch done after each logged update.

    Epoch ``e`` covers the updates after the previous epoch's last step up to its own last step
    (both read from the epoch records), so this holds when only every k-th update is logged. An
    epoch still running is measured with the typical epoch length.
    """
    ends = {r["epoch"]: r["step"] for r in epochs if r.get("step") is not None}
    ends[-1] = 0
    spans = [ends[e] - ends[e - 1] for e in ends if e >= 0 and e - 1 in ends]
    first, last = {}, {}
    for s in steps:
        first.setdefault(s["epoch"], s["step"])
        last[s["epoch"]] = s["step"]
    typical = median(spans) if spans else max(last[e] - first[e] + 1 for e in first)
    x = []
    for s in steps:
        e = s["epoch"]
        start = ends.get(e - 1, first[e] - 1)
        span = ends[e] - start if e in ends else typical
        x.append(e + (s["step"] - start) / max(span, 1))
    return np.array(x)


def _column(records: list[dict], key: str, split: str | None = None) -> np.ndarray:
    """``record[split][key]`` (or ``record[key]``) for each record, NaN where it is missing."""
    values = []
    for r in records:
        source = (r.get(split) or {}) if split else r
        value = source.get(key)
        values.append(np.nan if value is None else float(value))
    return np.array(values)


def _mark_best(ax, best) -> None:
    if best is not None:
        ax.axvline(
            best + 1, color="0.45", linestyle=":", linewidth=1.2, label=f"best (epoch {best + 1})"
        )


def _loss(steps, epochs, best) -> Figure | None:
    train, dev = _column(epochs, "loss", "train"), _column(epochs, "loss", "dev")
    step_loss = _column(steps, "loss")
    if not np.isfinite(step_loss).any() and not np.isfinite(train).any():
        return None
    figure = _figure()
    ax = figure.subplots()
    if np.isfinite(step_loss).any():
        ax.plot(
            _step_positions(steps, epochs),
            step_loss,
            color=TRAIN,
            alpha=0.3,
            linewidth=0.8,
            label="train, per update",
        )
    x = np.array([r["epoch"] + 1 for r in epochs])
    if np.isfinite(train).any():
        ax.plot(x, train, "o-", color=TRAIN, markersize=3.5, label="train")
    if np.isfinite(dev).any():
        ax.plot(x, dev, "o-", color=DEV, markersize=3.5, label="dev")
    _mark_best(ax, best)
    values = np.concatenate([step_loss, train, dev])
    values = values[np.isfinite(values)]
    if values.min() > 0 and values.max() / values.min() > 30:
        _log_scale(ax)
    ax.set(title="Loss", xlabel="epoch", ylabel="loss")
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return figure


def _metric(name: str, epochs, best) -> Figure:
    figure = _figure()
    ax = figure.subplots()
    x = np.array([r["epoch"] + 1 for r in epochs])
    for split, color in (("train", TRAIN), ("dev", DEV)):
        y = _column(epochs, name, split)
        if np.isfinite(y).any():
            ax.plot(x, y, "o-", color=color, markersize=3.5, label=split)
    _mark_best(ax, best)
    label = metric_label(name)
    ax.set(title=label, xlabel="epoch", ylabel=label)
    if is_fraction(name):
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return figure


def _learning_rate(steps) -> Figure | None:
    lr = _column(steps, "lr")
    if not np.isfinite(lr).any():
        return None
    figure = _figure()
    ax = figure.subplots()
    ax.plot([s["step"] for s in steps], lr, color="C2", linewidth=1.5)
    ax.set(title="Learning rate", xlabel="update (step)", ylabel="learning rate")
    ax.set_ylim(bottom=0)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    return figure


def _smooth(y: np.ndarray) -> np.ndarray | None:
    """A centred moving average over ~4% of the points, or None when there are too few."""
    window = len(y) // 25
    if window < 3:
        return None
    kernel = np.ones(window) / window
    counts = np.convolve(np.ones_like(y), kernel, mode="same")  # shorter windows at the edges
    return np.convolve(y, kernel, mode="same") / counts


class _PlainLogFormatter(LogFormatter):
    """Log-axis labels as plain numbers (0.6, 2, 0.001) rather than 6e-01 or powers of ten."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def _log_scale(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(minor_thresholds=(1, 0.4)))


def _log_series(ax, x, y, color: str, label: str) -> None:
    keep = np.isfinite(y) & (y > 0)
    x, y = np.asarray(x)[keep], y[keep]
    smooth = _smooth(np.log(y))
    ax.plot(
        x, y, color=color, alpha=0.35 if smooth is not None else 1.0, linewidth=0.8, label=label
    )
    if smooth is not None:
        ax.plot(x, np.exp(smooth), color=color, linewidth=1.6, label=f"{label}, moving average")
    _log_scale(ax)


def _grad_norm(steps) -> Figure | None:
    norm, ratio = _column(steps, "grad_norm"), _column(steps, "update_ratio")
    has_norm, has_ratio = (np.isfinite(v).any() and (v > 0).any() for v in (norm, ratio))
    if not has_norm and not has_ratio:
        return None
    x = [s["step"] for s in steps]
    panels = [p for p, has in (("norm", has_norm), ("ratio", has_ratio)) if has]
    figure = _figure(figsize=(6, 4 if len(panels) == 1 else 5.4))
    axes = np.atleast_1d(figure.subplots(len(panels), 1, sharex=True))
    for ax, panel in zip(axes, panels):
        if panel == "norm":
            _log_series(ax, x, norm, "C3", "gradient norm")
            ax.set(title="Gradient norm", ylabel="‖g‖")
        else:
            _log_series(ax, x, ratio, "C4", "update ratio")
            # the rule of thumb: updates about a thousandth of the weights' scale
            ax.axhline(1e-3, color="0.45", linestyle=":", linewidth=1.2, label="1e-3")
            ax.set(title="Update-to-weight ratio", ylabel="‖Δθ‖ / ‖θ‖")
        ax.legend(loc="upper right")
    axes[-1].set_xlabel("update (step)")
    return figure


def _class_name(results: dict, k: int) -> str:
    classes = results.get("classes") or []
    return str(classes[k]) if 0 <= k < len(classes) else str(k)


# Counts in the cells of the confusion matrix (up to 25 classes): the widest label must fit its
# cell at the smallest size.
COUNTS_UP_TO = 25
COUNT_FONT = (6.0, 10.0)  # points, smallest and largest
CHAR_WIDTH = 0.62  # a digit's width in DejaVu Sans, in ems (a comma is narrower)
# Text on light cells, on dark cells, for zeros. Pure black and white: on any colour one of
# them has a contrast of at least sqrt(21) = 4.58, above the 4.5 that WCAG asks of text.
INK, PAPER, MUTED = "black", "white", "0.4"


def _luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (0 black, 1 white)."""
    c = np.asarray(mpl.colors.to_rgb(rgb))
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two colours, 1 (none) to 21 (black on white); text wants >= 4.5."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _text_color(background, count: int) -> str:
    """Dark or white text, whichever stands out more on ``background``; zeros in a lighter grey
    where that still reads (they sit on the palest cells)."""
    if count == 0 and _contrast(MUTED, background) >= 4.5:
        return MUTED
    return INK if _contrast(INK, background) >= _contrast(PAPER, background) else PAPER


def _confusion(results: dict) -> Figure | None:
    confusion = results.get("confusion") or {}
    if not confusion.get("matrix"):
        return None
    counts = np.asarray(confusion["matrix"], dtype=np.int64)
    n = len(counts)
    totals = counts.sum(axis=1, keepdims=True)
    rows = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    labels = [[f"{c:,}" for c in row] for row in counts]  # 1,135 rather than 1135
    chars = max(len(t) for row in labels for t in row)
    side = min(12.0, max(5.0, 0.45 * n + 1.5))
    if n <= COUNTS_UP_TO:
        # the matrix takes about 3/4 of the figure's height: make a cell wide enough for the
        # widest count at the smallest font size, then fill 80% of it with the largest that fits
        needed = n * COUNT_FONT[0] * CHAR_WIDTH * chars / (0.8 * 0.75 * 72)
        side = min(16.0, max(side, needed))
    cell = 0.75 * side * 72 / n  # points
    size = float(np.clip(0.8 * cell / (CHAR_WIDTH * chars), *COUNT_FONT))
    figure = _figure(figsize=(side + 1.2, side))
    ax = figure.subplots()
    ax.grid(False)
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    if n <= COUNTS_UP_TO:
        for i, j in np.ndindex(counts.shape):
            color = _text_color(image.cmap(image.norm(rows[i, j])), counts[i, j])
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=size, color=color)
    if n <= 40:
        names = [_class_name(results, k) for k in range(n)]
        slanted = max(map(len, names)) > 2  # "airplane", not "7"
        ax.set_xticks(
            range(n), names, rotation=45 if slanted else 0, ha="right" if slanted else "center"
        )
        ax.set_yticks(range(n), names)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    split = confusion.get("split", "")
    where = f"{split}, " if split else ""
    ax.set(
        title=f"Confusion matrix ({where}accuracy {accuracy:.1%})",
        xlabel="predicted",
        ylabel="true",
    )
    return figure


def _misclassified(path: Path, results: dict) -> Figure | None:
    if not path.exists():
        return None
    state = load(path)
    images = np.clip(state["images"].data, 0.0, 1.0)
    labels, predictions = state["labels"].data, state["predictions"].data
    if len(images) == 0:
        return None
    n = len(images)
    columns = min(n, 6)
    rows = math.ceil(n / columns)
    figure = _figure(figsize=(1.35 * columns + 0.3, 1.45 * rows + 0.5))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k >= n:
            continue
        image = images[k]
        if image.shape[0] == 3:
            ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
        else:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        true, predicted = (_class_name(results, int(c[k])) for c in (labels, predictions))
        ax.set_title(f"{true} → {predicted}", fontsize=9, fontweight="normal")
    figure.suptitle("Misclassified (true → predicted)", fontsize=12, fontweight="bold")
    return figure
