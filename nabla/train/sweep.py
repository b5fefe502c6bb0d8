"""Hyperparameter sweeps, the way the course teaches: choose on dev, report test once.

``run_sweep(base, grid, seeds=3, workers=2)`` trains every configuration of the grid (or
``random_count`` random ones) once per seed, each a normal run folder under
``<out>/<label>/seed-<s>``, in parallel worker processes. Runs never look at the test split.
Then, per configuration, the mean and unbiased standard deviation over seeds of the dev metrics;
the configuration with the best mean dev accuracy (ties: lower dev loss) is chosen, and only its
runs are evaluated on test. Written to ``<out>``: ``summary.md``, ``summary.json`` and
``curves.png`` (dev learning curves of every configuration, mean over seeds with a min-max band).

Grid values: ``key=v1,v2,...``; for list settings ``+`` joins the items of one value
(``hidden=64,256+128`` is [64] or [256, 128]; ``augment=none,translate+rotate``). With
``--random N``, a numeric ``key=low..high`` is drawn log-uniformly (uniformly if ``low`` is 0),
integers rounded; plain value lists are drawn from uniformly.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import config


class Range:
    """A numeric interval to draw from in a random search."""

    def __init__(self, key: str, low: float, high: float):
        if not low < high:
            raise config.ConfigError(f"--grid {key}: a range needs low < high, got {low}..{high}")
        self.key, self.low, self.high = key, low, high

    def draw(self, rng: np.random.Generator):
        if self.low > 0:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return round(value) if config.SCHEMA[self.key].type is int else float(f"{value:.4g}")


def parse_grid(text: str) -> tuple[str, list | Range]:
    """``"lr=0.1,0.01"`` -> ("lr", [0.1, 0.01]); ``"lr=1e-4..1e-1"`` -> ("lr", Range)."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not values.strip():
        raise config.ConfigError(f"--grid expects KEY=V1,V2,... , got {text!r}")
    if key not in config.SCHEMA:
        config.check(key, None)  # raises the unknown-setting error with suggestions
    setting = config.SCHEMA[key]
    if ".." in values:
        if setting.type not in (int, float):
            raise config.ConfigError(f"--grid {key}: ranges (low..high) need a numeric setting")
        low, high = (float(config.parse_value(key, v)) for v in values.split(".."))
        return key, Range(key, low, high)
    items = [v.strip() for v in values.split(",")]
    if setting.type is list:
        parsed = [
            [] if v in ("", "none") else config.parse_value(key, v.replace("+", ",")) for v in items
        ]
    else:
        parsed = [config.parse_value(key, v) for v in items]
    return key, [config.check(key, v) for v in parsed]


def configurations(grid: list, random_count: int | None, seed: int = 0) -> list[dict]:
    """The settings of every configuration: the grid's product, or ``random_count`` draws."""
    keys = [k for k, _ in grid]
    if len(set(keys)) != len(keys):
        raise config.ConfigError(f"--grid names a setting twice: {keys}")
    if random_count is None:
        if any(isinstance(v, Range) for _, v in grid):
            raise config.ConfigError("ranges (low..high) need --random N")
        return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in grid))]
    if random_count < 1:
        raise config.ConfigError(f"--random must be >= 1, got {random_count}")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(random_count):
        draws.append(
            {k: v.draw(rng) if isinstance(v, Range) else v[rng.integers(len(v))] for k, v in grid}
        )
    return draws


def label(settings: dict) -> str:
    if not settings:
        return "base"
    parts = []
    for k, v in settings.items():
        text = "+".join(map(str, v)) if isinstance(v, list) else str(v)
        parts.append(f"{k}={text or 'none'}")
    return ",".join(parts)


def _train_one(job: tuple[dict, str]) -> dict:
    from . import run

    cfg, directory = job
    results = run.train(cfg, directory, verbose=0, report=True, test=False)
    return {
        "directory": directory,
        "dev": results["evaluations"]["dev"],
        "wall_time": results["wall_time"],
    }


def _test_one(directory: str) -> dict:
    from . import run

    return run.evaluate(directory, "test")


