"""Figures and files of a loss landscape (see :mod:`nabla.lab.landscape`).

``draw_*`` functions draw into a given matplotlib Axes (so experiments can put several landscapes
side by side); :func:`write_landscape` writes the figures, the arrays (safetensors, never pickle),
a JSON summary and ``report.html`` of ``nabla lab landscape``. Loss axes are logarithmic: a
trained network's loss spans orders of magnitude between the minimum and the slice's edges.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import write_text_atomic

__all__ = [
    "draw_contour",
    "draw_curve",
    "draw_nonconvexity",
    "draw_surface",
    "loss_colorbar",
    "summary",
    "write_landscape",
]

TRAINED = dict(marker="*", color="white", markeredgecolor="black", markersize=13, zorder=5)


def _finite(loss: np.ndarray, cap: float | None = None) -> np.ndarray:
    """Losses ready to draw: NaN and infinity become the largest finite value (or ``cap``)."""
    loss = np.asarray(loss, dtype=np.float64)
    finite = loss[np.isfinite(loss)]
    top = cap if cap is not None else (finite.max() if finite.size else 1.0)
    return np.minimum(np.nan_to_num(loss, nan=top, posinf=top), top)


def draw_curve(
    ax, curve, marks: dict, label: str | None = None, color: str = "C0", accuracy: bool = True
):
    """Loss against α (log scale), accuracy on a second axis (dashed), vertical lines at
    ``marks`` (α -> name)."""
    ax.plot(curve.alphas, _finite(curve.loss), color=color, lw=2, label=label or "loss")
    ax.set_yscale("log")
    ax.set_ylabel("loss (log scale)")
    for alpha, name in marks.items():
        ax.axvline(alpha, color="0.4", lw=0.8, ls=":")
        ax.annotate(
            name,
            (alpha, 0.98),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            fontsize=9,
            color="0.25",
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8),
        )
    if not accuracy:
        return None
    twin = ax.twinx()
    twin.plot(
        curve.alphas, curve.accuracy, color=color, lw=1.2, ls="--", alpha=0.8, label="accuracy"
    )
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("accuracy (dashed)")
    twin.grid(False)
    return twin


def draw_contour(
    ax,
    surface,
    cap: float | None = None,
    levels: int = 24,
    colorbar=True,
    limits: tuple | None = None,
):
    """Filled contours of the loss over (α, β) on log-spaced levels, with the trained weights
    (α = β = 0) as a star; losses above ``cap`` are drawn at ``cap``. ``limits`` = (low, high)
    fixes the levels (the same for several panels); by default they span this slice."""
    from matplotlib.colors import LogNorm

    z = _finite(surface.loss, cap).T  # rows: β, columns: α
    if limits is None:
        limits = (z.min(), z.max())
    low = max(limits[0], 1e-12)
    high = max(limits[1], low * 1.001)
    z = np.clip(z, low, high)
    bounds = np.geomspace(low, high, levels)
    norm = LogNorm(low, high)
    filled = ax.contourf(surface.alphas, surface.betas, z, levels=bounds, norm=norm, cmap="viridis")
    ax.contour(
        surface.alphas, surface.betas, z, levels=bounds, colors="k", linewidths=0.35, alpha=0.6
    )
    ax.plot([0], [0], **TRAINED)
    ax.set_xlabel("α (direction δ)")
    ax.set_ylabel("β (direction η)")
    ax.set_aspect("equal")
    ax.grid(False)
    if colorbar:
        loss_colorbar(ax.figure, filled, ax, "loss")
    return filled


def loss_colorbar(figure, filled, axes, label: str, **kwargs):
    """A colorbar for :func:`draw_contour`'s log levels, ticks at 1, 2, 5 x 10^k, plain labels."""
    from matplotlib.ticker import FuncFormatter

    low, high = filled.norm.vmin, filled.norm.vmax
    decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    ticks = [m * 10**d for d in decades for m in (1, 2, 5) if low <= m * 10**d <= high]
    if len(ticks) > 9:  # many decades: label the powers of ten only
        ticks = [t for t in ticks if np.isclose(np.log10(t), np.round(np.log10(t)))]
    bar = figure.colorbar(filled, ax=axes, label=label, ticks=ticks, **kwargs)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bar.ax.minorticks_off()
    return bar


