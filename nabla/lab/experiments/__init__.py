"""``nabla experiment NAME``: runs that check a published claim and say PASS or FAIL.

Every experiment is one module here defining one subclass of
:class:`~nabla.lab.experiments.framework.Experiment`: its name, title, reference and summary, its
``tiny`` and ``full`` sizes, and ``measure`` (the runs, returning a dataclass of results),
``verdict`` (the check, stated before the run) and ``report`` (figures and tables). Defining the
class registers it; :func:`run` does the rest (the page, the wall time, ``outcome.json``, the
printed verdict). :mod:`~nabla.lab.experiments.common` holds what several experiments share: data
splits, seeds, pooled statistics, training through the :class:`~nabla.train.Trainer`.

The verdict is one line, ``claim: ... | ours: ... | PASS/FAIL``. An honest FAIL is a valid outcome:
the check is stated before the run and never tuned to pass. ``size="tiny"`` is the same code at a
size that runs in seconds (the tests use it; its verdict means nothing); ``"full"`` is the
documented run, minutes on 2 cores.
"""

from .framework import SIZES, Experiment, Outcome, get, names, run

__all__ = ["SIZES", "Experiment", "Outcome", "get", "names", "run"]
