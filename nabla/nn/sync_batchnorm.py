"""SyncBatchNorm: batch normalization whose statistics span the global batch of all ranks.

In data-parallel training a plain BatchNorm normalizes each rank's share of the batch with that
share's own mean and variance (per-rank statistics, the default: cheap, and with shares of 32 or
more samples as good). SyncBatchNorm makes the result exactly that of one process seeing the
whole global batch of N = sum_r n_r values per channel:

    forward:   μ = (1/N) sum_r sum_i x_ri            (Allreduce of C sums and the count)
               σ² = (1/N) sum_r sum_i (x_ri - μ)²     (Allreduce of C sums: two passes, exact)
               x̂ = (x - μ) / sqrt(σ² + ε),  y = w x̂ + b
    backward:  dx = (1/sqrt(σ² + ε)) (dx̂ - mean_N(dx̂) - x̂ mean_N(dx̂ x̂)),  dx̂ = g w
               with both means over the global batch (Allreduce of 2C sums)

so three small allreduces per layer and step. The running variance takes the unbiased global
variance σ² N / (N - 1). The weight and bias gradients stay local sums: the trainer's gradient
allreduce averages them with every other gradient. Outside distributed training (one rank, or
eval mode) it is exactly :class:`~nabla.nn.BatchNorm1d` / ``BatchNorm2d``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from .. import distributed
from ..autograd.tensor import Tensor
from ..ops.normalization import _batch_norm_train
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, _BatchNorm


def _global_means(totals: np.ndarray, count: int) -> np.ndarray:
    """mean(dx̂) and mean(dx̂ x̂) over the global batch of ``count`` values per channel, from this
    rank's (2, C) sums of dx̂ and dx̂ x̂."""
    return (distributed.allreduce_sum_(totals.astype(np.float64)) / count).astype(totals.dtype)


def _global_statistics(
    x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int, Callable[[np.ndarray], np.ndarray]]:
    """(mean, biased variance, values per channel, backward's means) over all ranks' batches."""
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    totals = distributed.allreduce_sum_(
        np.append(x.sum(axis=axes, dtype=np.float64), x.size // x.shape[1])
    )
    count = int(totals[-1])
    if count <= 1:
        raise ValueError(
            f"SyncBatchNorm: expected more than 1 value per channel over all ranks, got {count}"
        )
    mean = totals[:-1] / count
    squares = ((x - mean.astype(x.dtype).reshape(shape)) ** 2).sum(axis=axes, dtype=np.float64)
    var = distributed.allreduce_sum_(squares) / count
    means = functools.partial(_global_means, count=count)
    return mean.astype(x.dtype), var.astype(x.dtype), count, means


class SyncBatchNorm(_BatchNorm):
    """Batch normalization over the global batch of all ranks, for (N, C, ...) input.

    Same arguments, parameters and state_dict as ``BatchNorm1d``/``BatchNorm2d`` (and
    ``torch.nn.SyncBatchNorm``); the statistics of a training batch are allreduced over the ranks
    of :mod:`nabla.distributed` (see the module docstring). ``SyncBatchNorm.convert(model)``
    swaps every BatchNorm of a model for one, keeping its parameters and running statistics.
    """

    _ndims = (2, 3, 4, 5)
    _expected = "(N, C, ...)"

    def _check_batch_size(self, x: Tensor, name: str) -> None:
        if not (self.training and distributed.active()):  # else: checked over all ranks
            super()._check_batch_size(x, name)

    def _normalize(
        self,
        x: Tensor,
        use_batch_stats: bool,
        momentum: float | None,
        residual: Tensor | None = None,
        relu: bool = False,
        counter: Tensor | None = None,
    ) -> Tensor:
        if not (self.training and distributed.active()):
            return super()._normalize(x, use_batch_stats, momentum, residual, relu, counter)
        return _batch_norm_train(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            momentum,
            self.eps,
            _global_statistics,
            residual,
            relu,
            counter,
        )

    @classmethod
    def convert(cls, module: Module) -> Module:
        """Replace every BatchNorm1d/BatchNorm2d inside ``module`` (or ``module`` itself) by a
        SyncBatchNorm sharing its parameters and buffers; returns the converted module."""
        if isinstance(module, (BatchNorm1d, BatchNorm2d)):
            owned = (module.weight, module.running_mean)
            dtype = next((t.data.dtype for t in owned if t is not None), None)
            sync = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                dtype,
                bias=module.bias is not None,
            )
            for name in ("weight", "bias"):
                if getattr(module, name) is not None:
                    sync.register_parameter(name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync.register_buffer(name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert(child)
            if converted is not child:
                setattr(module, name, converted)
        return module


__all__ = ["SyncBatchNorm"]