def draw_surface(ax3d, surface, cap: float | None = None, zlim: tuple | None = None):
    """The loss surface in 3-D (``ax3d`` from ``figure.add_subplot(projection="3d")``), the height
    being log10 of the loss (capped at ``cap``)."""
    from matplotlib.ticker import FuncFormatter

    a, b = np.meshgrid(surface.alphas, surface.betas, indexing="ij")
    z = np.log10(np.maximum(_finite(surface.loss, cap), 1e-12))
    ax3d.plot_surface(
        a,
        b,
        z,
        cmap="viridis",
        linewidth=0,
        antialiased=True,
        rcount=120,
        ccount=120,
        vmin=zlim[0] if zlim else None,
        vmax=zlim[1] if zlim else None,
    )
    if zlim:
        ax3d.set_zlim(*zlim)
    ax3d.zaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{10**v:.2g}"))
    ax3d.set_xlabel("α")
    ax3d.set_ylabel("β")
    ax3d.set_zlabel("loss (log)")
    ax3d.view_init(elev=35, azim=-60)


def draw_nonconvexity(ax, r: np.ndarray, surface, threshold: float, colorbar=True):
    """The map of r = |λ_min / λ_max| of the slice's Hessian (0: convex, blue) over the interior
    grid points, as in Li et al.'s Figure 7; the share of points above ``threshold`` is in the
    title of the caller."""
    h = surface.alphas[1] - surface.alphas[0]
    extent = (
        surface.alphas[1] - h / 2,
        surface.alphas[-2] + h / 2,
        surface.betas[1] - h / 2,
        surface.betas[-2] + h / 2,
    )
    image = ax.imshow(
        r.T, origin="lower", extent=extent, vmin=0, vmax=1, cmap="viridis", interpolation="nearest"
    )
    ax.plot([0], [0], **TRAINED)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="r = |λ_min / λ_max|  (0: convex)")
    return image


