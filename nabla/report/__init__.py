"""The report of a training run: figures under ``plots/`` and a self-contained ``report.html``.

Not imported by ``import nabla`` (it needs matplotlib): ``import nabla.report``.
"""

from __future__ import annotations

from pathlib import Path

from .html import write_report
from .plots import make_plots, read_metrics
from .sweep import plot_sweep

__all__ = ["build", "make_plots", "plot_sweep", "read_metrics", "write_report"]


def build(run_dir) -> Path:
    """Draw the run's figures, then write its HTML report; returns the report's path."""
    make_plots(run_dir)
    return write_report(run_dir)
