"""Callbacks: code that runs at fixed points of :meth:`Trainer.fit`.

The protocol is five hooks, each optional, each given the trainer:

- ``on_train_begin(trainer)`` and ``on_train_end(trainer)``;
- ``on_epoch_begin(trainer, epoch)``;
- ``on_batch_end(trainer, step, logs)`` after each update, with ``logs`` = ``{"epoch", "step",
  "loss", "lr", "batch_size", "grad_norm", "update_ratio"}`` (``step`` counts updates from 1;
  ``update_ratio`` is None on steps that do not measure it);
- ``on_epoch_end(trainer, epoch, logs)`` with the epoch's flat logs, Keras style: ``loss``,
  each metric, ``dev_loss`` and ``dev_<metric>`` when there is dev data, ``lr``, ``time``.

Epochs count from 0 in code and from 1 on screen. A callback stops training by setting
``trainer.stop_training = True``. To be resumed exactly, a callback with memory (a patience
counter, a best value) returns it from ``state_dict()`` and takes it back in
``load_state_dict(state)``; checkpoints store it.

In data-parallel training every rank runs the callbacks, except those with
``main_process_only = True`` (the ones that write files: checkpoints and logs), which run on
rank 0 alone.

>>> class PrintLoss(Callback):
...     def on_epoch_end(self, trainer, epoch, logs):
...         print(f"epoch {epoch + 1}: loss {logs['loss']:.3f}")
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .snapshots import cycle_ends, every_steps, read_snapshot, snapshot_ensemble, write_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..nn import Ensemble, Module
    from .trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    #: run on rank 0 only in distributed training (callbacks that write files)
    main_process_only = False

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, step: int, logs: dict) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _Monitor:
    """A monitored quantity: which log entry, whether lower or higher is better, and by how much
    a value must improve to count (``min_delta``)."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise KeyError(
                f"{self.owner}: monitor {self.monitor!r} is not among the epoch logs "
                f"{sorted(logs)}; pass dev data to fit() to monitor dev_* values"
            )
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    with ``restore_best``, put back the weights of the best epoch at the end (Keras'
    ``restore_best_weights``)."""

    def __init__(
        self,
        monitor: str = "dev_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
    ):
        if int(patience) != patience or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.tracker = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience, self.restore_best = int(patience), restore_best
        self.wait, self.best_epoch, self.stopped_epoch = 0, None, None
        self.best_weights = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        value = self.tracker.value(logs)
        if self.tracker.improved(value):
            self.tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = {k: v.copy() for k, v in _arrays(trainer.model).items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        state = {"best": self.tracker.best, "wait": self.wait, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: dict) -> None:
        self.tracker.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch = state["best_epoch"]
        self.best_weights = state.get("best_weights")


def _arrays(model: Module) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in model.state_dict().items()}  # a Tensor's data, not a copy


class ModelCheckpoint(Callback):
    """Write resumable checkpoints (model, optimizer, loader position, RNG streams, callbacks,
    history) into ``directory``:

    - ``last=True``: ``last.safetensors`` after every epoch;
    - ``best=True``: ``best.safetensors`` when ``monitor`` improves;
    - ``every=N``: ``epoch-0004.safetensors`` every N epochs (kept).

    Each file is written to a temporary name and renamed, so a crash while writing leaves the
    previous checkpoint intact.
    """

    main_process_only = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        last: bool = True,
        best: bool = False,
        every: int | None = None,
        monitor: str = "dev_loss",
        mode: str = "auto",
    ):
        if every is not None and (int(every) != every or every < 1):
            raise ValueError(f"ModelCheckpoint: every must be a positive int, got {every!r}")
        self.directory, self.last, self.best, self.every = os.fspath(directory), last, best, every
        self.tracker = _Monitor("ModelCheckpoint", monitor, mode, 0.0) if best else None
        self.best_epoch = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        os.makedirs(self.directory, exist_ok=True)
        # The checkpoint must describe the state *after* this callback, so record the tracker
        # first; the trainer's own counters already count this epoch as done.
        improved = False
        if self.tracker is not None:
            value = self.tracker.value(logs)
            if self.tracker.improved(value):
                self.tracker.best, self.best_epoch, improved = value, epoch, True
        if self.every and (epoch + 1) % self.every == 0:
            trainer.save_checkpoint(
                os.path.join(self.directory, f"epoch-{epoch + 1:04d}.safetensors")
            )
        if improved:
            trainer.save_checkpoint(os.path.join(self.directory, "best.safetensors"))
        if self.last:
            trainer.save_checkpoint(os.path.join(self.directory, "last.safetensors"))

    def state_dict(self) -> dict:
        if self.tracker is None:
            return {}
        return {"best": self.tracker.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        if self.tracker is not None and state:
            self.tracker.best, self.best_epoch = float(state["best"]), state["best_epoch"]


class SnapshotEnsemble(Callback):
    """Keep the weights at the end of every cosine-restart cycle: the members of a snapshot
    ensemble (Huang et al. 2017; see :mod:`nabla.train.snapshots` for the idea and the steps).

    Cycle ends come from the optimizer's schedule (a ``CosineDecayRestarts``, also under a
    ``LinearWarmup``), or from ``cycle_steps`` / ``cycle_epochs`` (cycles of equal length). With
    ``directory``, snapshot ``k`` is written to ``directory/snapshot-<k>.safetensors`` (model
    weights and buffers, with ``cycle``, ``step`` and ``epoch`` in the metadata; written
    atomically); without, the weights are kept in memory, and in checkpoints. ``snapshots``
    lists ``{"cycle", "step", "epoch", "file"}`` per snapshot; :meth:`members` gives the weights,
    :meth:`ensemble` the ``nn.Ensemble``.
    """

    main_process_only = True

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        cycle_steps: int | None = None,
        cycle_epochs: int | None = None,
    ):
        for name, value in (("cycle_steps", cycle_steps), ("cycle_epochs", cycle_epochs)):
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"SnapshotEnsemble: {name} must be a positive int, got {value!r}")
        if cycle_steps is not None and cycle_epochs is not None:
            raise ValueError("SnapshotEnsemble: give cycle_steps or cycle_epochs, not both")
        self.directory = None if directory is None else os.fspath(directory)
        self.cycle_steps, self.cycle_epochs = cycle_steps, cycle_epochs
        self.snapshots: list[dict] = []
        self.weights: list[dict] = []  # in memory (no directory)
        self._ends, self._next = None, None

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.cycle_epochs is not None:
            self._ends = every_steps(self.cycle_epochs * len(trainer.train_loader))
        elif self.cycle_steps is not None:
            self._ends = every_steps(self.cycle_steps)
        else:
            self._ends = cycle_ends(trainer.optimizer.param_groups[0]["lr"])
        self._advance(trainer.step)  # a resumed run: cycles that ended before are done

    def _advance(self, step: int) -> None:
        self._next = next(self._ends)
        while self._next[1] <= step:
            self._next = next(self._ends)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        cycle, end = self._next
        if step < end:
            return
        info = {"cycle": cycle, "step": step, "epoch": int(logs["epoch"]), "file": None}
        weights = {k: v.copy() for k, v in _arrays(trainer.model).items()}
        if self.directory is None:
            self.weights.append(weights)
        else:
            info["file"] = write_snapshot(self.directory, weights, info, len(self.snapshots) + 1)
        self.snapshots.append(info)
        self._advance(step)

    def members(self) -> list[tuple[dict, dict]]:
        """``(info, state_dict)`` per snapshot, oldest first (files are read now)."""
        if self.directory is None:
            return [(dict(i), w) for i, w in zip(self.snapshots, self.weights)]
        return [read_snapshot(os.path.join(self.directory, i["file"])) for i in self.snapshots]

    def ensemble(self, model: Module | Callable[[], Module]) -> Ensemble:
        """The ``nn.Ensemble`` of the snapshots, on copies of ``model`` (or ``model()`` calls)."""
        return snapshot_ensemble(model, self)

    def state_dict(self) -> dict:
        state = {"snapshots": [dict(i) for i in self.snapshots]}
        if self.directory is None:
            state["weights"] = self.weights
        return state

    def load_state_dict(self, state: dict) -> None:
        self.snapshots = [dict(i) for i in state["snapshots"]]
        self.weights = list(state.get("weights", []))
        missing = [
            i["file"]
            for i in self.snapshots
            if i["file"] is not None
            and not os.path.isfile(os.path.join(self.directory or "", i["file"]))
        ]
        if missing:
            raise FileNotFoundError(
                f"SnapshotEnsemble: the checkpoint lists snapshots that are not in "
                f"{self.directory}: {', '.join(missing)}"
            )


def _constant_lr(trainer: Trainer, owner: str) -> float:
    """The optimizer's learning rate, which must be a number for ``owner`` to set it."""
    for group in trainer.optimizer.param_groups:
        if callable(group["lr"]):
            raise ValueError(
                f"{owner}: the optimizer's learning rate is a schedule ({group['lr']!r}); "
                f"{owner} sets a constant learning rate, so use one or the other"
            )
    return float(trainer.optimizer.param_groups[0]["lr"])


