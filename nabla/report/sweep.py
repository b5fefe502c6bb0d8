"""The comparison figure of a hyperparameter sweep: every configuration's learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .plots import STYLE, _figure, _save, is_fraction, metric_label, read_metrics

__all__ = ["plot_sweep"]


def _curve(epochs: list[dict], split: str, name: str) -> dict[int, float]:
    """Epoch (1-based, as plotted) -> ``record[split][name]`` where the run recorded it."""
    values = ((r["epoch"] + 1, (r.get(split) or {}).get(name)) for r in epochs)
    return {e: v for e, v in values if v is not None}


def _first_recorded(runs: list[list[dict]], candidates) -> tuple[str, str] | None:
    for split, name in candidates:
        if any(_curve(epochs, split, name) for epochs in runs):
            return split, name
    return None


def _band(ax, curves: list[dict[int, float]], color: str, label: str) -> None:
    """The mean over runs per epoch, shaded between the lowest and the highest run."""
    x = sorted(set().union(*curves))
    values = [[c[e] for c in curves if e in c] for e in x]
    mean = [sum(v) / len(v) for v in values]
    ax.plot(x, mean, "o-", color=color, markersize=3, label=f"{label} (n={len(curves)})")
    if len(curves) > 1:
        low, high = [min(v) for v in values], [max(v) for v in values]
        ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)


def plot_sweep(groups: dict[str, list[Path]], out_path, metric: str = "accuracy") -> Path:
    """Compare the learning curves of a sweep's configurations; returns ``out_path``.

    ``groups`` maps a configuration's label to its runs' folders (one per seed). The left panel
    shows the dev ``metric`` per epoch (the dev loss, then the train loss, where no run recorded
    it) as the mean over the runs with a min-max band; the right panel the dev loss (the train
    loss where the left panel already shows the dev loss).
    """
    out_path = Path(out_path)
    runs = {label: [read_metrics(Path(r))[1] for r in paths] for label, paths in groups.items()}
    every = [epochs for group in runs.values() for epochs in group]
    left = _first_recorded(every, [("dev", metric), ("dev", "loss"), ("train", "loss")])
    right = _first_recorded(every, [c for c in [("dev", "loss"), ("train", "loss")] if c != left])

    with mpl.rc_context(STYLE):
        figure = _figure(figsize=(11, 4.2))
        _sweep_panels(figure.subplots(1, 2), runs, (left, right))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        return _save(figure, out_path)


def _sweep_panels(axes, runs: dict[str, list[list[dict]]], quantities) -> None:
    for ax, quantity in zip(axes, quantities):
        if quantity is None:
            ax.set(title="(not recorded)", xlabel="epoch")
            continue
        split, name = quantity
        for i, (label, group) in enumerate(runs.items()):
            curves = [c for c in (_curve(epochs, split, name) for epochs in group) if c]
            if curves:
                _band(ax, curves, f"C{i % 10}", label)
        label = metric_label(name)
        title = f"{split.capitalize()} {label if label.isupper() else label.lower()}"
        ax.set(title=title, xlabel="epoch", ylabel=title)
        if is_fraction(name):
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
