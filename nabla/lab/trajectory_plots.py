"""Pictures of optimizer trajectories on a 2-D test function: the contour plot with every path
(a static PNG, with f - f_min against the step beside it) and an animated GIF in the spirit of
Alec Radford's well-known optimizer animations: each optimizer a colored point with a fading
trail, over the contours, with the minima marked.

Figures use matplotlib's ``Figure`` API (never pyplot); the GIF is written by
``matplotlib.animation`` with the Pillow writer, from frames sampled over the steps, denser early.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..optim import registry
from .functions import Function2D
from .records import Trajectory
from .report import STYLE, new_figure, save_figure

__all__ = [
    "animation",
    "contour",
    "frame_steps",
    "progress",
    "save_gif",
    "save_static",
    "static_figure",
]

GRID = 300  # contour grid points per axis


def _color(name: str) -> str:
    found = registry.presets()  # each optimizer preset's own colour (nabla/optim/registry.py)
    return found[name][1].color if name in found else "black"


def contour(ax, function: Function2D) -> None:
    """Filled contours of f over the function's domain (log-spaced levels of f - f_min where the
    function asks for them), its global minima as stars and saddle points as crosses."""
    (x0, x1), (y0, y1) = function.domain
    xs, ys = np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID)
    grid_x, grid_y = np.meshgrid(xs, ys)
    z = function.value(grid_x, grid_y)
    if function.log_levels:
        z = z - (function.f_min or 0.0)
        high = float(z.max())
        low = max(float(np.quantile(z, 0.002)), high * 1e-9)
        z = np.maximum(z, low)
        # the lowest level sits just below the clipped floor, so the floor is filled too
        levels = np.logspace(np.log10(low) - 0.01, np.log10(high), 24)
    else:
        levels = np.linspace(z.min(), z.max(), 16)
    # light grays, darker where f is lower, so colored paths stand out on them
    shades = [str(v) for v in np.linspace(0.66, 1.0, len(levels) - 1)]
    ax.contourf(grid_x, grid_y, z, levels=levels, colors=shades)
    ax.contour(grid_x, grid_y, z, levels=levels, colors="0.55", linewidths=0.4)
    if function.minima:
        mx, my = np.array(function.minima).T
        ax.plot(
            mx,
            my,
            "*",
            ms=15,
            color="gold",
            mec="black",
            mew=0.8,
            zorder=5,
            label="global minimum" if len(mx) == 1 else "global minima",
        )
    if function.saddle_points:
        sx, sy = np.array(function.saddle_points).T
        ax.plot(sx, sy, "X", ms=9, color="white", mec="black", zorder=5, label="saddle point")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(False)


def _start(ax, runs: list[Trajectory]) -> None:
    sx, sy = runs[0].positions[0]
    ax.plot([sx], [sy], "o", ms=8, mfc="white", mec="black", mew=1.5, zorder=6, label="start")


def progress(ax, function: Function2D, runs: list[Trajectory], tol: float | None = None) -> None:
    """Each run's progress against the step: f - f_min on a log scale; on a saddle (no minimum)
    the escaping coordinate |θ[axis]| on a log scale, with the escape threshold."""
    for r in runs:
        steps = np.arange(len(r.losses))
        if function.f_min is not None:
            value = np.maximum(r.losses - function.f_min, 1e-16)  # exact 0 cannot go on log axes
        elif function.escape is not None:
            value = np.abs(r.positions[:, function.escape[0]])
        else:
            value = r.losses
        ax.plot(steps, value, color=_color(r.name), lw=1.4, label=r.label)
    if function.f_min is not None:
        ax.set_yscale("log")
        # runs that diverged leave through the top instead of squashing the others
        kept = [r.losses.max() for r in runs if r.status == "ok"] + [runs[0].losses[0]]
        ax.set_ylim(top=10 * max(max(kept) - function.f_min, 1e-12))
        ax.set_ylabel("f - f_min")
        ax.set_title("loss against step", fontsize=10)
        if tol is not None and tol > 0:
            ax.axhline(tol, color="0.3", ls="--", lw=0.8, label=f"tol {tol:g}")
            ax.set_ylim(bottom=min(ax.get_ylim()[0], tol / 3))  # the line stays in view
    elif function.escape is not None:
        axis, threshold = function.escape
        name = "xy"[axis]
        ax.set_yscale("log")
        ax.set_ylabel(f"|{name}|")
        ax.set_title(f"escaping the saddle: |{name}| against step", fontsize=10)
        ax.axhline(threshold, color="0.3", ls="--", lw=0.8, label=f"|{name}| = {threshold:g}")
    else:
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_ylabel("f(x, y)")
        ax.set_title("loss against step", fontsize=10)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)


def static_figure(function: Function2D, runs: list[Trajectory], tol: float | None = None):
    """Left: the contour plot with every trajectory, its start, end and the minima; right:
    :func:`progress`."""
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        fig = new_figure((12, 5.4))
        left, right = fig.subplots(1, 2, width_ratios=(1.1, 1))
        contour(left, function)
        for r in runs:
            x, y = r.positions.T
            left.plot(x, y, "-", color=_color(r.name), lw=1.6, alpha=0.9)
            left.plot(
                x[-1:],
                y[-1:],
                "o" if r.status == "ok" else "x",
                ms=6,
                color=_color(r.name),
                mec="black" if r.status == "ok" else None,
                zorder=7,
            )
        _start(left, runs)
        left.set_title(f"{function.title}: f = {function.formula}", fontsize=10)
        left.legend(loc="upper left", fontsize=8)  # markers only: the curves are named on the right
        progress(right, function, runs, tol)
    return fig


def save_static(function: Function2D, runs: list[Trajectory], path, tol: float | None = None):
    """Write :func:`static_figure` as a PNG at ``path``, mapped onto the GIF's palette (a third
    of the size of the full-color file, and it looks the same)."""
    from PIL import Image

    path = save_figure(static_figure(function, runs, tol), path)
    with Image.open(path) as image:
        small = _quantizer([_color(r.name) for r in runs])(image)
    with atomic_path(path, suffix=".png") as temporary:
        small.save(temporary, optimize=True)
    return path


def frame_steps(steps: int, frames: int) -> np.ndarray:
    """Up to ``frames`` steps from 0 to ``steps``, denser early, where the paths move most:
    step = steps (i / (frames - 1))², rounded, repeats dropped (every step if there are few)."""
    if steps + 1 <= frames:
        return np.arange(steps + 1)
    share = np.linspace(0.0, 1.0, max(2, frames))
    return np.unique(np.round(steps * share**2).astype(int))


def _palette(colors) -> list[tuple[int, int, int]]:
    """One fixed GIF palette for every frame: a gray ramp for the contours, and each trajectory
    color blended at a few opacities over a few grays (its fading trail). Frames mapped onto
    the same palette keep unchanged pixels identical, so Pillow stores only what moved."""
    from matplotlib.colors import to_rgb

    entries = [(v, v, v) for v in range(0, 256, 5)]  # 52 grays
    entries += [tuple(round(255 * c) for c in to_rgb(name)) for name in ("gold", "black", "white")]
    for color in colors:
        rgb = np.array(to_rgb(color)) * 255
        for under in (150, 190, 225, 255):
            for alpha in (0.25, 0.5, 0.75, 0.9, 1.0):
                entries.append(tuple(round(v) for v in alpha * rgb + (1 - alpha) * under))
    return list(dict.fromkeys(entries))[:255]


def _quantizer(colors):
    """A function mapping an image exactly onto the nearest colors of :func:`_palette` (no
    dithering). Pillow's own mapping onto a given palette is approximate (it turns white into
    light gray), so the nearest entry is computed here, once per distinct color, in a table
    indexed by the 24-bit color."""
    from PIL import Image

    table = np.array(_palette(colors), dtype=np.int64)
    flat = table.astype(np.uint8).ravel().tolist()
    lookup = np.full(1 << 24, 255, dtype=np.uint8)  # 255: not computed yet (< 255 entries)

    def quantize(image):
        rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        new = np.unique(codes[lookup[codes] == 255])
        if new.size:
            channels = np.stack([new >> 16, (new >> 8) & 255, new & 255], axis=1)
            distance = ((channels[:, None, :] - table[None, :, :]) ** 2).sum(axis=-1)
            lookup[new] = np.argmin(distance, axis=1)
        out = Image.frombytes("P", image.size, lookup[codes].tobytes())
        out.putpalette(flat)
        return out

    return quantize


def _writer(fps: int, colors):
    """matplotlib's Pillow writer, taking each frame from the canvas as already drawn (by
    blitting) instead of redrawing the whole figure, and mapping frames onto one palette."""
    from matplotlib.animation import PillowWriter
    from PIL import Image

    class BlitPillowWriter(PillowWriter):
        def grab_frame(self, **savefig_kwargs):
            canvas = self.fig.canvas
            rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
            self._frames.append(rgba.copy())  # the canvas buffer is reused by the next frame

        def finish(self):
            quantize = _quantizer(colors)
            frames = [quantize(frame) for frame in self._frames]
            frames[0].save(
                self.outfile,
                save_all=True,
                append_images=frames[1:],
                duration=int(1000 / self.fps),
                loop=0,
            )

    return BlitPillowWriter(fps=fps)


HEIGHT, MARGINS = 5.0, (0.75, 0.55, 0.35, 0.3)  # GIF: inches; left, bottom, top, legend gap


def _place(fig, ax, legend, function: Function2D) -> None:
    """Size the GIF's figure and place its axes (equal aspect, the domain's shape) with the
    legend to its right."""
    left, bottom, top, gap = MARGINS
    (x0, x1), (y0, y1) = function.domain
    height = HEIGHT - bottom - top
    width = min(height * (x1 - x0) / (y1 - y0), 1.5 * height)
    legend_width = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    total = left + width + gap + legend_width + 0.1
    fig.set_size_inches(total, HEIGHT)
    ax.set_position((left / total, bottom / HEIGHT, width / total, height / HEIGHT))
    legend.set_bbox_to_anchor(
        ((left + width + gap) / total, (bottom + height) / HEIGHT), transform=fig.transFigure
    )


def animation(function: Function2D, runs: list[Trajectory], trail: float = 0.15):
    """The GIF's figure and ``draw(step)``, which paints the frame at ``step`` on its canvas.

    Each optimizer is a colored point (a cross once it diverged) with a fading trail over the
    last ``trail`` share of the steps, above a faint line of its whole path so far. Contours,
    axes and legend are drawn once; a frame redraws only the moving artists (blitting).
    """
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    steps = max(r.steps for r in runs)
    tail = max(2, round(trail * steps))
    with mpl.rc_context(STYLE):
        fig = new_figure((8.0, HEIGHT))
        fig.set_layout_engine("none")  # placed by hand: constrained layout misplaces an
        canvas = FigureCanvasAgg(fig)  # equal-aspect axes beside an outside legend
        ax = fig.add_axes((0, 0, 1, 1))
        contour(ax, function)
        _start(ax, runs)
        moving = []
        for r in runs:
            color = _color(r.name)
            whole = ax.plot([], [], "-", color=color, lw=1.0, alpha=0.35, animated=True)[0]
            recent = LineCollection([], linewidths=2.2, zorder=6, animated=True)
            ax.add_collection(recent)
            head = ax.plot(
                [],
                [],
                "o",
                ms=8,
                color=color,
                mec="black",
                mew=0.8,
                zorder=8,
                animated=True,
                label=r.label,
            )[0]
            moving.append((r, to_rgba(color), whole, recent, head))
        legend = fig.legend(loc="upper left", fontsize=8)
        title = ax.set_title(" ", fontsize=10, animated=True)
        _place(fig, ax, legend, function)
        canvas.draw()  # everything that does not move, drawn once
    background = canvas.copy_from_bbox(fig.bbox)

    def draw(step: int) -> None:
        canvas.restore_region(background)
        for r, rgba, whole, recent, head in moving:
            k = min(step, r.steps)
            x, y = r.positions[: k + 1].T
            whole.set_data(x, y)
            # the trail covers steps (step - tail, step]: a run that stopped fades out with time
            first = min(max(0, step - tail), k)
            points = r.positions[first : k + 1]
            ages = step - np.arange(first + 1, k + 1)  # of each segment's end, in steps
            recent.set_segments(np.stack([points[:-1], points[1:]], axis=1))
            recent.set_color([(*rgba[:3], a) for a in np.clip(1 - ages / tail, 0.1, 1.0)])
            head.set_data(x[-1:], y[-1:])
            head.set_marker("o" if k < r.steps or r.status == "ok" else "X")
            for artist in (whole, recent, head):
                ax.draw_artist(artist)
        title.set_text(f"{function.title}: step {step} of {steps}")
        ax.draw_artist(title)

    return fig, draw


def save_gif(
    function: Function2D,
    runs: list[Trajectory],
    path,
    frames: int = 90,
    fps: int = 15,
    trail: float = 0.15,
) -> Path:
    """Animate the runs (:func:`animation`) and write the GIF at ``path``: ``frames`` frames
    at the steps of :func:`frame_steps`, then the last held for a second."""
    fig, draw = animation(function, runs, trail)
    shown = frame_steps(max(r.steps for r in runs), frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _writer(fps, [_color(r.name) for r in runs])
    with atomic_path(path, suffix=".gif") as temporary, writer.saving(fig, temporary, dpi=fig.dpi):
        for step in [*shown, *[shown[-1]] * fps]:
            draw(int(step))
            writer.grab_frame()
    return path