def _set_lr(trainer: Trainer, lr: float) -> None:
    for group in trainer.optimizer.param_groups:
        group["lr"] = float(lr)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs, then wait ``cooldown`` epochs; never below ``min_lr``.
    Defaults are Keras'. Works on a constant learning rate (a schedule already decides it)."""

    def __init__(
        self,
        monitor: str = "dev_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "auto",
    ):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        self.tracker = _Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        self.factor, self.patience, self.cooldown, self.min_lr = factor, patience, cooldown, min_lr
        self.wait, self.cooldown_left = 0, 0

    def on_train_begin(self, trainer: Trainer) -> None:
        _constant_lr(trainer, "ReduceLROnPlateau")

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        value = self.tracker.value(logs)
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.tracker.improved(value):
            self.tracker.best, self.wait = value, 0
            return
        if self.cooldown_left > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            lr = _constant_lr(trainer, "ReduceLROnPlateau")
            _set_lr(trainer, max(lr * self.factor, self.min_lr))
            self.wait, self.cooldown_left = 0, self.cooldown

    def state_dict(self) -> dict:
        return {"best": self.tracker.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.best = float(state["best"])
        self.wait, self.cooldown_left = int(state["wait"]), int(state["cooldown_left"])


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (Keras'
    callback; epochs from 0). For per-step schedules pass a schedule as the optimizer's ``lr``."""

    def __init__(self, schedule: Callable[[int, float], float]):
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be a callable (epoch, lr) -> lr")
        self.schedule = schedule

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        lr = float(self.schedule(epoch, _constant_lr(trainer, "LearningRateScheduler")))
        if not lr >= 0:
            raise ValueError(f"LearningRateScheduler: schedule gave lr={lr} at epoch {epoch}")
        _constant_lr(trainer, "LearningRateScheduler")  # (the schedule may have replaced it)
        _set_lr(trainer, lr)


class JSONLLogger(Callback):
    """One JSON line per update (``{"event": "step", ...}``) and per epoch (``{"event":
    "epoch", "epoch", "step", "time", "lr", "train": {...}, "dev": {...}}``): the run folder's
    ``metrics.jsonl``. On resume the lines after the checkpoint's step are dropped and a
    ``{"event": "resume"}`` line marks the seam, so the file reads as one uninterrupted run."""

    main_process_only = True

    def __init__(self, path: str | os.PathLike[str], steps: bool = True):
        self.path, self.steps, self.file = os.fspath(path), steps, None

    def on_train_begin(self, trainer: Trainer) -> None:
        kept = []
        if trainer.step > 0 and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                kept = [
                    line for line in f if line.strip() and json.loads(line)["step"] <= trainer.step
                ]
            kept.append(_line({"event": "resume", "epoch": trainer.epoch, "step": trainer.step}))
        self.file = open(self.path, "w", encoding="utf-8")
        self.file.writelines(kept)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if self.steps:
            self.file.write(_line({"event": "step", **logs}))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        train = {
            k: v for k, v in logs.items() if k not in ("lr", "time") and not k.startswith("dev_")
        }
        record = {
            "event": "epoch",
            "epoch": epoch,
            "step": trainer.step,
            "time": logs.get("time"),
            "lr": logs.get("lr"),
            "train": train,
        }
        dev = {k[4:]: v for k, v in logs.items() if k.startswith("dev_")}
        if dev:
            record["dev"] = dev
        self.file.write(_line(record))
        self.file.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _line(record: dict) -> str:
    return json.dumps({k: _plain(v) for k, v in record.items()}) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class CSVLogger(Callback):
    """One CSV row per epoch with the epoch logs (Keras' CSVLogger). On resume, rows of epochs
    after the checkpoint are dropped and new rows are appended."""

    main_process_only = True

    def __init__(self, path: str | os.PathLike[str]):
        self.path, self.columns = os.fspath(path), None

    def on_train_begin(self, trainer: Trainer) -> None:
        rows = []
        if trainer.epoch > 0 and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.columns = reader.fieldnames
                rows = [r for r in reader if int(r["epoch"]) < trainer.epoch]
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            if self.columns:
                writer = csv.DictWriter(f, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(rows)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        row = {"epoch": epoch, **logs}
        header = self.columns is None
        if header:
            self.columns = list(row)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if header:
                writer.writeheader()
            writer.writerow(row)
