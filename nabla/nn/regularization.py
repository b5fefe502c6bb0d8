"""Regularization helpers: the L2 penalty and ensembles.

The L2 penalty is the negative log of a Gaussian prior on the weights (MAP estimation):
-log N(w; 0, tau^2 I) = ||w||^2 / (2 tau^2) + const. Adding ``lam * l2_penalty(model)`` to the
loss adds ``lam * w`` to every weight's gradient, which is exactly coupled weight decay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..autograd.tensor import Tensor
from ..ops.activations import softmax
from ..ops.shape import stack
from .containers import ModuleList
from .module import Module


def l2_penalty(module: Module, include_biases: bool = False) -> Tensor:
    """0.5 * sum of squared trainable weights, a differentiable scalar.

    Only parameters that require grad count (frozen layers are not regularized). By default
    1-D parameters (biases, normalization scales and shifts) are left out, as is customary.

    >>> from nabla import nn
    >>> layer = nn.Linear(2, 1)
    >>> _ = layer.weight.data.fill(3.0)
    >>> float(nn.l2_penalty(layer))  # 0.5 * (9 + 9)
    9.0
    """
    terms = [
        (p * p).sum()
        for p in module.parameters()
        if p.requires_grad and (include_biases or p.ndim > 1)
    ]
    if not terms:
        raise ValueError(
            f"l2_penalty: {type(module).__name__} has no trainable weights to penalize"
        )
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return 0.5 * total


class Ensemble(Module):
    """Average the predictions of several models.

    ``mode="probs"`` (default) averages the softmax probabilities along ``dim`` and returns them
    (use ``nll_loss(probs.log(), y)`` for a loss); ``mode="logits"`` averages the raw outputs
    (for regression, or a geometric mean of the class probabilities after a softmax).
    """

    def __init__(self, models: Iterable[Module], mode: str = "probs", dim: int = -1):
        super().__init__()
        if mode not in ("probs", "logits"):
            raise ValueError(f"Ensemble: mode must be 'probs' or 'logits', got {mode!r}")
        self.models = ModuleList(models)
        if len(self.models) == 0:
            raise ValueError("Ensemble: needs at least one model")
        self.mode, self.dim = mode, dim

    def forward(self, x: Any) -> Tensor:
        outputs = [model(x) for model in self.models]
        if self.mode == "probs":
            outputs = [softmax(o, self.dim) for o in outputs]
        return stack(outputs, axis=0).mean(axis=0)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
