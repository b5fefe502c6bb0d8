"""Normalization layers: BatchNorm1d, BatchNorm2d and LayerNorm, as in PyTorch.

The modules hold the parameters and running statistics and check their input; the math and
its gradients are in :mod:`nabla.ops.normalization` (``batch_norm``, ``layer_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..autograd.dtypes import DEFAULT_FLOAT, as_dtype
from ..autograd.tensor import Tensor
from ..ops.normalization import _check_batch_size, batch_norm, layer_norm
from .module import Module, Parameter

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    _expected: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: DTypeLike | None = None,
        *,
        bias: bool = True,
    ):
        super().__init__()
        if num_features <= 0:
            raise ValueError(
                f"{type(self).__name__}: num_features must be positive, got {num_features}"
            )
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = DEFAULT_FLOAT if dtype is None else as_dtype(dtype)
        self.register_parameter(
            "weight", Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        )
        self.register_parameter(
            "bias", Parameter(np.zeros(num_features, dtype=dtype)) if affine and bias else None
        )
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features), dtype=dtype))
            self.register_buffer("running_var", Tensor(np.ones(num_features), dtype=dtype))
            self.register_buffer("num_batches_tracked", Tensor(0, dtype="int64"))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data.fill(0)
            self.running_var.data.fill(1)
            self.num_batches_tracked.data.fill(0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data.fill(1)
        if self.bias is not None:
            self.bias.data.fill(0)

    def forward(self, x: Tensor, *, residual: Tensor | None = None, relu: bool = False) -> Tensor:
        name = f"{type(self).__name__}({self.num_features})"
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            expected = self._expected.replace("C", str(self.num_features))
            raise ValueError(f"{name}: expected input {expected}, got shape {x.shape}")
        # As torch: batch statistics in training, and also in eval when none are tracked.
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            self._check_batch_size(x, name)
        # The operation counts the batch (momentum=None: m = 1/t makes the running statistics
        # the plain mean over all batches) and updates the running statistics: inside it, a
        # compiled step (nb.compile) replays them. The buffers are None when untracked.
        counter = self.num_batches_tracked if self.training and self.track_running_stats else None
        return self._normalize(x, use_batch_stats, self.momentum, residual, relu, counter)

    def forward_relu(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """``relu(self(x) + residual)`` (``relu(self(x))`` without one) as one fused operation:
        the end of a ResNet block, one pass over memory instead of three."""
        return self.forward(x, residual=residual, relu=True)

    def _check_batch_size(self, x: Tensor, name: str) -> None:
        _check_batch_size(x, name)

    def _normalize(
        self,
        x: Tensor,
        use_batch_stats: bool,
        momentum: float | None,
        residual: Tensor | None = None,
        relu: bool = False,
        counter: Tensor | None = None,
    ) -> Tensor:
        return batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
            residual=residual,
            relu=relu,
            num_batches_tracked=counter,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization (Ioffe & Szegedy 2015) of (N, C) or (N, C, L) input, per channel C.

    In training each channel c is normalized by its batch mean and *biased* variance over the
    N (and L) axes, y = w_c (x - μ_c) / sqrt(σ²_c + ε) + b_c, and the running statistics are
    updated with ``momentum`` m:

        running_mean <- (1 - m) running_mean + m μ_c
        running_var  <- (1 - m) running_var  + m σ²_c n / (n - 1)    (the *unbiased* variance)

    where n is the number of elements per channel; ``momentum=None`` uses m = 1 / (batches seen),
    a cumulative average. ``num_batches_tracked`` counts training batches. In eval mode the
    running statistics normalize instead. Parameters w = ``weight`` (ones) and b = ``bias``
    (zeros) exist when ``affine`` (b only with ``bias=True``, a keyword as in torch 2.13); the
    state_dict matches ``torch.nn.BatchNorm1d``'s.

    >>> import nabla as nb
    >>> bn = BatchNorm1d(2)
    >>> y = bn(nb.tensor([[1.0, 10.0], [3.0, 30.0]]))
    >>> y.data.round(4).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> [round(v, 4) for v in bn.running_mean.tolist()]  # 0.9 * 0 + 0.1 * (2, 20)
    [0.2, 2.0]
    >>> [round(v, 4) for v in bn.running_var.tolist()]  # 0.9 * 1 + 0.1 * (2, 200), unbiased
    [1.1, 20.9]
    """

    _ndims = (2, 3)
    _expected = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization (Ioffe & Szegedy 2015) of (N, C, H, W) input, per channel C.

    Exactly :class:`BatchNorm1d`'s math with the statistics over the N, H and W axes: biased
    variance to normalize, unbiased variance (n = N H W) in ``running_var``.

    >>> import nabla as nb
    >>> bn = BatchNorm2d(3)
    >>> bn(nb.randn(4, 3, 5, 5)).shape
    (4, 3, 5, 5)
    """

    _ndims = (4,)
    _expected = "(N, C, H, W)"


class LayerNorm(Module):
    """Layer normalization (Ba, Kiros & Hinton 2016) over the trailing ``normalized_shape`` axes.

    Each example is standardized by the mean and *biased* variance of its last
    len(normalized_shape) axes (n = prod(normalized_shape) elements), then mapped elementwise:
    y = w (x - μ) / sqrt(σ² + ε) + b, with w = ``weight`` (ones) and b = ``bias`` (zeros) of shape
    ``normalized_shape``. Unlike batch norm it keeps no running statistics: train and eval agree.

    >>> import nabla as nb
    >>> ln = LayerNorm(2)
    >>> ln(nb.tensor([[1.0, 3.0], [0.0, -4.0]])).data.round(4).tolist()
    [[-1.0, 1.0], [1.0, -1.0]]
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: DTypeLike | None = None,
    ):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        if any(n <= 0 for n in self.normalized_shape):
            raise ValueError(f"LayerNorm: sizes must be positive, got {self.normalized_shape}")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        dtype = DEFAULT_FLOAT if dtype is None else as_dtype(dtype)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "batch_norm", "layer_norm"]
