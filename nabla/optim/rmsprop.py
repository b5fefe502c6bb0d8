"""RMSProp: AdaGrad with a moving average instead of a sum, so old gradients are forgotten."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .flat import Stretch, flush_subnormals
from .optimizer import DECAY, EPS, Optimizer
from .registry import Preset
from .saving import value_at


class RMSProp(Optimizer):
    r"""RMSProp (Hinton, lecture 6e of Neural Networks for Machine Learning, 2012).

    .. code-block:: text

        r <- beta r + (1 - beta) g * g
        centered:  gbar <- beta gbar + (1 - beta) g;   d = sqrt(r - gbar^2) + eps
        else:      d = sqrt(r) + eps
        momentum:  v <- momentum v + g / d;  theta <- theta - alpha v
        else:      theta <- theta - alpha g / d

    ``beta`` is PyTorch's ``alpha`` and Keras' ``rho`` (default 0.9 as in Keras and the lecture;
    PyTorch's default is 0.99; ``alpha=`` is accepted as its name, and ``RMSprop`` is this class
    with PyTorch's default). eps sits outside the root, as in PyTorch; ``eps_inside_sqrt=True``
    puts it inside, d = sqrt(r + eps) (centered: sqrt(r - gbar^2 + eps)), as Keras and Optax do.
    The state, with PyTorch's names: ``square_avg`` (r), ``grad_avg`` (gbar, centered only) and
    ``momentum_buffer`` (v, with momentum only).
    """

    name = "rmsprop"
    presets = {"rmsprop": Preset({}, "#ff7f0e")}
    descriptions = {
        "beta": "decay rate β of the mean square: r <- βr + (1 - β)g² (PyTorch's alpha)",
        **EPS,
        "momentum": "momentum on the scaled step (0: none)",
        "centered": "divide by the estimated variance of g instead of its mean square",
        **DECAY,
    }
    defaults = {
        "lr": 0.01,
        "beta": 0.9,
        "eps": 1e-8,
        "momentum": 0.0,
        "centered": False,
        "eps_inside_sqrt": False,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
    }

    pytorch_aliases = {"alpha": "beta"}

    @classmethod
    def validate(cls, h: dict) -> None:
        super().validate(h)
        for key in ("beta", "momentum"):
            value = value_at(h[key], 0)
            if not 0 <= value < 1:
                raise ValueError(f"{cls.__name__}: {key} must be in [0, 1), got {value}")

    def buffers(self, h: dict, saved: dict | None = None) -> dict[str, bool]:
        # r always, gbar when centered, v optional (as SGD's velocity: momentum may have been
        # switched on mid-run, and with momentum 0 a buffer acts as none)
        centered = {"grad_avg": True} if h["centered"] else {}
        return {"square_avg": True, **centered, "momentum_buffer": False}

    def reference(self, theta: np.ndarray, g: np.ndarray, state: Stretch, h: dict, t: int) -> None:
        beta, eps = h["beta"], h["eps"]
        r = state.get("square_avg")
        r *= beta
        r += (g * g) * (1 - beta)  # r <- beta r + (1 - beta) g^2
        flush_subnormals(r)
        if h["centered"]:
            gbar = state.get("grad_avg")
            gbar *= beta
            gbar += g * (1 - beta)  # gbar <- beta gbar + (1 - beta) g
            flush_subnormals(gbar)
            # r - gbar^2 >= 0 in exact arithmetic; rounding can dip below
            variance = np.maximum(r - gbar * gbar, 0)
        else:
            variance = r
        d = np.sqrt(variance + eps) if h["eps_inside_sqrt"] else np.sqrt(variance) + eps
        step = g / d
        if self._momentum(h, state):
            v = state.get("momentum_buffer")
            v *= h["momentum"]
            v += step  # v <- momentum v + g / d
            flush_subnormals(v)
            step = v
        theta -= step * h["lr"]

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
        f, beta, empty = theta.dtype.type, h["beta"], np.empty(0, theta.dtype)
        gbar = state.get("grad_avg") if h["centered"] else empty
        momentum = self._momentum(h, state)
        v = state.get("momentum_buffer") if momentum else empty
        kernels.kernel("updates.rmsprop", theta.size)(
            theta,
            g,
            state.get("square_avg"),
            gbar,
            v,
            f(h["lr"]),
            f(beta),
            f(1 - beta),
            f(h["eps"]),
            f(h["momentum"]),
            f(weight_decay),
            f(decay),
            bool(h["centered"]),
            momentum,
            bool(h["eps_inside_sqrt"]),
            np.finfo(theta.dtype).tiny,
        )

    @staticmethod
    def _momentum(h: dict, state: Stretch) -> bool:
        return bool(h["momentum"]) or "momentum_buffer" in state


class RMSprop(RMSProp):
    """RMSProp under PyTorch's name and with PyTorch's default decay rate, ``alpha`` (= beta)
    0.99, so that ``optim.RMSprop(params, lr=0.01)`` ported from PyTorch runs PyTorch's algorithm
    (``RMSProp`` keeps the lecture's and Keras' 0.9). Everything else is RMSProp's.

    >>> import nabla as nb
    >>> RMSprop([nb.zeros(2, requires_grad=True)], lr=0.01).param_groups[0]["beta"]
    0.99
    """

    defaults = {**RMSProp.defaults, "beta": 0.99}
