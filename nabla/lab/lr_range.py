"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3; the "LR finder" of fast.ai): ``nabla lab lr-range``.

The model of a training config is trained for at most ``steps`` updates while the learning rate
grows exponentially, by the same factor every update, from ``min_lr`` to ``max_lr``::

    lr_t = min_lr * (max_lr / min_lr) ** (t / (steps - 1))        t = 0, 1, ..., steps - 1

(an :class:`ExponentialRange` schedule given as ``lr=`` to the real optimizer: the config's
optimizer, momentum, weight decay, batch size, ... all apply; its ``lr``, ``schedule`` and
``epochs`` do not). The loss L_t of each batch is recorded together with its exponentially
smoothed value, a moving average with Adam's bias correction (the average starts at 0, so the
first values are divided by the weight they have so far)::

    m_t = β m_{t-1} + (1 - β) L_t,   m_{-1} = 0,      s_t = m_t / (1 - β^(t+1))

An average trails what it averages: the weights (1 - β) β^k of the loss k steps back have their
centre at k = β / (1 - β) steps. The lr grows by a factor each step, so this delay is a distance
in lr: with fast.ai's β = 0.98 it is 49 steps, four decades of lr in a 100-step test from 1e-7 to
10, and the smoothed curve bottoms out where the batch loss has long exploded. So β is chosen
from the grid (:func:`smoothing_beta`): the delay is ``LAG_DECADES`` = 0.1 decade of lr, that is

    β / (1 - β) = 0.1 * steps per decade        (β = 0.55 for 100 steps over 8 decades,
                                                 0.83 for 400; at most 0.98)

more steps per decade buy more smoothing at the same delay.

The test stops early once training has clearly diverged: when s_t > 4 min_{u<=t} s_u (the loss
exploded to four times the best smoothed loss), or s_t is NaN or infinite. While the lr is tiny
nothing happens; then the loss falls; past some lr it rises and explodes. The suggestion (the
rule is printed on the plot), read off the smoothed curve, is

    suggested lr = (the lr at the minimum of the smoothed loss) / 10

one order of magnitude below the lr where the loss stops falling (Smith's and fast.ai's rule of
thumb: the minimum is already at the edge of stability). The lr of steepest descent of the
smoothed loss, argmin_t ds_t / d log(lr_t) before the minimum, is marked too, as a second
opinion. The model's weights are thrown away: the test is a probe.

>>> lr = ExponentialRange(1e-7, 10.0, steps=101)
>>> f"{lr(0):.0e} {lr(50):.0e} {lr(100):.0e}"
'1e-07 1e-03 1e+01'
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import write_text_atomic
from ..optim.schedules import Schedule

__all__ = [
    "ExponentialRange",
    "RangeTest",
    "range_test",
    "should_stop",
    "smooth",
    "smoothing_beta",
    "suggest",
]

EXAMPLES = """examples:
  nabla lab lr-range                                # the default MLP on digits, Adam
  nabla lab lr-range --optimizer sgd --momentum 0.9 --out /tmp/lr-sgd
  nabla lab lr-range my.toml --min-lr 1e-6 --max-lr 1 --steps 200
  nabla train --lr <suggested lr>                   # then train with the suggestion

The config's lr, schedule and epochs are ignored: the lr grows from --min-lr to --max-lr.
Rule: suggested lr = (lr at the minimum of the smoothed loss) / 10.
"""
BETA_MAX = 0.98  # fast.ai's smoothing: never average over more than ~50 steps
LAG_DECADES = 0.1  # the smoothed loss trails the batch loss by this much lr (decades)
DIVERGENCE = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum
RULE = "suggested lr = lr at the minimum of the smoothed loss / 10"