def run_sweep(base: dict, grid: list, random_count: int | None = None, seeds: int = 1, workers: int = 1,
              out=None, verbose: bool = True) -> dict:  # fmt: skip
    if seeds < 1 or workers < 1:
        raise config.ConfigError(f"--seeds and --workers must be >= 1, got {seeds} and {workers}")
    out = Path(out or f"sweeps/{time.strftime('%Y%m%d-%H%M%S')}")
    settings = configurations(grid, random_count)
    jobs, groups = [], {}
    for s in settings:
        cfg0 = config.resolve(base, s)  # every configuration is checked before anything runs
        name = label(s)
        groups[name] = {"settings": s, "runs": []}
        for seed in range(cfg0["seed"], cfg0["seed"] + seeds):
            directory = str(out / name.replace("/", "_") / f"seed-{seed}")
            jobs.append(({**cfg0, "seed": seed}, directory))
            groups[name]["runs"].append(directory)
    out.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"sweep: {len(settings)} configurations x {seeds} seeds = {len(jobs)} runs, "
              f"{workers} worker(s) -> {out}", flush=True)  # fmt: skip
    results = _map(_train_one, jobs, workers, verbose)
    by_dir = {r["directory"]: r for r in results}
    rows = []
    for name, g in groups.items():
        devs = [by_dir[d]["dev"] for d in g["runs"]]
        rows.append({"label": name, "settings": g["settings"], "runs": g["runs"],
                     "dev_accuracy": _mean_std([d["accuracy"] for d in devs]),
                     "dev_loss": _mean_std([d["loss"] for d in devs])})  # fmt: skip
    chosen = max(rows, key=lambda r: (r["dev_accuracy"][0], -r["dev_loss"][0]))
    tests = _map(_test_one, chosen["runs"], min(workers, len(chosen["runs"])), False)
    chosen["test_accuracy"] = _mean_std([t["accuracy"] for t in tests])
    chosen["test_loss"] = _mean_std([t["loss"] for t in tests])
    summary = {"base": base, "seeds": seeds, "configurations": rows, "chosen": chosen["label"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    table = summary_table(rows, chosen)
    (out / "summary.md").write_text(table, encoding="utf-8")
    from ..report import plot_sweep

    plot_sweep({r["label"]: [Path(d) for d in r["runs"]] for r in rows}, out / "curves.png")
    if verbose:
        print(table, flush=True)
        print(f"plot: {out / 'curves.png'}", flush=True)
    return summary


def _map(fn, items: list, workers: int, verbose: bool) -> list:
    if workers == 1 or len(items) == 1:
        return [_announce(fn(item), i, len(items), verbose) for i, item in enumerate(items)]
    # Each worker gets an equal share of the cores for BLAS (set before the child imports NumPy).
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    saved = {
        v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    os.environ.update(dict.fromkeys(saved, threads))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            return [_announce(r, i, len(items), verbose) for i, r in enumerate(pool.map(fn, items))]
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _announce(result: dict, i: int, n: int, verbose: bool) -> dict:
    if verbose and "directory" in result:
        print(f"  [{i + 1}/{n}] {result['directory']}: dev accuracy {result['dev']['accuracy']:.4f} "
              f"({result['wall_time']:.1f}s)", flush=True)  # fmt: skip
    return result


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and unbiased (n - 1) standard deviation; the deviation is NaN for a single value."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _pm(pair) -> str:
    mean, std = pair
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def summary_table(rows: list[dict], chosen: dict) -> str:
    lines = ["| configuration | dev accuracy | dev loss | runs |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["dev_accuracy"][0]):
        mark = " **(chosen)**" if r is chosen else ""
        lines.append(
            f"| {r['label']}{mark} | {_pm(r['dev_accuracy'])} | {_pm(r['dev_loss'])} | {len(r['runs'])} |"
        )
    lines += ["", f"Chosen on dev: **{chosen['label']}**. Test (evaluated once, only for the chosen "
              f"configuration, over {len(chosen['runs'])} seed(s)): accuracy {_pm(chosen['test_accuracy'])}, "
              f"loss {_pm(chosen['test_loss'])}.", ""]  # fmt: skip
    return "\n".join(lines)
