"""Stateless functions on tensors, named as in ``torch.nn.functional``.

The fused operations (``linear``, ``conv2d``, the pools and the losses) have one hand-written
backward each, so a layer or a loss costs one graph node instead of several.
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
from ..ops.conv import conv2d
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
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .normalization import batch_norm, layer_norm

__all__ = [
    "cross_entropy", "elu", "gelu", "leaky_relu", "linear", "log_softmax", "relu", "sigmoid",
    "softmax", "softplus", "tanh",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "gaussian_nll_loss", "huber_loss",
    "l1_loss", "mse_loss", "nll_loss",
    "adaptive_avg_pool2d", "avg_pool2d", "conv2d", "max_pool2d",
    "batch_norm", "layer_norm",
]  # fmt: skip