def summary(settings: dict, interpolation, profile, surface, r, threshold: float) -> dict:
    """The numbers worth reading: endpoint losses, whether the loss falls monotonically from
    init to trained, the slices' minima and the share of non-convex points."""
    on_path = (interpolation.alphas >= 0) & (interpolation.alphas <= 1)
    path = interpolation.loss[on_path]
    centre = surface.loss[len(surface.alphas) // 2, len(surface.betas) // 2]
    return {
        **settings,
        "loss_init": float(interpolation.loss[interpolation.alphas == 0][0]),
        "loss_trained": float(interpolation.loss[interpolation.alphas == 1][0]),
        "accuracy_trained": float(interpolation.accuracy[interpolation.alphas == 1][0]),
        "interpolation_monotone": bool(np.all(np.diff(path) <= 0)),
        "interpolation_bump": float(np.max(np.maximum.accumulate(path[::-1])[::-1] - path)),
        "slice_1d_min": float(np.min(profile.loss)),
        "slice_2d_centre": float(centre),
        "slice_2d_min": float(np.min(surface.loss)),
        "slice_2d_max": float(np.max(surface.loss)),
        "nonconvex_threshold": threshold,
        "nonconvex_share": float(np.mean(r > threshold)),
    }


def write_landscape(
    out, settings: dict, interpolation, profile, surface, r, threshold: float
) -> Path:
    """Figures, ``landscape.safetensors`` (arrays), ``landscape.json`` (summary) and
    ``report.html`` of ``nabla lab landscape`` in ``out``; returns the report's path. ``threshold``:
    the r above which a point counts as non-convex (``landscape.NONCONVEX``)."""
    import matplotlib as mpl

    from ..serialization import save
    from .report import STYLE, LabReport, new_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    facts = summary(settings, interpolation, profile, surface, r, threshold)
    page = LabReport(
        out,
        "Loss landscape",
        subtitle=f"{settings['run_dir']} ({settings['checkpoint']}): "
        f"{settings['samples']} {settings['split']} samples, seed {settings['seed']}",
    )
    page.text(
        "Li et al. 2018, 'Visualizing the Loss Landscape of Neural Nets'. The loss is the run's "
        "mean loss on a fixed subset, in eval mode (trained batch-norm statistics kept, no "
        "dropout); directions are Gaussian, filter-wise normalized, zero on biases and batch "
        "norm parameters.",
    )
    with mpl.rc_context(STYLE):
        figure = new_figure((7, 4))
        ax = figure.add_subplot()
        draw_curve(ax, interpolation, {0.0: "init", 1.0: "trained"})
        ax.set_xlabel("α   (θ = (1 - α) θ_init + α θ_trained)")
        ax.set_title("Linear interpolation from init to trained")
        page.figure(
            figure,
            "interpolation",
            "f(α) = L((1-α) θ_init + α θ_trained), α in [-0.5, "
            f"1.5]; monotone decrease on [0, 1]: {facts['interpolation_monotone']}.",
        )

        figure = new_figure((7, 4))
        ax = figure.add_subplot()
        draw_curve(ax, profile, {0.0: "trained"})
        ax.set_xlabel("α   (θ = θ_trained + α δ, δ filter-normalized)")
        ax.set_title("1-D slice along a random direction")
        page.figure(
            figure, "slice-1d", "f(α) = L(θ + α δ) along one filter-normalized random direction."
        )

        figure = new_figure((6, 5))
        ax = figure.add_subplot()
        draw_contour(ax, surface)
        ax.set_title("2-D slice: contours of the loss")
        page.figure(
            figure,
            "contour",
            "f(α, β) = L(θ + α δ + β η), log-spaced levels; the star is the trained weights.",
        )

        figure = new_figure((7, 5.5))
        ax = figure.add_subplot(projection="3d")
        draw_surface(ax, surface)
        ax.set_title("2-D slice: the loss surface")
        page.figure(figure, "surface", "The same slice as a surface (height: log loss).")

        figure = new_figure((6, 5))
        ax = figure.add_subplot()
        draw_nonconvexity(ax, r, surface, threshold)
        ax.set_title(
            f"Non-convexity of the slice: {facts['nonconvex_share']:.0%} of points "
            f"with r > {threshold}"
        )
        page.figure(
            figure,
            "nonconvexity",
            "r = |λ_min/λ_max| of the slice's 2x2 Hessian "
            "(central differences on the grid), 0 where the slice is locally convex "
            "(Li et al., section 6, for the slice rather than the full Hessian).",
        )
    rows = [[k, v] for k, v in facts.items() if k != "run_dir"]
    page.table(["quantity", "value"], rows, caption="landscape.json")
    arrays = {
        "interpolation.alpha": interpolation.alphas,
        "interpolation.loss": interpolation.loss,
        "interpolation.accuracy": interpolation.accuracy,
        "slice_1d.alpha": profile.alphas,
        "slice_1d.loss": profile.loss,
        "slice_1d.accuracy": profile.accuracy,
        "slice_2d.alpha": surface.alphas,
        "slice_2d.beta": surface.betas,
        "slice_2d.loss": surface.loss,
        "slice_2d.accuracy": surface.accuracy,
        "slice_2d.nonconvexity": r,
    }
    save(
        {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()},
        out / "landscape.safetensors",
        metadata={"summary": json.dumps(facts)},
    )
    write_text_atomic(out / "landscape.json", json.dumps(facts, indent=2) + "\n")
    return page.write()
