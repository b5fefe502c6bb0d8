"""Hyperparameter sweeps, the way the course teaches: choose on dev, report test once.

``run_sweep(base, grid, seeds=3, workers=2)`` trains every configuration of the grid (or
``random_count`` random ones) once per seed, each a normal run folder under
``<out>/<configuration>/seed-<s>`` (``lr-0.01_optimizer-adam/seed-0``: see :func:`folder_name`),
in parallel worker processes. Runs never look at the test split.
Then, per configuration, the mean and unbiased standard deviation over seeds of the dev metrics;
the configuration with the best mean dev accuracy (ties: lower dev loss) is chosen, and only its
runs are evaluated on test. Written to ``<out>``: ``summary.md``, ``summary.json`` and
``curves.png`` (dev learning curves of every configuration, mean over seeds with a min-max band).

Executors (where the runs go; the results are the same, the runs being deterministic):

- ``"process"`` (default): ``workers`` processes on this machine (a ``ProcessPoolExecutor``),
  each with an equal share of the cores for BLAS; ``workers=1`` trains in this process.
- ``"mpi"``: an ``mpi4py.futures.MPIPoolExecutor``, for sweeps wider than one machine. Started as
  ``mpirun -np N python -m mpi4py.futures -m nabla sweep ... --executor mpi``, rank 0 runs the
  sweep and the other N - 1 ranks are the workers (the launcher sets the pool's size: ``workers``
  must then be None or N - 1). Started as one process (``nabla sweep ... --executor mpi``), it
  spawns ``workers`` MPI processes (``MPI_Comm_spawn``; None: mpi4py's default,
  ``$MPI4PY_FUTURES_MAX_WORKERS`` or the MPI universe size - 1, else 1). Every worker trains
  one run at a time with one BLAS thread (the variables are set in the worker before it imports
  NumPy), in this process's working directory, and with ``distributed=False``: a process started
  by ``mpirun`` is a sweep worker here, not a rank of a data-parallel run.

Grid values: ``key=v1,v2,...``; for list settings ``+`` joins the items of one value
(``hidden=64,256+128`` is [64] or [256, 128]; ``augment=none,translate+rotate``). With
``--random N``, a numeric ``key=low..high`` is drawn log-uniformly (uniformly if ``low`` is 0),
integers rounded; plain value lists are drawn from uniformly.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from concurrent import futures
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import distributed as dist
from .files import write_text_atomic
from .train import config

EXECUTORS = ("process", "mpi")
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


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
        return round(value) if config.setting(self.key).type is int else float(f"{value:.4g}")


def parse_grid(text: str) -> tuple[str, list | Range]:
    """``"lr=0.1,0.01"`` -> ("lr", [0.1, 0.01]); ``"lr=1e-4..1e-1"`` -> ("lr", Range)."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not values.strip():
        raise config.ConfigError(f"--grid expects KEY=V1,V2,... , got {text!r}")
    setting = config.setting(key)  # an unknown key: the error with suggestions
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


def _value_text(value) -> str:
    text = "+".join(map(str, value)) if isinstance(value, list) else str(value)
    return text or "none"


def label(settings: dict) -> str:
    """How the summary names a configuration: ``"optimizer=adam,lr=0.01"``."""
    if not settings:
        return "base"
    return ",".join(f"{k}={_value_text(v)}" for k, v in settings.items())


def folder_name(settings: dict) -> str:
    """The folder of a configuration's runs: ``"optimizer-adam_lr-0.01"``, no ``=`` or ``,``
    (shells, URLs and file managers treat those specially); any other character that is not a
    letter, digit or one of ``.+-`` becomes ``-``.

    >>> folder_name({"hidden": [256, 128], "lr": 0.1, "augment": []})
    'hidden-256+128_lr-0.1_augment-none'
    """
    if not settings:
        return "base"
    return "_".join(
        f"{k}-{re.sub(r'[^A-Za-z0-9.+-]', '-', _value_text(v))}" for k, v in settings.items()
    )


def _train_one(job: tuple[dict, str]) -> dict:
    from .report import build as build_report
    from .train import run

    cfg, directory = job
    # distributed=False: under mpirun, Trainer would otherwise take this worker for a rank of a
    # data-parallel job
    results = run.train(cfg, directory, verbose=0, test=False, distributed=False)
    build_report(directory)
    return {
        "directory": directory,
        "dev": results["evaluations"]["dev"],
        "wall_time": results["wall_time"],
    }


