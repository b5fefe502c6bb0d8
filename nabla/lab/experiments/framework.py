"""What every experiment shares: the :class:`Experiment` base, its registry and the driver.

An experiment states four things and nothing else::

    class Dropout(Experiment):
        name = "dropout"                   # the command-line name, stated once
        title, reference, summary = ...    # the page's title, the paper, the ``--list`` line
        sizes = {"tiny": ..., "full": ...}  # what ``measure`` gets for ``--size``

        def measure(self, size, seed) -> Results: ...   # train, measure, return a dataclass
        def verdict(self, results) -> Outcome: ...      # the claim, our numbers, PASS or FAIL
        def report(self, page, results) -> None: ...    # figures, tables and prose on the page

Defining the subclass registers it (as the schedules do). The driver, :func:`run`, owns the rest:
the output folder, the :class:`~nabla.lab.report.LabReport` page, the wall time, the verdict at the
top of the page, ``outcome.json`` and the printed line. ``measure`` is the only part that costs
time; ``verdict`` and ``report`` only read its results, so they cannot change a number.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import time
from pathlib import Path
from typing import Any, ClassVar

from ...files import write_text_atomic

__all__ = ["SIZES", "Experiment", "Outcome", "get", "names", "run"]

SIZES = ("tiny", "full")
_NOT_EXPERIMENTS = {"framework", "common"}  # the modules beside the experiments


@dataclasses.dataclass
class Outcome:
    """An experiment's verdict: what the paper claims, what we measured, and whether it held."""

    claim: str
    ours: str
    passed: bool

    def line(self) -> str:
        return f"claim: {self.claim} | ours: {self.ours} | {'PASS' if self.passed else 'FAIL'}"


class Experiment:
    """A published claim checked on real runs; subclass it in a module of this package.

    ``sizes["tiny"]`` is the same code at a size that runs in seconds (the tests use it; its verdict
    means nothing); ``sizes["full"]`` is the documented run, minutes on 2 cores. ``self.log``
    prints progress unless the run is quiet.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    sizes: ClassVar[dict[str, Any]] = {}
    registry: ClassVar[dict[str, type[Experiment]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.name:  # an abstract intermediate class
            return
        for field in ("title", "reference", "summary"):
            if not getattr(cls, field):
                raise TypeError(f"experiment {cls.name!r}: {field} is empty")
        if set(cls.sizes) != set(SIZES):
            raise TypeError(
                f"experiment {cls.name!r}: sizes must be {SIZES}, got {tuple(cls.sizes)}"
            )
        if cls.name in Experiment.registry and Experiment.registry[cls.name] is not cls:
            raise TypeError(f"experiment {cls.name!r} is defined twice")
        Experiment.registry[cls.name] = cls

    def __init__(self, verbose: bool = True):
        self.verbose = verbose

    def log(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    def measure(self, size, seed: int):
        """Run what the claim needs at ``size`` (an entry of ``sizes``); return a dataclass."""
        raise NotImplementedError

    def verdict(self, results) -> Outcome:
        raise NotImplementedError

    def report(self, page, results) -> None:
        """Add figures, tables and prose to ``page`` (the verdict and wall time are added)."""
        raise NotImplementedError


def _discover() -> dict[str, type[Experiment]]:
    """Import every experiment module of this package once; the subclasses register themselves."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name not in _NOT_EXPERIMENTS:
            importlib.import_module(f"{package}.{module.name}")
    return Experiment.registry


def names() -> list[str]:
    """The experiments, in alphabetical order."""
    return sorted(_discover())


def get(name: str) -> type[Experiment]:
    """The class of experiment ``name``; a ``KeyError`` listing the names if there is none."""
    experiments = _discover()
    if name not in experiments:
        raise KeyError(f"no experiment {name!r}; the experiments are: {', '.join(names())}")
    return experiments[name]


def run(name: str, out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    """Run experiment ``name`` into folder ``out``: measure, judge, write ``report.html`` and
    ``outcome.json``, print the verdict."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    cls = get(name)
    experiment = cls(verbose=verbose)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = experiment.measure(cls.sizes[size], seed)
    if not dataclasses.is_dataclass(results):
        raise TypeError(f"experiment {name!r}: measure must return a dataclass, got {results!r}")
    seconds = time.perf_counter() - start
    outcome = experiment.verdict(results)

    from ..report import LabReport  # matplotlib: only once there is something to draw

    page = LabReport(out, cls.title, subtitle=f"{cls.reference}; size {size}, seed {seed}")
    experiment.report(page, results)
    page.text(f"Wall time of the measurement: {seconds:.0f} s.")
    page.outcome(outcome.line(), outcome.passed)
    page.write()
    record = {
        "name": name,
        "size": size,
        "seed": seed,
        **dataclasses.asdict(outcome),
        "line": outcome.line(),
        "seconds": round(seconds, 2),
    }
    write_text_atomic(out / "outcome.json", json.dumps(record, indent=2) + "\n")
    if verbose:
        print(outcome.line())
    return outcome
