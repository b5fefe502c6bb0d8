"""AdaGrad: a per-coordinate step size that shrinks with the accumulated squared gradient."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .flat import Stretch, flush_subnormals
from .optimizer import DECAY, EPS, Optimizer
from .registry import Preset


class AdaGrad(Optimizer):
    r"""AdaGrad (Duchi, Hazan and Singer 2011).

    .. code-block:: text

        r <- r + g * g                              (r starts at initial_accumulator_value)
        theta <- theta - alpha * g / (sqrt(r) + eps)
        eps_inside_sqrt=True:  theta <- theta - alpha * g / sqrt(r + eps)     (Keras, Optax, d2l)

    Coordinates with large past gradients take small steps. Under a constant gradient
    r = t g^2, so the effective step alpha / sqrt(r) decays like 1 / sqrt(t).
    Defaults follow PyTorch (eps = 1e-10 outside the root, accumulator starting at 0); Keras uses
    eps = 1e-7 and starts the accumulator at 0.1 (see docs/optimizers.md). The state is r, named
    ``sum_squares`` (PyTorch: ``sum``). ``Adagrad`` is PyTorch's spelling of the same class (the
    defaults are PyTorch's already).
    """

    name = "adagrad"
    presets = {"adagrad": Preset({}, "#1f77b4")}
    descriptions = {
        **EPS,
        "initial_accumulator_value": "the starting value of the sum of squared gradients r",
        **DECAY,
    }
    defaults = {
        "lr": 0.01,
        "eps": 1e-10,
        "initial_accumulator_value": 0.0,
        "eps_inside_sqrt": False,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
    }

    @classmethod
    def validate(cls, h: dict) -> None:
        super().validate(h)
        initial = h["initial_accumulator_value"]
        if callable(initial) or not initial >= 0:
            raise ValueError(
                f"AdaGrad: initial_accumulator_value must be a number >= 0, got {initial}"
            )

    def buffers(self, h: dict, saved: dict | None = None) -> dict[str, bool]:
        return {"sum_squares": True}  # r

    def initial_state(self, h: dict) -> dict[str, float]:
        return {"sum_squares": h["initial_accumulator_value"]}  # r_0

    def reference(self, theta: np.ndarray, g: np.ndarray, state: Stretch, h: dict, t: int) -> None:
        r = state.get("sum_squares", h["initial_accumulator_value"])
        r += g * g  # r <- r + g^2
        flush_subnormals(r)
        d = np.sqrt(r + h["eps"]) if h["eps_inside_sqrt"] else np.sqrt(r) + h["eps"]
        theta -= (g / d) * h["lr"]  # theta <- theta - alpha g / d

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
        f = theta.dtype.type
        r = state.get("sum_squares", h["initial_accumulator_value"])
        kernels.kernel("updates.adagrad", theta.size)(
            theta,
            g,
            r,
            f(h["lr"]),
            f(h["eps"]),
            f(weight_decay),
            f(decay),
            bool(h["eps_inside_sqrt"]),
            np.finfo(theta.dtype).tiny,
        )


Adagrad = AdaGrad  # PyTorch's spelling