class ExponentialRange(Schedule):
    """``lr(t) = min_lr * (max_lr / min_lr) ** (t / (steps - 1))``: from ``min_lr`` at step 0 to
    ``max_lr`` at step ``steps - 1``, the same ratio between consecutive steps (and beyond, the
    same growth: the test never runs past ``steps - 1``)."""

    _fields = ("min_lr", "max_lr", "steps")

    def __init__(self, min_lr: float, max_lr: float, steps: int):
        if not (math.isfinite(min_lr) and min_lr > 0):
            raise ValueError(f"ExponentialRange: min_lr must be > 0, got {min_lr}")
        if not (math.isfinite(max_lr) and max_lr > min_lr):
            raise ValueError(
                f"ExponentialRange: max_lr must exceed min_lr ({min_lr}), got {max_lr}"
            )
        if isinstance(steps, bool) or int(steps) != steps or steps < 2:
            raise ValueError(f"ExponentialRange: steps must be an integer >= 2, got {steps!r}")
        self.min_lr, self.max_lr, self.steps = float(min_lr), float(max_lr), int(steps)

    def _lr(self, step: float) -> float:
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))


def smoothing_beta(min_lr: float, max_lr: float, steps: int, lag: float = LAG_DECADES) -> float:
    """The β whose moving average trails the batch loss by ``lag`` decades of lr on the grid
    ``ExponentialRange(min_lr, max_lr, steps)``: β / (1 - β) = lag * steps per decade (see the
    module docstring), at most ``BETA_MAX``.

    >>> round(smoothing_beta(1e-7, 10.0, 100), 3), round(smoothing_beta(1e-7, 10.0, 400), 3)
    (0.553, 0.833)
    """
    delay = lag * (steps - 1) / math.log10(max_lr / min_lr)  # in steps
    return min(delay / (1.0 + delay), BETA_MAX)


