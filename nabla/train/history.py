"""History: what :meth:`Trainer.fit` measured, per epoch and per update.

``history.epochs`` is a list of the flat epoch logs (``{"epoch": 0, "loss": ..., "accuracy": ...,
"dev_loss": ..., "lr": ..., "time": ...}``); ``history.steps`` maps ``loss``, ``lr``,
``batch_size``, ``grad_norm`` and ``update_ratio`` to one value per update (``update_ratio`` is
NaN on updates that did not measure it). ``history["dev_accuracy"]`` (or
``history.history["dev_accuracy"]``, as in Keras) is that entry's list over epochs.

How ``fit`` shows it: :func:`summary_line` after every epoch, and :func:`progress_bar` during
one, on a terminal or in a Jupyter notebook (``tqdm.auto``), never in a log file. The numbers
after the bar (:func:`progress_postfix`) are as many as fit the terminal beside a bar of
``BAR_MIN`` columns, dropped whole from the least important, never cut.

>>> h = History()
>>> h.add_epoch({"epoch": 0, "loss": 0.5}); h.add_epoch({"epoch": 1, "loss": 0.25})
>>> h["loss"]
[0.5, 0.25]
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tqdm.std import tqdm

STEP_KEYS = ("loss", "lr", "batch_size", "grad_norm", "update_ratio")


class History:
    def __init__(self):
        self.epochs: list[dict] = []
        self.steps: dict[str, list] = {k: [] for k in STEP_KEYS}

    def add_step(self, logs: dict) -> None:
        for key in STEP_KEYS:
            value = logs.get(key)
            self.steps[key].append(math.nan if value is None else value)

    def add_epoch(self, logs: dict) -> None:
        self.epochs.append(dict(logs))

    @property
    def history(self) -> dict[str, list]:
        """Each epoch-log key mapped to its values over epochs (Keras' ``History.history``)."""
        keys = dict.fromkeys(k for logs in self.epochs for k in logs if k != "epoch")
        return {k: [logs.get(k, math.nan) for logs in self.epochs] for k in keys}

    def __getitem__(self, key: str) -> list:
        history = self.history
        if key not in history:
            raise KeyError(f"History has no {key!r}; it has {sorted(history)}")
        return history[key]

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        return f"History({len(self.epochs)} epochs, {len(self.steps['loss'])} steps)"

    def state_dict(self) -> dict:
        return {
            "epochs": [dict(e) for e in self.epochs],
            "steps": {k: np.asarray(v, dtype=np.float64) for k, v in self.steps.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.epochs = [dict(e) for e in state["epochs"]]
        self.steps = {k: np.asarray(state["steps"][k]).tolist() for k in STEP_KEYS}
        self.steps["batch_size"] = [int(b) for b in self.steps["batch_size"]]


# the progress bar: tqdm's default layout, shorter, so that the numbers after it fit
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {elapsed}<{remaining}{postfix}"
BAR_MIN = 10  # columns the bar itself keeps


@contextlib.contextmanager
def progress_bar(loader: object, epoch: int, epochs: int, verbose: int) -> Iterator[tqdm | None]:
    """A tqdm bar for one epoch on a terminal or in a notebook (``tqdm.auto``), else None."""
    if verbose != 1 or _display() is None:
        yield None
        return
    from tqdm.auto import tqdm

    try:
        total = len(loader)
    except TypeError:
        total = None
    bar = tqdm(
        total=total,
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        bar_format=BAR_FORMAT,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def _display() -> str | None:
    """Where a progress bar can show: ``"terminal"``, ``"notebook"`` (a Jupyter kernel), or None
    (a log file, CI)."""
    if sys.stderr is not None and sys.stderr.isatty():
        return "terminal"
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    if shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
        return "notebook"
    return None


def _columns() -> int | None:
    """The width the bar's line must fit: the terminal's now (it may have been resized), or None
    in a notebook, where the numbers sit beside a widget."""
    return shutil.get_terminal_size().columns if _display() == "terminal" else None


def progress_postfix(
    mean_loss: float,
    metrics: dict,
    logs: dict,
    columns: int | None = None,
    bar: tqdm | None = None,
) -> str:
    """The numbers after the bar: the mean loss so far, the metrics, then lr, gradient norm,
    batch size and update ratio, as many as fit in ``columns`` (with ``bar``: the terminal's
    width now, None in a notebook) beside a bar of BAR_MIN columns, all of them when ``columns``
    is None. Numbers are dropped whole, never cut."""
    desc, total = ("epoch 100/100", 9999) if bar is None else (bar.desc, bar.total)
    if bar is not None:
        columns = _columns()
    fields = [f"loss {mean_loss:.4f}"]
    fields += [f"{name.replace('accuracy', 'acc')} {value:.4f}" for name, value in metrics.items()]
    fields += [f"lr {logs['lr']:.2e}", f"|g| {logs['grad_norm']:.3g}", f"bs {logs['batch_size']}"]
    if logs.get("update_ratio") is not None and math.isfinite(logs["update_ratio"]):
        fields.append(f"Δθ/θ {logs['update_ratio']:.1e}")
    if columns is None:
        return "  ".join(fields)
    fixed = BAR_FORMAT.format(
        desc=desc,
        percentage=100,
        bar="",
        n_fmt=total,
        total_fmt=total,
        elapsed="0:00:00",
        remaining="0:00:00",
        postfix=", ",
    )
    room = columns - len(fixed) - BAR_MIN
    shown = fields[:1]
    for field in fields[1:]:
        if len("  ".join([*shown, field])) > room:
            break
        shown.append(field)
    return "  ".join(shown)


def plural(count: int, noun: str) -> str:
    """``plural(1, "epoch")`` is "1 epoch", ``plural(3, "epoch")`` "3 epochs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary_line(epoch: int, epochs: int, logs: dict) -> str:
    """The line printed after each epoch: its number, the epoch logs, lr and time so far."""
    width = len(str(epochs))
    parts = [f"epoch {epoch + 1:>{width}}/{epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in logs.items() if k not in ("lr", "time")]
    parts += [f"lr {logs['lr']:.2e}", f"{logs['time']:.1f}s"]
    return "  ".join(parts)
