"""History: what :meth:`Trainer.fit` measured, per epoch and per update.

``history.epochs`` is a list of the flat epoch logs (``{"epoch": 0, "loss": ..., "accuracy": ...,
"dev_loss": ..., "lr": ..., "time": ...}``); ``history.steps`` maps ``loss``, ``lr``,
``batch_size``, ``grad_norm`` and ``update_ratio`` to one value per update (``update_ratio`` is
NaN on updates that did not measure it). ``history["dev_accuracy"]`` (or
``history.history["dev_accuracy"]``, as in Keras) is that entry's list over epochs.

>>> h = History()
>>> h.add_epoch({"epoch": 0, "loss": 0.5}); h.add_epoch({"epoch": 1, "loss": 0.25})
>>> h["loss"]
[0.5, 0.25]
"""

from __future__ import annotations

import math

import numpy as np

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