def _test_one(directory: str) -> dict:
    from .train import run

    return run.evaluate(directory, "test")


def run_sweep(
    base: dict,
    grid: list,
    random_count: int | None = None,
    seeds: int = 1,
    workers: int | None = None,
    out=None,
    verbose: bool = True,
    executor: str = "process",
) -> dict:
    """Train every configuration for ``seeds`` seeds, choose on dev, test the choice; returns the
    summary written to ``<out>/summary.json``. ``executor``: "process" (``workers`` local
    processes, default 1) or "mpi" (see the module docstring for what ``workers`` means there)."""
    if executor not in EXECUTORS:
        raise config.ConfigError(
            f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}"
        )
    if seeds < 1 or (workers is not None and workers < 1):
        raise config.ConfigError(f"--seeds and --workers must be >= 1, got {seeds} and {workers}")
    if dist.under_mpirun() and not _under_mpi4py_futures():
        raise config.ConfigError(
            f"started by an MPI launcher as one of {dist.launched_size()} processes: each would "
            "run the whole sweep. Start it as `mpirun -np N python -m mpi4py.futures -m nabla "
            "sweep ... --executor mpi` (rank 0 runs the sweep, the other ranks are its workers)"
        )
    out = Path(out or f"sweeps/{time.strftime('%Y%m%d-%H%M%S')}")
    settings = configurations(grid, random_count)
    jobs, groups = [], {}
    for s in settings:
        cfg0 = config.resolve(base, s)  # every configuration is checked before anything runs
        name = label(s)
        groups[name] = {"settings": s, "runs": []}
        for seed in range(cfg0["seed"], cfg0["seed"] + seeds):
            directory = str(out / folder_name(s) / f"seed-{seed}")
            jobs.append(({**cfg0, "seed": seed}, directory))
            groups[name]["runs"].append(directory)
    out.mkdir(parents=True, exist_ok=True)
    with _executor(executor, workers) as (run_all, described):
        if verbose:
            print(
                f"sweep: {len(settings)} configurations x {seeds} seeds = {len(jobs)} runs, "
                f"{described} -> {out}",
                flush=True,
            )
        results = run_all(_train_one, jobs, verbose)
        by_dir = {r["directory"]: r for r in results}
        rows = []
        for name, g in groups.items():
            devs = [by_dir[d]["dev"] for d in g["runs"]]
            rows.append(
                {
                    "label": name,
                    "settings": g["settings"],
                    "runs": g["runs"],
                    "dev_accuracy": _mean_std([d["accuracy"] for d in devs]),
                    "dev_loss": _mean_std([d["loss"] for d in devs]),
                }
            )
        chosen = max(rows, key=lambda r: (r["dev_accuracy"][0], -r["dev_loss"][0]))
        tests = run_all(_test_one, chosen["runs"], False)
    chosen["test_accuracy"] = _mean_std([t["accuracy"] for t in tests])
    chosen["test_loss"] = _mean_std([t["loss"] for t in tests])
    summary = {"base": base, "seeds": seeds, "configurations": rows, "chosen": chosen["label"]}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    table = summary_table(rows, chosen)
    write_text_atomic(out / "summary.md", table)
    from .report import plot_sweep

    plot_sweep({r["label"]: [Path(d) for d in r["runs"]] for r in rows}, out / "curves.png")
    if verbose:
        print(table, flush=True)
        print(f"plot: {out / 'curves.png'}", flush=True)
    return summary


@contextlib.contextmanager
def _executor(kind: str, workers: int | None):
    """Yields ``(run_all, description)``: ``run_all(fn, items, verbose)`` is the list of
    ``fn(item)`` in the order of ``items``, computed by the chosen executor."""
    if kind == "process":
        workers = workers or 1

        def run_all(fn, items, verbose):
            return _map(fn, items, min(workers, len(items)), verbose)

        yield run_all, f"{workers} worker(s)"
        return
    with _mpi_pool(workers) as (pool, described):

        def run_all(fn, items, verbose):
            return [_announce(r, i, len(items), verbose) for i, r in enumerate(pool.map(fn, items))]

        yield run_all, described


