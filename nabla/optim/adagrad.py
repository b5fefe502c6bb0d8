"""AdaGrad: a per-coordinate step size that shrinks with the accumulated squared gradient."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class AdaGrad(Optimizer):
    r"""AdaGrad (Duchi, Hazan and Singer 2011).

    .. code-block:: text

        r <- r + g * g                              (r starts at initial_accumulator_value)
        theta <- theta - alpha * g / (sqrt(r) + eps)

    Coordinates with large past gradients take small steps. Under a constant gradient
    r = t g^2, so the effective step alpha / sqrt(r) decays like 1 / sqrt(t).
    Defaults follow PyTorch (eps = 1e-10 outside the root, accumulator starting at 0); Keras uses
    eps = 1e-7 and starts the accumulator at 0.1 (see docs/optimizers.md).
    """

    defaults = {"lr": 0.01, "eps": 1e-10, "initial_accumulator_value": 0.0, "weight_decay": 0.0}

    def validate(self, h: dict) -> None:
        super().validate(h)
        initial = h["initial_accumulator_value"]
        if callable(initial) or not initial >= 0:
            raise ValueError(
                f"AdaGrad: initial_accumulator_value must be a number >= 0, got {initial}"
            )

    def update(self, theta, g, block, h, t):
        r = self._state(block, "sum_squares", h["initial_accumulator_value"])
        tmp = np.multiply(g, g, out=self._scratch(block, "tmp"))
        r += tmp  # r <- r + g^2
        np.sqrt(r, out=tmp)
        tmp += h["eps"]
        np.divide(g, tmp, out=tmp)
        tmp *= h["lr"]
        theta -= tmp  # theta <- theta - alpha g / (sqrt(r) + eps)
