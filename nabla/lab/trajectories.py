"""``nabla lab trajectories``: the real optimizers of :mod:`nabla.optim` on a 2-D test function.

Each optimizer gets one float64 tensor θ = (x, y) at the start point and runs::

    for t in 1..N:   loss = f(θ);  opt.zero_grad();  loss.backward();  opt.step()

recording θ and f(θ) before every step and after the last one. A run whose loss or position stops
being finite, or that leaves a large box around the plotting domain (:meth:`Function2D.box`), is
stopped there and marked, so one diverging optimizer never spoils the plot of the others.

The table gives, per optimizer: the final loss, the distance from the final point to the nearest
global minimum, and the first step t with f(θ_t) - f_min <= tol ("never" if none); on the saddle
(no minimum), the first step where it escaped (|y| > 1).

>>> from nabla.lab import functions
>>> runs = run(functions.get("rosenbrock"), ["sgd", "adam"], steps=50)
>>> [(r.name, r.positions.shape, r.status) for r in runs]
[('sgd', (51, 2), 'ok'), ('adam', (51, 2), 'ok')]
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from ..autograd.tensor import Tensor
from ..files import write_text_atomic
from ..optim import registry
from .functions import FUNCTIONS, OPTIMIZERS, Function2D, get
from .records import Trajectory

__all__ = [
    "OPTIMIZERS",
    "Trajectory",
    "presets",
    "distance_to_minimum",
    "escape_step",
    "format_table",
    "main",
    "make_optimizer",
    "run",
    "steps_to_tolerance",
    "table",
    "write_csv",
]

EXAMPLES = """examples:
  nabla lab trajectories --function beale --steps 300 --out beale.gif
  nabla lab trajectories --function saddle --steps 60 --out saddle.gif
  nabla lab trajectories --function rosenbrock --optimizers sgd,momentum,adam --lr adam=0.2 \\
      --out r.gif
  nabla lab trajectories --function rastrigin --start=-2,3.5 --tol 1e-2 --out rastrigin.gif

writes the GIF at --out, the contour plot beside it (same stem, .png) and the table as
<stem>.csv, and prints the table. Functions: """ + ", ".join(FUNCTIONS)


def presets() -> list[str]:
    """The optimizer presets the lab runs: every registered one (:mod:`nabla.optim.registry`)."""
    return list(registry.presets())


def make_optimizer(name: str, params: list, lr: float):
    """The :mod:`nabla.optim` instance that preset ``name`` stands for (``momentum``: ``SGD``
    with momentum 0.9), every setting the preset does not name at the class default."""
    found = registry.presets()
    if name not in found:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(found)}")
    cls, preset = found[name]
    return cls(params, lr=lr, **preset.settings)


def _run_one(function: Function2D, name: str, lr: float, start, steps: int) -> Trajectory:
    low, high = function.box()
    theta = Tensor(start, dtype="float64", requires_grad=True)
    opt = make_optimizer(name, [theta], lr)
    positions, losses = [], []
    status, stopped = "ok", None
    # overflow on the way to divergence is expected and caught by the checks below
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            loss = function(theta)
            point, value = theta.data.copy(), float(loss.item())  # .data is a view: copy it
            if not (np.all(np.isfinite(point)) and math.isfinite(value)):
                status, stopped = "diverged", t
                break
            positions.append(point)
            losses.append(value)
            if np.any(point < low) or np.any(point > high):
                status, stopped = "left the box", t
                break
            if t == steps:
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
    return Trajectory(
        name, lr, np.array(positions).reshape(-1, 2), np.array(losses), status, stopped
    )


def run(
    function: Function2D | str,
    optimizers=None,
    steps: int = 300,
    lrs: dict[str, float] | None = None,
    start=None,
) -> list[Trajectory]:
    """Run each optimizer in ``optimizers`` for ``steps`` steps from ``start`` (default: the
    function's) at the function's suggested learning rate, or the one in ``lrs``; every preset
    by default. Nothing is random: the same arguments give the same trajectories."""
    if isinstance(function, str):
        function = get(function)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    optimizers = presets() if optimizers is None else list(optimizers)
    unknown = [n for n in [*optimizers, *(lrs or {})] if n not in presets()]
    if unknown:
        raise ValueError(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(presets())}")
    start = function.start if start is None else tuple(float(v) for v in start)
    if len(start) != 2 or not all(math.isfinite(v) for v in start):
        raise ValueError(f"start must be a point (x, y) of finite numbers, got {start}")
    lrs = {**{n: function.lr(n) for n in optimizers}, **(lrs or {})}
    return [_run_one(function, name, lrs[name], start, steps) for name in optimizers]


def distance_to_minimum(function: Function2D, point) -> float | None:
    """Euclidean distance from ``point`` to the nearest listed global minimum (None if none)."""
    if not function.minima:
        return None
    return float(np.min(np.linalg.norm(np.array(function.minima) - np.asarray(point), axis=1)))


def steps_to_tolerance(function: Function2D, trajectory: Trajectory, tol: float) -> int | None:
    """The first step t with f(θ_t) - f_min <= tol (None: never, or no minimum)."""
    if function.f_min is None:
        return None
    hits = np.flatnonzero(trajectory.losses - function.f_min <= tol)
    return int(hits[0]) if hits.size else None


def escape_step(function: Function2D, trajectory: Trajectory) -> int | None:
    """The first step where the run has escaped the saddle, ``|θ[axis]| > threshold`` (None:
    never, or the function defines no escape)."""
    if function.escape is None:
        return None
    axis, threshold = function.escape
    hits = np.flatnonzero(np.abs(trajectory.positions[:, axis]) > threshold)
    return int(hits[0]) if hits.size else None


def table(function: Function2D, runs: list[Trajectory], tol: float = 1e-3) -> tuple[list, list]:
    """(header, rows): per optimizer its lr, steps run, status, final loss, distance to the
    nearest minimum ("none" without one), steps to f - f_min <= tol (or "never"), and on a
    function with a saddle, the step where it escaped."""
    header = ["optimizer", "lr", "steps", "status", "final loss", "distance to minimum"]
    if function.f_min is not None:
        header.append(f"steps to f - f_min <= {tol:g}")
    if function.escape is not None:
        axis, threshold = function.escape
        header.append(f"steps to |{'xy'[axis]}| > {threshold:g}")
    rows = []
    for r in runs:
        distance = distance_to_minimum(function, r.positions[-1])
        row = [
            r.name,
            r.lr,
            r.steps,
            r.status if r.status == "ok" else f"{r.status} at {r.stopped}",
        ]
        row += [float(r.losses[-1]), "none" if distance is None else distance]
        if function.f_min is not None:
            hit = steps_to_tolerance(function, r, tol)
            row.append("never" if hit is None else hit)
        if function.escape is not None:
            hit = escape_step(function, r)
            row.append("never" if hit is None else hit)
        rows.append(row)
    return header, rows


def format_table(header: list, rows: list) -> str:
    """The table as aligned text (floats with 4 significant digits)."""
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def write_csv(path, header: list, rows: list) -> Path:
    """The table as CSV (floats with full precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[repr(v) if isinstance(v, float) else v for v in row] for row in rows])
    path = Path(path)
    write_text_atomic(path, buffer.getvalue())
    return path


