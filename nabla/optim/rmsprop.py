"""RMSProp: AdaGrad with a moving average instead of a sum, so old gradients are forgotten."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class RMSProp(Optimizer):
    r"""RMSProp (Hinton, lecture 6e of Neural Networks for Machine Learning, 2012).

    .. code-block:: text

        r <- beta r + (1 - beta) g * g
        centered:  gbar <- beta gbar + (1 - beta) g;   d = sqrt(r - gbar^2) + eps
        else:      d = sqrt(r) + eps
        momentum:  v <- momentum v + g / d;  theta <- theta - alpha v
        else:      theta <- theta - alpha g / d

    ``beta`` is PyTorch's ``alpha`` and Keras' ``rho`` (default 0.9 as in Keras and the lecture;
    PyTorch's default is 0.99). eps sits outside the root, as in PyTorch.
    """

    defaults = {
        "lr": 0.01,
        "beta": 0.9,
        "eps": 1e-8,
        "momentum": 0.0,
        "centered": False,
        "weight_decay": 0.0,
    }

    def validate(self, h: dict) -> None:
        super().validate(h)
        for key in ("beta", "momentum"):
            value = self._value(h[key], 0)
            if not 0 <= value < 1:
                raise ValueError(f"RMSProp: {key} must be in [0, 1), got {value}")

    def update(self, theta, g, block, h, t):
        beta = h["beta"]
        r = self._state(block, "square_avg")
        d = np.multiply(g, g, out=self._scratch(block, "denominator"))
        d *= 1 - beta
        r *= beta
        r += d  # r <- beta r + (1 - beta) g^2
        if h["centered"]:
            gbar = self._state(block, "grad_avg")
            gbar *= beta
            gbar += np.multiply(g, 1 - beta, out=d)  # gbar <- beta gbar + (1 - beta) g
            np.multiply(gbar, gbar, out=d)
            np.subtract(r, d, out=d)
            np.maximum(d, 0, out=d)  # r - gbar^2 >= 0 in exact arithmetic; rounding can dip below
            np.sqrt(d, out=d)
        else:
            np.sqrt(r, out=d)
        d += h["eps"]
        step = np.divide(g, d, out=d)  # g / d
        if h["momentum"]:
            v = self._state(block, "momentum_buffer")
            v *= h["momentum"]
            v += step
            step = np.multiply(v, h["lr"], out=d)
        else:
            step *= h["lr"]
        theta -= step