def smooth(losses, beta: float) -> np.ndarray:
    """The bias-corrected exponential moving average s_t of ``losses`` (see the module docstring);
    a NaN loss makes every later value NaN, which is what the stop rule wants."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"smooth: beta must be in [0, 1), got {beta}")
    out, m = np.empty(len(losses)), 0.0
    for t, loss in enumerate(losses):
        m = beta * m + (1.0 - beta) * float(loss)
        out[t] = m / (1.0 - beta ** (t + 1))
    return out


def should_stop(smoothed, factor: float = DIVERGENCE) -> bool:
    """Whether the test stops after the last value of ``smoothed``: it is NaN or infinite, or
    above ``factor`` times the smallest value so far."""
    last = float(smoothed[-1])
    return not math.isfinite(last) or last > factor * float(np.min(smoothed))


@dataclass
class Suggestion:
    lr: float  # the suggestion: min_loss_lr / 10
    min_loss_lr: float  # the lr at the minimum of the smoothed loss
    steepest_lr: float  # the lr of steepest descent of the smoothed loss up to its minimum


def suggest(lrs, smoothed) -> Suggestion:
    """Apply the rule to a recorded curve: ``lrs`` increasing, ``smoothed`` its smoothed loss.

    Values after the first NaN or infinite one are ignored; the steepest descent is the most
    negative slope ds/d(log lr) (``np.gradient``: central differences) up to the minimum.

    >>> lrs = np.logspace(-5, 0, 51)
    >>> s = (np.log10(lrs) + 2) ** 2                     # minimum at lr = 1e-2
    >>> f"{suggest(lrs, s).lr:.0e}"
    '1e-03'
    """
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if lrs.shape != smoothed.shape or lrs.ndim != 1 or lrs.size < 3:
        raise ValueError(f"suggest: need >= 3 (lr, loss) pairs, got {lrs.shape}, {smoothed.shape}")
    bad = np.flatnonzero(~np.isfinite(smoothed))
    end = int(bad[0]) if bad.size else lrs.size
    if end < 3:
        raise ValueError("suggest: the loss was NaN or infinite from the start; lower --min-lr")
    lrs, smoothed = lrs[:end], smoothed[:end]
    best = int(np.argmin(smoothed))
    slope = np.gradient(smoothed, np.log(lrs))
    steepest = int(np.argmin(slope[: best + 1]))
    return Suggestion(float(lrs[best] / 10), float(lrs[best]), float(lrs[steepest]))


@dataclass
class RangeTest:
    lrs: np.ndarray  # the lr of each update made
    losses: np.ndarray  # the batch loss before it
    smoothed: np.ndarray  # bias-corrected moving average of the losses
    suggestion: Suggestion
    stopped_early: bool  # the stop rule fired: training diverged within the range
    beta: float  # the smoothing


def range_test(
    cfg: dict,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    beta: float | None = None,
    factor: float = DIVERGENCE,
) -> RangeTest:
    """Run the test on the model, data and optimizer of the resolved training config ``cfg``;
    ``beta`` None: :func:`smoothing_beta` of the lr grid."""
    import nabla

    from ..train import build

    schedule = ExponentialRange(min_lr, max_lr, steps)
    if beta is None:
        beta = smoothing_beta(min_lr, max_lr, steps)
    nabla.manual_seed(cfg["seed"])
    data = build.load_data(cfg)
    loader, _, _ = build.build_loaders(cfg, data)
    model = build.build_model(cfg, data)
    # the config's optimizer with its settings; only its lr is replaced by the range
    fixed = {**cfg, "schedule": "constant", "warmup_epochs": 0.0}
    optimizer = build.build_optimizer(fixed, model, len(loader))
    for group in optimizer.param_groups:
        group["lr"] = schedule
    loss_fn = nabla.nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
    model.train()
    lrs, losses, smoothed, m, stopped = [], [], [], 0.0, False
    while not stopped and len(losses) < steps:
        for x, y in loader:  # as many epochs as the steps need
            loss = loss_fn(model(x), y)
            t, value = len(losses), float(loss.data)
            m = beta * m + (1.0 - beta) * value
            lrs.append(schedule(t))
            losses.append(value)
            smoothed.append(m / (1.0 - beta ** (t + 1)))
            stopped = should_stop(smoothed, factor)
            if stopped or len(losses) == steps:
                break
            optimizer.zero_grad()
            loss.backward()
            if cfg["clip_grad_norm"]:
                optimizer.clip_grad_norm_(cfg["clip_grad_norm"])
            optimizer.step()  # update t with lr_t
    lrs, losses, smoothed = np.array(lrs), np.array(losses), np.array(smoothed)
    if len(lrs) < 3:
        raise ValueError(
            f"the loss diverged after {len(lrs)} steps, at lr {lrs[-1]:.3g}: lower --min-lr"
        )
    return RangeTest(lrs, losses, smoothed, suggest(lrs, smoothed), bool(stopped), beta)


def lag_decades(result: RangeTest) -> float:
    """How far the smoothed curve trails the batch loss: β / (1 - β) steps, in decades of lr."""
    if len(result.lrs) < 2:
        return 0.0
    return result.beta / (1.0 - result.beta) * math.log10(result.lrs[1] / result.lrs[0])


def plot(result: RangeTest, title: str):
    """Loss against lr (log axis): raw and smoothed, the minimum, steepest descent, suggestion."""
    from .report import new_figure

    figure = new_figure((7.5, 4.5))
    ax = figure.add_subplot()
    lrs, s, sug = result.lrs, result.smoothed, result.suggestion
    ax.plot(lrs, result.losses, color="0.6", lw=1, label="batch loss (raw)")
    ax.plot(
        lrs,
        s,
        color="C0",
        lw=2,
        label=f"smoothed (EMA β = {result.beta:.2f}, bias-corrected; "
        f"trails by {lag_decades(result):.2g} decade)",
    )
    # the plateau at the start and the bottom of both curves; the explosion runs off the top
    seen = np.concatenate([result.losses, s])
    low, start = float(np.nanmin(seen[np.isfinite(seen)])), float(s[0])
    ax.set_ylim(max(0.0, low - 0.05 * (start - low)), start + 0.25 * (start - low) + 1e-12)
    best = int(np.nanargmin(s))
    ax.plot(lrs[best], s[best], "o", color="C3", label=f"minimum at lr {sug.min_loss_lr:.2g}")
    steep = int(np.argmin(np.abs(lrs - sug.steepest_lr)))
    ax.plot(
        lrs[steep],
        s[steep],
        "v",
        color="C2",
        ms=8,
        label=f"steepest descent at lr {sug.steepest_lr:.2g}",
    )
    ax.axvline(sug.lr, color="C1", ls="--", lw=1.5, label=f"suggested lr {sug.lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale; grows exponentially with the step)")
    ax.set_ylabel("training loss")
    end = (
        f"stopped after {len(lrs)} steps: smoothed loss > {DIVERGENCE:g}x its minimum"
        if result.stopped_early
        else f"all {len(lrs)} steps ran without divergence"
    )
    ax.set_title(f"{title}\n{RULE}\n{end}", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, which="major", alpha=0.3)
    return figure


def write_csv(result: RangeTest, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    for t, (lr, loss, s) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        writer.writerow([t, f"{lr:.6g}", f"{loss:.6g}", f"{s:.6g}"])
    write_text_atomic(path, buffer.getvalue())


def add_arguments(parser) -> None:
    from ..train import config

    parser.add_argument("config", nargs="?", help="a TOML file of training settings")
    parser.add_argument("--min-lr", type=float, default=1e-7, help="the first lr (default 1e-7)")
    parser.add_argument("--max-lr", type=float, default=10.0, help="the last lr (default 10)")
    parser.add_argument(
        "--steps",
        type=int,
        default=100,
        help="updates from --min-lr to --max-lr, at most (default 100)",
    )
    parser.add_argument("--out", default="lr-range", help="the output folder (default lr-range/)")
    parser.add_argument("--quiet", action="store_true", help="print only the suggestion")
    config.add_flags(parser)


def main(args) -> int:
    from ..train import config
    from .report import LabReport

    cfg = config.resolve(
        config.read_toml(args.config) if args.config else {}, config.overrides(args)
    )
    try:
        ExponentialRange(args.min_lr, args.max_lr, args.steps)
    except ValueError as err:  # shown as "nabla lab: error: ..." with exit status 2
        raise config.ConfigError(str(err).replace("ExponentialRange: ", "--")) from None
    if args.steps < 3:
        raise config.ConfigError(f"--steps must be at least 3, got {args.steps}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    beta = cfg[cfg["optimizer"]].get("momentum", 0.0)
    momentum = f" momentum {beta:g}" if beta else ""
    title = (
        f"{_model(cfg)} on {cfg['dataset']}, {cfg['optimizer']}{momentum}, "
        f"batch {cfg['batch_size']}"
    )
    if not args.quiet:
        print(
            f"lr range test: {title}; lr {args.min_lr:g} -> {args.max_lr:g} in {args.steps} steps"
        )
    try:
        result = range_test(cfg, args.min_lr, args.max_lr, args.steps)
    except ValueError as err:
        raise config.ConfigError(str(err)) from None
    sug = result.suggestion
    write_csv(result, out / "lr_range.csv")
    page = LabReport(out, "LR range test", subtitle=title)
    page.text(
        f"The lr grew exponentially from {args.min_lr:g} to {args.max_lr:g} over at most "
        f"{args.steps} updates ({len(result.lrs)} made); the loss of each batch was smoothed with "
        f"a bias-corrected moving average (β = {result.beta:.3g}, trailing the batch loss by "
        f"{lag_decades(result):.2g} decade of lr). The test stops when the smoothed loss "
        f"exceeds {DIVERGENCE:g} times its minimum or is not finite.",
        f"Rule: {RULE}. The lr of steepest descent ({sug.steepest_lr:.3g}) is a second opinion.",
    )
    page.figure(
        plot(result, f"LR range test: {title}"),
        "lr_range",
        "loss against lr; the dashed line is the suggestion",
    )
    page.table(
        ["quantity", "lr"],
        [
            ["suggested (minimum / 10)", sug.lr],
            ["minimum of the smoothed loss", sug.min_loss_lr],
            ["steepest descent", sug.steepest_lr],
        ],
    )
    if not result.stopped_early:
        page.text(
            "The loss never rose clearly above its minimum: raise --max-lr to see where "
            "training breaks; the suggestion may be too small."
        )
    page.write()
    if not args.quiet:
        print(
            f"minimum of the smoothed loss at lr {sug.min_loss_lr:.3g}; steepest descent at "
            f"lr {sug.steepest_lr:.3g}; {len(result.lrs)} steps"
            + (" (stopped: diverged)" if result.stopped_early else "")
        )
        if not result.stopped_early:
            print("warning: the loss did not diverge; raise --max-lr")
        print(f"report: {out / 'report.html'}")
    print(f"suggested lr: {sug.lr:.3g}  ({RULE})")
    return 0


def _model(cfg: dict) -> str:
    if cfg["model"] == "mlp":
        return "mlp hidden " + "-".join(map(str, cfg["hidden"]))
    return cfg["model"] if cfg["model"] != "resnet" else f"resnet-{cfg['depth']}"