@contextlib.contextmanager
def _mpi_pool(workers: int | None):
    """An ``MPIPoolExecutor`` and a description of its workers (see the module docstring)."""
    try:
        from mpi4py import MPI
        from mpi4py.futures import MPIPoolExecutor
    except ImportError as err:  # no mpi4py, or mpi4py without a working MPI library
        raise dist.DistributedError(
            "--executor mpi needs mpi4py and an MPI library: `apt-get install openmpi-bin "
            "libopenmpi-dev` (or your cluster's MPI module), then `pip install "
            f"'nabla[distributed]'`; or use --executor process ({type(err).__name__}: {err})"
        ) from err
    options = {
        # applied in every worker before it imports anything of ours, so before NumPy loads BLAS
        "env": dict.fromkeys(_THREAD_VARIABLES, "1"),
        "wdir": os.getcwd(),  # the run folders are relative to it
        "path": [str(Path(__file__).resolve().parents[2])],  # this nabla, also from a checkout
        "main": False,  # the tasks live in this module: no need to re-run the command's __main__
    }
    if _under_mpi4py_futures():
        size = MPI.COMM_WORLD.Get_size()
        if workers is not None and workers != max(size - 1, 1):
            raise config.ConfigError(
                f"--workers {workers}: under `mpirun -np {size} python -m mpi4py.futures` the "
                f"pool is the other {size - 1} rank(s); drop --workers or set it to {size - 1}"
            )
        described = (
            f"MPI: {size - 1} worker rank(s)"
            if size > 1
            else "MPI: 1 worker thread in this process (the launcher started no other rank)"
        )
        with MPIPoolExecutor(**options) as pool:
            yield pool, described
        return
    with MPIPoolExecutor(max_workers=workers, **options) as pool:
        yield pool, f"MPI: {_spawn(pool)} spawned worker process(es)"


def _spawn(pool) -> int:
    """Start the pool's spawned workers and return how many there are.

    mpi4py spawns them in a thread of its own: when ``MPI_Comm_spawn`` fails (most often: not
    enough free slots), the exception ends that thread and every task would wait forever. So a
    first task is watched, and an exception escaping a thread meanwhile is raised here."""
    failures = []
    previous, threading.excepthook = threading.excepthook, failures.append
    try:
        first = pool.submit(os.getpid)
        while True:
            try:
                first.result(timeout=0.1)
                return pool.num_workers
            except futures.TimeoutError:
                if failures:
                    raise dist.DistributedError(
                        f"--executor mpi could not spawn its workers ({failures[0].exc_value}). "
                        "Started as one process, the workers need free MPI slots: on one machine "
                        "there are (cores - 1); allow more with "
                        "OMPI_MCA_rmaps_base_oversubscribe=1 "
                        "(Open MPI), or start the sweep under `mpirun -np N python -m "
                        "mpi4py.futures -m nabla sweep ...`"
                    ) from failures[0].exc_value
    finally:
        threading.excepthook = previous


def _under_mpi4py_futures() -> bool:
    """True in the process that ``python -m mpi4py.futures`` runs the command in: its pool is
    then the launcher's other ranks. mpi4py records this only in a private module attribute
    (``_core`` in mpi4py 4, ``_lib`` in 3)."""
    for name in ("mpi4py.futures._core", "mpi4py.futures._lib"):
        if getattr(sys.modules.get(name), "SharedPool", None) is not None:
            return True
    return False


def _map(fn, items: list, workers: int, verbose: bool) -> list:
    if workers == 1 or len(items) == 1:
        return [_announce(fn(item), i, len(items), verbose) for i, item in enumerate(items)]
    # Each worker gets an equal share of the cores for BLAS (set before the child imports NumPy).
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    saved = {v: os.environ.get(v) for v in _THREAD_VARIABLES}
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
        print(
            f"  [{i + 1}/{n}] {result['directory']}: dev accuracy {result['dev']['accuracy']:.4f} "
            f"({result['wall_time']:.1f}s)",
            flush=True,
        )
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
            f"| {r['label']}{mark} | {_pm(r['dev_accuracy'])} | {_pm(r['dev_loss'])} "
            f"| {len(r['runs'])} |"
        )
    lines += [
        "",
        f"Chosen on dev: **{chosen['label']}**. Test (evaluated once, only for the chosen "
        f"configuration, over {len(chosen['runs'])} seed(s)): accuracy "
        f"{_pm(chosen['test_accuracy'])}, "
        f"loss {_pm(chosen['test_loss'])}.",
        "",
    ]
    return "\n".join(lines)
