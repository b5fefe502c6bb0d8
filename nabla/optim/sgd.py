"""Stochastic gradient descent, with classical or Nesterov momentum."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class SGD(Optimizer):
    r"""Gradient descent on minibatch gradients, optionally with momentum.

    With learning rate alpha, momentum beta and gradient g (plus ``weight_decay * theta``):

    .. code-block:: text

        plain:     theta <- theta - alpha g
        momentum:  v <- beta v - alpha g;      theta <- theta + v
        Nesterov:  v <- beta v - alpha g;      theta <- theta + beta v - alpha g

    The Nesterov line is the look-ahead method (Nesterov 1983; Sutskever et al. 2013),
    v <- beta v - alpha grad f(theta + beta v), theta <- theta + v, rewritten in terms of the
    look-ahead point theta + beta v, so that only the gradient at the current parameters is needed.

    The velocity v carries the learning rate, as in the lecture. PyTorch keeps v' = beta v' + g and
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

    defaults = {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}

    def validate(self, h: dict) -> None:
        super().validate(h)
        beta = self._value(h["momentum"], 0)
        if not 0 <= beta < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {beta}")
        if h["nesterov"] and not callable(h["momentum"]) and beta == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def update(self, theta, g, block, h, t):
        alpha, beta = h["lr"], h["momentum"]
        step = np.multiply(g, alpha, out=self._scratch(block, "step"))  # alpha g
        if beta == 0 and "velocity" not in block.pack.state:  # plain SGD (a momentum schedule
            theta -= step  # that reaches 0 keeps following the momentum formula below)
            return
        v = self._state(block, "velocity")
        v *= beta
        v -= step  # v <- beta v - alpha g
        if h["nesterov"]:
            look_ahead = np.multiply(v, beta, out=self._scratch(block, "look_ahead"))
            look_ahead -= step
            theta += look_ahead  # theta <- theta + beta v - alpha g
        else:
            theta += v
