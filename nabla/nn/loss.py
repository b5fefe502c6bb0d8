"""Loss modules: thin wrappers holding a loss function's options, named as in ``torch.nn``.

``loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1); loss = loss_fn(logits, labels)`` is the
same as calling ``nn.functional.cross_entropy`` with those options. See docs/losses.md for what
each loss is the negative log-likelihood of.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..autograd.tensor import Tensor
from ..ops import likelihood_losses as L
from ..ops.losses import cross_entropy
from .module import Module

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy over class logits; targets are class indices or probabilities."""

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return cross_entropy(logits, target, self.reduction, self.label_smoothing)


class NLLLoss(_Loss):
    """-log p[target] from log-probabilities (e.g. the output of LogSoftmax)."""

    def forward(self, log_probs: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return L.nll_loss(log_probs, target, self.reduction)


class MSELoss(_Loss):
    """Mean squared error (y - x)^2: the Gaussian NLL with fixed variance."""

    def forward(self, input: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return L.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error |y - x|: the Laplace NLL with fixed scale."""

    def forward(self, input: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return L.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """Quadratic within ``delta`` of the target, linear beyond (robust to outliers)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return L.huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities: the Bernoulli NLL."""

    def forward(self, probs: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return L.binary_cross_entropy(probs, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits, fused with the sigmoid and stable for any logit."""

    def __init__(self, reduction: str = "mean", pos_weight: Tensor | ArrayLike | None = None):
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def forward(self, logits: Tensor, target: Tensor | ArrayLike) -> Tensor:
        return L.binary_cross_entropy_with_logits(logits, target, self.reduction, self.pos_weight)


class GaussianNLLLoss(_Loss):
    """Gaussian NLL with a predicted variance: 0.5 (log var + (y - x)^2 / var)."""

    def __init__(self, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction)
        self.full, self.eps = full, eps

    def forward(self, input: Tensor, target: Tensor | ArrayLike, var: Tensor | ArrayLike) -> Tensor:
        return L.gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)