# --- the command ------------------------------------------------------------------------------


def _point(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        x, y = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"--start: expected x,y (two numbers), got {text!r}") from None
    return x, y


def _lr_overrides(values: list[str]) -> dict[str, float]:
    out = {}
    for item in (piece for value in values for piece in value.split(",") if piece):
        name, sep, number = item.partition("=")
        if not sep or name not in presets():
            raise ValueError(
                f"--lr: expected NAME=VALUE with NAME one of {', '.join(presets())}, got {item!r}"
            )
        try:
            out[name] = float(number)
        except ValueError:
            raise ValueError(f"--lr: {name}'s value {number!r} is not a number") from None
        if not out[name] > 0:
            raise ValueError(f"--lr: {name}'s learning rate must be > 0, got {number}")
    return out


def add_arguments(parser) -> None:
    parser.add_argument(
        "--function",
        default="beale",
        choices=list(FUNCTIONS),
        help="the test function (default beale)",
    )
    parser.add_argument(
        "--optimizers",
        default=None,
        help=f"comma-separated, from {','.join(presets())} (default: all)",
    )
    parser.add_argument("--steps", type=int, default=300, help="steps per optimizer (default 300)")
    parser.add_argument(
        "--lr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a suggested learning rate (repeat, or comma-separate)",
    )
    parser.add_argument(
        "--start",
        metavar="X,Y",
        help="start point (default: the function's; negative: --start=-1,2)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="tolerance on f - f_min for 'steps to reach' (default 1e-3)",
    )
    parser.add_argument(
        "--frames", type=int, default=90, help="frames of the GIF, denser early (default 90)"
    )
    parser.add_argument("--out", help="the GIF to write (default: <function>.gif)")


def main(args) -> int:
    from .trajectory_plots import save_gif, save_static

    try:
        function = get(args.function)
        given = args.optimizers if args.optimizers is not None else ",".join(presets())
        names = [n.strip() for n in given.split(",") if n.strip()]
        if not names:
            raise ValueError("--optimizers: name at least one optimizer")
        lrs = _lr_overrides(args.lr)
        start = _point(args.start) if args.start else None
        if args.steps < 1 or args.frames < 2 or not args.tol >= 0:
            raise ValueError("--steps must be >= 1, --frames >= 2 and --tol >= 0")
        out = Path(args.out or f"{function.name}.gif")
        if out.suffix.lower() != ".gif":
            raise ValueError(f"--out: the animation is a GIF; give a .gif path, got {out}")
        runs = run(function, names, steps=args.steps, lrs=lrs, start=start)
    except (KeyError, ValueError) as err:
        print(f"nabla lab trajectories: error: {err.args[0]}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    header, rows = table(function, runs, args.tol)
    save_gif(function, runs, out, frames=args.frames)
    png = save_static(function, runs, out.with_suffix(".png"), args.tol)
    path = write_csv(out.with_suffix(".csv"), header, rows)
    x, y = runs[0].positions[0]
    print(f"{function.title}: f = {function.formula}; from ({x:g}, {y:g}), {args.steps} steps")
    print(f"  ({function.note})")
    print(format_table(header, rows))
    print(f"wrote {out}, {png}, {path}")
    return 0
