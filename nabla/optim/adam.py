"""Adam and AdamW: momentum on the gradient and RMSProp scaling, with bias correction."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels
from .flat import Stretch, flush_subnormals
from .optimizer import DECAY, EPS, Optimizer
from .registry import Preset
from .saving import value_at

BIAS_CORRECTIONS = ("explicit", "folded", "none")


class Adam(Optimizer):
    r"""Adam (Kingma and Ba 2014), with AMSGrad (Reddi et al. 2018) as an option.

    .. code-block:: text

        s <- beta1 s + (1 - beta1) g             first moment (momentum)
        r <- beta2 r + (1 - beta2) g * g         second moment
        AMSGrad:  rmax <- max(rmax, r), used in place of r below

        bias_correction="explicit" (the paper's Algorithm 1, PyTorch):
            s_hat = s / (1 - beta1^t);  r_hat = r / (1 - beta2^t)
            theta <- theta - alpha s_hat / (sqrt(r_hat) + eps)
        bias_correction="folded" (the paper's section 2 form, Keras and scikit-learn):
            alpha_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t)
            theta <- theta - alpha_t s / (sqrt(r) + eps)
        bias_correction="none": theta <- theta - alpha s / (sqrt(r) + eps)

    s and r start at 0, so early on they are biased towards 0; dividing by 1 - beta^t removes
    that bias. The two corrected forms differ only in where eps sits (the folded form's eps is
    eps_hat = eps sqrt(1 - beta2^t) in the explicit form's terms). Without correction the first
    step is alpha (1 - beta1) / sqrt(1 - beta2) = 3.16 alpha for the default betas.

    PyTorch's ``betas=(b1, b2)`` is spelled ``beta1=b1, beta2=b2``. The state per parameter, with
    PyTorch's names: ``exp_avg`` (s), ``exp_avg_sq`` (r) and, with amsgrad, ``max_exp_avg_sq``.
    """

    name = "adam"
    presets = {"adam": Preset({}, "#9467bd")}
    descriptions = {
        "beta1": "first-moment decay β1: s <- β1 s + (1 - β1) g",
        "beta2": "second-moment decay β2: r <- β2 r + (1 - β2) g²",
        "eps": EPS["eps"],
        **DECAY,
        "amsgrad": "AMSGrad: divide by the largest second moment so far (Reddi et al. 2018)",
        "bias_correction": f"how the moments' bias is corrected: {', '.join(BIAS_CORRECTIONS)}",
    }
    defaults = {
        "lr": 1e-3,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
        "amsgrad": False,
        "bias_correction": "explicit",
    }

    @classmethod
    def validate(cls, h: dict) -> None:
        super().validate(h)
        for key in ("beta1", "beta2"):
            value = value_at(h[key], 0)
            if not 0 <= value < 1:
                raise ValueError(f"{cls.__name__}: {key} must be in [0, 1), got {value}")
        if h["bias_correction"] not in BIAS_CORRECTIONS:
            raise ValueError(
                f"{cls.__name__}: bias_correction must be one of {BIAS_CORRECTIONS}, "
                f"got {h['bias_correction']!r}"
            )

    def buffers(self, h: dict, saved: dict | None = None) -> dict[str, bool]:
        amsgrad = {"max_exp_avg_sq": True} if h["amsgrad"] else {}
        return {"exp_avg": True, "exp_avg_sq": True, **amsgrad}  # s, r (and r_max)

    @staticmethod
    def _step_size_and_eps(h: dict, t: int) -> tuple[float, float]:
        """alpha_t and eps such that the update is theta <- theta - alpha_t s / (sqrt(r) + eps)."""
        alpha, eps = h["lr"], h["eps"]
        root2, correction1 = math.sqrt(1 - h["beta2"] ** t), 1 - h["beta1"] ** t
        if h["bias_correction"] == "explicit":
            # s_hat / (sqrt(r_hat) + eps) = (sqrt(c2) / c1) s / (sqrt(r) + eps sqrt(c2)) with
            # c = 1 - beta^t: the same number, computed with one pass less over the buffers.
            return alpha * root2 / correction1, eps * root2
        if h["bias_correction"] == "folded":
            return alpha * root2 / correction1, eps  # alpha_t, and eps is the paper's eps_hat
        return alpha, eps

    def reference(self, theta: np.ndarray, g: np.ndarray, state: Stretch, h: dict, t: int) -> None:
        beta1, beta2 = h["beta1"], h["beta2"]
        s, r = state.get("exp_avg"), state.get("exp_avg_sq")
        s *= beta1
        s += g * (1 - beta1)  # s <- beta1 s + (1 - beta1) g
        r *= beta2
        r += (g * g) * (1 - beta2)  # r <- beta2 r + (1 - beta2) g^2
        flush_subnormals(s, r)
        if h["amsgrad"]:
            r_max = state.get("max_exp_avg_sq")
            r = np.maximum(r_max, r, out=r_max)
        step_size, eps = self._step_size_and_eps(h, t)
        theta -= (s / (np.sqrt(r) + eps)) * step_size

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
        f, beta1, beta2 = theta.dtype.type, h["beta1"], h["beta2"]
        amsgrad = bool(h["amsgrad"])
        r_max = state.get("max_exp_avg_sq") if amsgrad else np.empty(0, theta.dtype)
        step_size, eps = self._step_size_and_eps(h, t)
        kernels.kernel("updates.adam", theta.size)(
            theta,
            g,
            state.get("exp_avg"),
            state.get("exp_avg_sq"),
            r_max,
            f(step_size),
            f(beta1),
            f(1 - beta1),
            f(beta2),
            f(1 - beta2),
            f(eps),
            f(weight_decay),
            f(decay),
            amsgrad,
            np.finfo(theta.dtype).tiny,
        )


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov and Hutter 2019).

    .. code-block:: text

        theta <- theta - alpha lambda theta        (lambda = weight_decay, before the Adam step)
        theta <- Adam step on the gradient of the loss alone

    Unlike L2 regularization (``Adam(weight_decay=...)``, which adds lambda theta to g and so
    gets rescaled by the adaptive denominator), the decay shrinks every weight by the same factor.
    Default weight_decay 0.01, as in PyTorch.
    """

    name = "adamw"
    presets: dict = {}  # on the lab's 2-D functions, without weight decay, it is Adam
    defaults = {**Adam.defaults, "weight_decay": 1e-2, "decoupled_weight_decay": True}

    @classmethod
    def validate(cls, h: dict) -> None:
        super().validate(h)
        if not h["decoupled_weight_decay"]:
            raise ValueError(
                "AdamW: decoupled_weight_decay=False is Adam with L2; use Adam(weight_decay=...)"
            )
