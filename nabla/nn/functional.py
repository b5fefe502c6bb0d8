"""Stateless functions on tensors, named as in ``torch.nn.functional``.

The fused operations (``linear``, ``cross_entropy``) have one hand-written backward each, so a
layer or a loss costs one graph node instead of several.
"""

from ..ops.activations import (
    elu,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from ..ops.likelihood_losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    gaussian_nll_loss,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
)
from ..ops.linalg import linear
from ..ops.losses import cross_entropy

__all__ = [
    "cross_entropy", "elu", "gelu", "leaky_relu", "linear", "log_softmax", "relu", "sigmoid",
    "softmax", "softplus", "tanh",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "gaussian_nll_loss", "huber_loss",
    "l1_loss", "mse_loss", "nll_loss",
]  # fmt: skip
