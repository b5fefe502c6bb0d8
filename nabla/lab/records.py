"""What the lab's runs produce and its plots draw, in a module of their own so that a run's module
and its plots' module each import these without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Trajectory:
    """One optimizer's run: ``positions`` (n + 1, 2) and ``losses`` (n + 1,), entry t after t
    steps; ``status`` is "ok", "diverged" (not finite) or "left the box"; ``stopped`` the step
    where a stopped run was halted (None if it ran to the end)."""

    name: str
    lr: float
    positions: np.ndarray
    losses: np.ndarray
    status: str = "ok"
    stopped: int | None = None

    @property
    def steps(self) -> int:
        return len(self.losses) - 1

    @property
    def label(self) -> str:
        text = f"{self.name} (lr {self.lr:g})"
        return text if self.status == "ok" else f"{text}, {self.status} at step {self.stopped}"


@dataclass
class Curve:
    """A 1-D profile: loss and accuracy at each α."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray


@dataclass
class Surface:
    """A 2-D slice: ``loss[i, j]`` = L(θ + alphas[i] δ + betas[j] η), the same for accuracy."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
