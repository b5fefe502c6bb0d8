"""Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free").

An ensemble of M networks usually beats each of them, but costs M trainings. Huang et al. get
the members from one training run: a cyclic cosine schedule (SGDR, Loshchilov & Hutter 2017)
anneals the learning rate to nearly zero at the end of every cycle, where the weights settle in a
minimum, then restarts it at its peak, which throws them out towards another. The weights at the
end of each of the M cycles, the *snapshots* θ_1, ..., θ_M, are the members; like the paper we
average their predicted class probabilities::

    p(y | x) = (1/M) Σ_i softmax(f(x; θ_i))_y                      (``nn.Ensemble``, mode "probs")

The log is concave, so by Jensen -log p(y | x) <= (1/M) Σ_i -log p_i(y | x): the ensemble's NLL is
never above its members' *mean* NLL, on every example. Whether it beats the *last* snapshot, the
model one would keep otherwise, is an empirical claim: the paper reports it, our tests check it
where members fit their data and grow overconfident (a small noisy set), and it fails where the
model still improves from cycle to cycle (docs/train.md has the measurements).

Where cycles end. ``CosineDecayRestarts(initial, first_decay_steps=T, t_mul=r)`` makes its k-th
cycle (k = 1, 2, ...) T r^(k-1) steps long, so cycle k ends after

    T (r^k - 1) / (r - 1) updates          (T k when r = 1)

The optimizer evaluates the schedule at the 0-based index of each update, so once that many
updates are done (``trainer.step`` equals it, rounded up) the last, smallest-lr update of the
cycle is made: that is when :class:`~nabla.train.callbacks.SnapshotEnsemble` takes a snapshot.
:func:`cycle_ends` lists these steps for a schedule (also under a ``LinearWarmup``, which leaves
the schedule's steps unshifted); for other schedules give the callback a cycle length.

:func:`snapshot_ensemble` builds the ``nn.Ensemble`` of the snapshots;
:func:`snapshot_ensemble_results` scores it, each snapshot and the last one on a loader (accuracy
and NLL), for ``results.json`` and the report.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..autograd.grad_mode import no_grad
from ..creation import tensor
from ..nn import Ensemble, Module
from ..ops.activations import log_softmax
from ..ops.reduce import logsumexp
from ..optim.schedules import CosineDecayRestarts, LinearWarmup
from ..serialization import CheckpointError, load, load_metadata, save

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..autograd.tensor import Tensor
    from ..optim.schedules import Schedule
    from .callbacks import SnapshotEnsemble

    # a SnapshotEnsemble callback, a folder of snapshot files, or a list of state dicts, snapshot
    # files or (info, state dict) pairs
    Snapshots = (
        SnapshotEnsemble
        | str
        | os.PathLike[str]
        | Iterable[dict | str | os.PathLike[str] | tuple[dict, dict]]
    )

__all__ = ["cycle_ends", "load_snapshots", "snapshot_ensemble", "snapshot_ensemble_results"]

FILE_FORMAT = "nabla.snapshot"  # the "format" metadata of a snapshot file


def cycle_ends(schedule: Schedule | float) -> Iterator[tuple[int, int]]:
    """``(cycle, step)`` for every cycle of a cosine-restart ``schedule``, from cycle 1, without
    end: after ``step`` updates cycle ``cycle`` is complete (see the module docstring).

    >>> from nabla.optim.schedules import CosineDecayRestarts
    >>> list(itertools.islice(cycle_ends(CosineDecayRestarts(0.1, 10, t_mul=2.0)), 4))
    [(1, 10), (2, 30), (3, 70), (4, 150)]
    """
    if isinstance(schedule, LinearWarmup):  # the warmup overlays the start, shifting nothing
        yield from cycle_ends(schedule.schedule)
        return
    if not isinstance(schedule, CosineDecayRestarts):
        raise ValueError(
            f"snapshot ensembles need a cosine schedule with restarts (CosineDecayRestarts), not "
            f"{schedule!r}; or give SnapshotEnsemble the cycle length (cycle_steps= or "
            f"cycle_epochs=)"
        )
    first, r = schedule.first_decay_steps, schedule.t_mul
    for i in itertools.count(1):
        end = first * i if r == 1.0 else first * (r**i - 1.0) / (r - 1.0)
        yield i, _whole(end)


def _whole(end: float) -> int:
    """The updates needed to get past ``end``: ceil, but an integer computed as 29.999999 is 30."""
    nearest = round(end)
    return nearest if math.isclose(end, nearest, rel_tol=1e-9) else math.ceil(end)


def every_steps(steps: int) -> Iterator[tuple[int, int]]:
    """``(cycle, step)`` for cycles of ``steps`` updates each."""
    return ((i, i * steps) for i in itertools.count(1))


# --- members ----------------------------------------------------------------------------------


def load_snapshots(directory: str | os.PathLike[str]) -> list[tuple[dict, dict]]:
    """``(info, state_dict)`` of every snapshot file in ``directory`` (a run's ``snapshots/``),
    in the order they were taken; ``info`` holds the file's ``cycle``, ``step`` and ``epoch``."""
    paths = sorted(Path(directory).glob("snapshot-*.safetensors"), key=_number)
    return [read_snapshot(p) for p in paths]


def _number(path: Path) -> int:
    """``snapshot-12.safetensors`` -> 12 (so that 10 sorts after 9)."""
    digits = path.stem.removeprefix("snapshot-")
    return int(digits) if digits.isdigit() else 0


def write_snapshot(
    directory: str | os.PathLike[str], weights: dict, info: dict, number: int
) -> str:
    """Write the ``number``-th snapshot to ``directory/snapshot-<number>.safetensors``
    (atomically) with its ``cycle``, ``step`` and ``epoch`` in the metadata; returns the file's
    name. (Numbered in the order taken, not by cycle: a run trained further on a new schedule
    counts its cycles afresh, and must not overwrite the snapshots it has.)"""
    os.makedirs(directory, exist_ok=True)
    name = f"snapshot-{number}.safetensors"
    metadata = {"format": FILE_FORMAT, **{k: str(info[k]) for k in ("cycle", "step", "epoch")}}
    save(weights, os.path.join(directory, name), metadata=metadata)
    return name


def read_snapshot(path: str | os.PathLike[str]) -> tuple[dict, dict]:
    """``(info, state_dict)`` of one snapshot file (or of a file of weights from ``nb.save``)."""
    metadata = load_metadata(path)
    if metadata.get("format", FILE_FORMAT) != FILE_FORMAT:  # a training checkpoint, say
        raise CheckpointError(
            f"{path}: not a snapshot or a file of model weights (metadata format "
            f"{metadata['format']!r})"
        )
    info = {k: int(metadata[k]) for k in ("cycle", "step", "epoch") if k in metadata}
    info["file"] = os.fspath(path)
    return info, {k: v.data for k, v in load(path).items()}


def _resolve(snapshots: Snapshots) -> list[tuple[dict, dict]]:
    """``(info, state_dict)`` pairs from a SnapshotEnsemble callback, a folder of snapshot files,
    or a list of state dicts, snapshot files, or such pairs."""
    if hasattr(snapshots, "members"):  # the callback
        pairs = snapshots.members()
    elif isinstance(snapshots, (str, os.PathLike)):
        pairs = load_snapshots(snapshots)
    else:
        pairs = [
            read_snapshot(s)
            if isinstance(s, (str, os.PathLike))
            else s
            if isinstance(s, tuple)
            else ({}, s)
            for s in snapshots
        ]
    if not pairs:
        raise ValueError("snapshot ensemble: there are no snapshots (did a cycle end?)")
    return pairs


def _members(model: Module | Callable[[], Module], states: list[dict]) -> list[Module]:
    """One model per state dict: copies of ``model`` (a Module) or calls of ``model`` (a
    function returning a fresh model of the same architecture)."""
    members = []
    for state in states:
        member = copy.deepcopy(model) if isinstance(model, Module) else model()
        member.load_state_dict(state)
        member.eval()
        members.append(member)
    return members


def snapshot_ensemble(model: Module | Callable[[], Module], snapshots: Snapshots) -> Ensemble:
    """The ``nn.Ensemble`` of the snapshots: each member is ``model``'s architecture with one
    snapshot's weights, and the ensemble returns the mean of their softmax probabilities.

    ``model``: a model of the architecture (it is copied, never changed) or a function returning
    one; ``snapshots``: a :class:`~nabla.train.callbacks.SnapshotEnsemble` callback, a folder of
    snapshot files, or a list of state dicts or files.
    """
    states = [state for _, state in _resolve(snapshots)]
    return Ensemble(_members(model, states), mode="probs").eval()


# --- scores -----------------------------------------------------------------------------------


def _scores(log_probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and NLL (mean -log p(label | x), natural log) of log-probabilities (N, C)."""
    return {
        "accuracy": float(np.mean(log_probs.argmax(axis=1) == labels)),
        "nll": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
    }


def snapshot_ensemble_results(
    model: Module | Callable[[], Module],
    snapshots: Snapshots,
    loader: Iterable[tuple[Tensor, Tensor | None]],
    split: str | None = None,
) -> dict:
    """Accuracy and NLL on ``loader`` of every snapshot, of the last one, and of their ensemble.

    Every member sees each batch once (the loader may shuffle). The ensemble's probabilities are
    those of :func:`snapshot_ensemble`, averaged in log space and float64 for precision:
    log p = logsumexp_i log p_i - log M. Returns (the numbers are examples)::

        {"split": "test", "size": 3,
         "members": [{"cycle": 1, "step": 98, "epoch": 3, "accuracy": 0.95, "nll": 0.17}, ...],
         "last_snapshot": {"cycle": 3, "step": 686, "epoch": 13, "accuracy": 0.96, "nll": 0.14},
         "ensemble": {"accuracy": 0.97, "nll": 0.11}}
    """
    infos, states = zip(*_resolve(snapshots))
    members = _members(model, list(states))
    logits = [[] for _ in members]
    labels = []
    with no_grad():
        for x, y in loader:
            labels.append(np.asarray(getattr(y, "data", y)))
            for out, member in zip(logits, members):
                out.append(member(x).data)
    labels = np.concatenate(labels)
    if labels.ndim != 1:
        raise ValueError("snapshot ensemble: needs integer class labels, got soft or one-hot ones")
    # (M, N, C) log-probabilities in float64; the ensemble's: log of the mean probability
    log_probs = log_softmax(tensor(np.stack([np.concatenate(out) for out in logits]), "float64"))
    mixed = (logsumexp(log_probs, axis=0) - math.log(len(members))).data
    log_probs = log_probs.data
    results = {"split": split} if split else {}
    results["size"] = len(members)
    results["members"] = [
        {**{k: v for k, v in info.items() if k != "file"}, **_scores(lp, labels)}
        for info, lp in zip(infos, log_probs)
    ]
    results["last_snapshot"] = dict(results["members"][-1])
    results["ensemble"] = _scores(mixed, labels)
    return results
