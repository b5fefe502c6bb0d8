"""Draw every learning-rate schedule of ``nabla.optim.schedules`` for ``docs/schedules.md``.

Run from the repository root: ``python docs/scripts/plot_schedules.py``. It writes one PNG per
schedule to ``docs/images/schedules/``. matplotlib (the ``dev`` extra) is imported only here, in
``main``, so that importing this file (pytest collects docs/ for doctests) needs nothing extra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nabla.optim.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    LinearWarmup,
    OneCycle,
    PiecewiseConstant,
    PolynomialDecay,
    Sequence,
    per_epoch,
)

OUT = Path(__file__).resolve().parents[1] / "images" / "schedules"
DASHED = {"linestyle": "--"}
UNDER = {"color": "0.6", "linestyle": "--", "linewidth": 1.2}  # a reference curve drawn beneath


def figures():
    """(file name, title, number of steps, [(label, schedule[, line style])]) per figure."""
    return [
        (
            "exponential_decay",
            "ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)",
            500,
            [
                ("staircase=False", ExponentialDecay(0.1, 100, 0.5)),
                ("staircase=True", ExponentialDecay(0.1, 100, 0.5, staircase=True)),
            ],
        ),
        (
            "polynomial_decay",
            "PolynomialDecay(0.1, decay_steps=200, end=0.01, ...)",
            600,
            [
                ("power=1", PolynomialDecay(0.1, 200, end=0.01)),
                ("power=2", PolynomialDecay(0.1, 200, end=0.01, power=2.0)),
                ("power=0.5", PolynomialDecay(0.1, 200, end=0.01, power=0.5)),
                (
                    "power=1, cycle=True",
                    PolynomialDecay(0.1, 200, end=0.01, cycle=True),
                    DASHED,
                ),
            ],
        ),
        (
            "inverse_time_decay",
            "InverseTimeDecay(0.1, decay_steps=50, decay_rate=0.5)",
            500,
            [
                ("staircase=False", InverseTimeDecay(0.1, 50, 0.5)),
                ("staircase=True", InverseTimeDecay(0.1, 50, 0.5, staircase=True)),
            ],
        ),
        (
            "inverse_sqrt_decay",
            "InverseSqrtDecay(0.1, warmup_steps=...)",
            1000,
            [
                ("warmup_steps=100", InverseSqrtDecay(0.1, 100)),
                ("warmup_steps=25", InverseSqrtDecay(0.1, 25)),
                ("warmup_steps=1 (no warmup)", InverseSqrtDecay(0.1, 1)),
            ],
        ),
        (
            "cosine_decay",
            "CosineDecay(initial, decay_steps=400, ...)",
            600,
            [
                ("CosineDecay(0.1, 400)", CosineDecay(0.1, 400)),
                ("alpha=0.2", CosineDecay(0.1, 400, alpha=0.2)),
                (
                    "initial=0, warmup_target=0.1, warmup_steps=100",
                    CosineDecay(0.0, 400, warmup_target=0.1, warmup_steps=100),
                ),
            ],
        ),
        (
            "cosine_decay_restarts",
            "CosineDecayRestarts(0.1, first_decay_steps, t_mul, m_mul, alpha)",
            800,
            [
                ("first_decay_steps=50 (t_mul=2)", CosineDecayRestarts(0.1, 50)),
                ("first_decay_steps=200, t_mul=1", CosineDecayRestarts(0.1, 200, t_mul=1.0)),
                (
                    "first_decay_steps=50, m_mul=0.7, alpha=0.1",
                    CosineDecayRestarts(0.1, 50, 2.0, 0.7, 0.1),
                ),
            ],
        ),
        (
            "piecewise_constant",
            "PiecewiseConstant([150, 300, 400], [0.1, 0.05, 0.01, 0.001])",
            500,
            [("", PiecewiseConstant([150, 300, 400], [0.1, 0.05, 0.01, 0.001]))],
        ),
        (
            "linear_warmup",
            "LinearWarmup(CosineDecay(0.1, 500), warmup_steps=100)",
            600,
            [
                ("the wrapped CosineDecay(0.1, 500)", CosineDecay(0.1, 500), UNDER),
                ("LinearWarmup(...)", LinearWarmup(CosineDecay(0.1, 500), 100)),
            ],
        ),
        (
            "one_cycle",
            "OneCycle(0.1, total_steps=500)",
            500,
            [
                ('anneal="cos"', OneCycle(0.1, 500)),
                ('anneal="linear"', OneCycle(0.1, 500, anneal="linear")),
            ],
        ),
        (
            "sequence",
            "Sequence([LinearWarmup(0.1, 50), CosineDecay(0.1, 250), 0.005], [50, 300])",
            500,
            [("", Sequence([LinearWarmup(0.1, 50), CosineDecay(0.1, 250), 0.005], [50, 300]))],
        ),
        (
            "per_epoch",
            "per_epoch(CosineDecay(0.1, decay_steps=10), steps_per_epoch=50)",
            600,
            [
                ("CosineDecay(0.1, decay_steps=500), per step", CosineDecay(0.1, 500), UNDER),
                ("per_epoch(...)", per_epoch(CosineDecay(0.1, 10), 50)),
            ],
        ),
    ]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    for name, title, steps, curves in figures():
        fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
        step = np.arange(steps + 1)
        for label, schedule, *style in curves:
            style = {"linewidth": 1.8, **(style[0] if style else {})}
            ax.plot(step, [schedule(s) for s in step], label=label or None, **style)
        ax.set_title(title, fontsize=10, family="monospace")
        ax.set_xlabel("step (optimizer updates made)")
        ax.set_ylabel("learning rate")
        ax.set_xlim(0, steps)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if any(curve[0] for curve in curves):
            # outside the axes, so it never hides a curve
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        fig.savefig(OUT / f"{name}.png")
        plt.close(fig)
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    main()
