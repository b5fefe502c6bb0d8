"""Stochastic gradient descent, with classical or Nesterov momentum."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .flat import Stretch, flush_subnormals
from .optimizer import DECAY, Optimizer
from .registry import Preset
from .saving import value_at


class SGD(Optimizer):
    r"""Gradient descent on minibatch gradients, optionally with momentum.

    With learning rate alpha, momentum beta and gradient g (plus ``weight_decay * theta``):

    .. code-block:: text

        plain:     theta <- theta - alpha g
        momentum:  v <- beta v - alpha g;      theta <- theta + v
        Nesterov:  v <- beta v - alpha g;      theta <- theta + beta v - alpha g

    ``dampening`` d scales the gradient entering the velocity, v <- beta v - (1 - d) alpha g, from
    the second step on (the first takes the whole gradient), as in PyTorch.

    The Nesterov line is the look-ahead method (Nesterov 1983; Sutskever et al. 2013),
    v <- beta v - alpha grad f(theta + beta v), theta <- theta + v, rewritten in terms of the
    look-ahead point theta + beta v, so that only the gradient at the current parameters is needed.

    The state is v, named ``velocity`` (with momentum only). The velocity v carries the learning
    rate, as in the lecture. PyTorch keeps v' = beta v' + g and
    steps theta <- theta - alpha v': the two agree while alpha is constant (v = -alpha v'), and
    differ when a schedule changes alpha (PyTorch rescales the accumulated velocity by the new
    rate, here old velocity keeps the rate it was made with). See docs/optimizers.md.

    >>> import nabla as nb
    >>> w = nb.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.data  # w - 0.1 * 2w
    array([ 0.8, -1.6], dtype=float32)
    """

    name = "sgd"
    presets = {
        "sgd": Preset({}, "#d62728"),
        "momentum": Preset({"momentum": 0.9}, "#2ca02c"),
        "nesterov": Preset({"momentum": 0.9, "nesterov": True}, "#e377c2"),
    }
    descriptions = {
        "momentum": "momentum β: v <- βv - αg (0: plain gradient descent)",
        "nesterov": "Nesterov momentum: the gradient at the look-ahead point (needs momentum > 0)",
        "dampening": "dampening d: v <- βv - (1 - d)αg from the second step on",
        **DECAY,
    }
    defaults = {
        "lr": 0.01,
        "momentum": 0.0,
        "nesterov": False,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
    }

    @classmethod
    def validate(cls, h: dict) -> None:
        super().validate(h)
        beta = value_at(h["momentum"], 0)
        if not 0 <= beta < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {beta}")
        if h["nesterov"] and not callable(h["momentum"]) and beta == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        dampening = value_at(h["dampening"], 0)
        if not 0 <= dampening <= 1:
            raise ValueError(f"SGD: dampening must be in [0, 1], got {dampening}")
        if h["nesterov"] and (callable(h["dampening"]) or dampening != 0):
            raise ValueError("SGD: nesterov=True needs dampening = 0 (as in PyTorch)")

    def buffers(self, h: dict, saved: dict | None = None) -> dict[str, bool]:
        # v, kept from the first step with momentum on. Optional: momentum switched on mid-run
        # (or a momentum schedule starting at 0) rightly starts from no velocity, and with
        # momentum 0 a velocity acts as none (v <- -alpha g is the plain step).
        return {"velocity": False}

    @staticmethod
    def _plain(h: dict, state: Stretch) -> bool:
        # A momentum schedule that reaches 0 keeps following the momentum formula.
        return h["momentum"] == 0 and "velocity" not in state

    @staticmethod
    def _dampened(h: dict, t: int) -> float:
        return h["lr"] * (1 - h["dampening"]) if t > 1 else h["lr"]

    def reference(self, theta: np.ndarray, g: np.ndarray, state: Stretch, h: dict, t: int) -> None:
        alpha, beta = h["lr"], h["momentum"]
        step = g * alpha  # alpha g
        if self._plain(h, state):
            theta -= step
            return
        v = state.get("velocity")
        v *= beta
        v -= g * self._dampened(h, t)  # v <- beta v - alpha g (with dampening: (1 - d) alpha g)
        flush_subnormals(v)
        if h["nesterov"]:
            theta += v * beta - step  # theta <- theta + beta v - alpha g
        else:
            theta += v

    def kernel(
        self,
        theta: np.ndarray,
        g: np.ndarray,
        state: Stretch,
        h: dict,
        t: int,
        weight_decay: float,
        decay: float,
    ) -> None:
        f, plain = theta.dtype.type, self._plain(h, state)
        v = np.empty(0, theta.dtype) if plain else state.get("velocity")
        kernels.kernel("updates.sgd", theta.size)(
            theta,
            g,
            v,
            f(h["lr"]),
            f(h["momentum"]),
            f(self._dampened(h, t)),
            f(weight_decay),
            f(decay),
            bool(h["nesterov"]),
            not plain,
            np.finfo(theta.dtype).tiny,
        )
