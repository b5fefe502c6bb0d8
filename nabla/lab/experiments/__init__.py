"""``nabla experiment NAME``: runs that check a published claim and say PASS or FAIL.

Every experiment is a module here with

- ``NAME`` (the command-line name), ``TITLE``, ``REFERENCE`` (the paper, or the lecture's claim)
  and ``SUMMARY`` (one line for ``nabla experiment --list``);
- ``run(out, size="full", seed=0, verbose=True) -> Outcome``: trains what it needs with nabla's
  own models, optimizers and trainer, writes its figures and ``report.html`` into ``out`` (with
  :class:`nabla.lab.report.LabReport`) and returns the verdict. ``size="tiny"`` is the same code
  at a size that runs in seconds (the tests use it; its verdict means nothing); ``"full"`` is the
  documented run, minutes on 2 cores.

The verdict is one line, ``claim: ... | ours: ... | PASS/FAIL``. An honest FAIL is a valid outcome:
the check is stated before the run and never tuned to pass.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ...files import write_text_atomic

__all__ = ["EXPERIMENTS", "Outcome", "get", "names", "run"]

# name -> module, in the order ``--list`` shows them
EXPERIMENTS = {
    "adaptive-generalization": "adaptive_generalization",
    "linear-scaling": "linear_scaling",
    "batch-size-increase": "batch_size_increase",
    "sgd-variants": "sgd_variants",
    "adam-bias-correction": "adam_bias_correction",
    "adagrad-decay": "adagrad_decay",
    "batchnorm": "batchnorm",
    "dropout": "dropout",
    "augmentation": "augmentation",
    "transfer": "transfer",
    "ensemble": "ensemble",
    "skip-connections": "skip_connections",
    "estimator-bias": "estimator_bias",
}
SIZES = ("tiny", "full")


@dataclass
class Outcome:
    """An experiment's verdict: what the paper claims, what we measured, and whether it held."""

    claim: str
    ours: str
    passed: bool

    def line(self) -> str:
        return f"claim: {self.claim} | ours: {self.ours} | {'PASS' if self.passed else 'FAIL'}"


def names() -> list[str]:
    """The experiments that are available, in order."""
    return [n for n, module in EXPERIMENTS.items() if _exists(module)]


def _exists(module: str) -> bool:
    return (Path(__file__).parent / f"{module}.py").exists()


def get(name: str):
    """The module of experiment ``name``; a ``KeyError`` listing the names if there is none."""
    if name not in EXPERIMENTS or not _exists(EXPERIMENTS[name]):
        raise KeyError(f"no experiment {name!r}; the experiments are: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")


def run(name: str, out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    """Run experiment ``name`` into folder ``out``, write ``out/outcome.json``, print the
    verdict."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    module = get(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    outcome = module.run(out, size=size, seed=seed, verbose=verbose)
    record = {"name": name, "size": size, "seed": seed, **asdict(outcome), "line": outcome.line()}
    write_text_atomic(out / "outcome.json", json.dumps(record, indent=2) + "\n")
    if verbose:
        print(outcome.line())
    return outcome
