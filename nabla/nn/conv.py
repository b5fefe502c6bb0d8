"""Convolution and pooling layers, with PyTorch's parameters, defaults and printing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import random
from ..autograd.dtypes import DEFAULT_FLOAT, as_dtype
from ..autograd.tensor import Tensor
from ..ops.conv import conv2d, pair
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .module import Module, Parameter

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) inputs; weight (out, in/groups, kh, kw).

    Default initialization (PyTorch's): weight and bias uniform in [-1/sqrt(fan_in),
    1/sqrt(fan_in)] with fan_in = in/groups * kh * kw (Kaiming-uniform with a = sqrt(5)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | Literal["same", "valid"] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: DTypeLike | None = None,
        generator: np.random.Generator | None = None,
    ):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "Conv2d: kernel_size")
        self.stride = pair(stride, "Conv2d: stride")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Conv2d: padding must be 'same', 'valid' or ints, got {padding!r}"
                )
            if padding == "same" and pair(stride, "Conv2d: stride") != (1, 1):
                raise ValueError("Conv2d: padding='same' needs stride 1")
            self.padding = padding
        else:
            self.padding = pair(padding, "Conv2d: padding", minimum=0)
        self.dilation = pair(dilation, "Conv2d: dilation")
        dtype = DEFAULT_FLOAT if dtype is None else as_dtype(dtype)
        rng = random.resolve(generator)
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        bound = 1 / math.sqrt(shape[1] * shape[2] * shape[3])
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor, *, relu: bool = False) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d({self.in_channels}, {self.out_channels}): expected input (N, "
                f"{self.in_channels}, H, W), got shape {x.shape}"
            )
        return conv2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            relu=relu,
        )

    def forward_relu(self, x: Tensor) -> Tensor:
        """``relu(self(x))`` as one fused operation (see ``Sequential``)."""
        return self.forward(x, relu=True)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += (
                f", padding={self.padding}"  # a pair, or 'same'/'valid' unquoted as torch prints it
            )
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class MaxPool2d(Module):
    """Maximum over each window; stride defaults to the kernel size."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            "dilation=1, ceil_mode=False"
        )


class AvgPool2d(Module):
    """Mean over each window; stride defaults to the kernel size."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        count_include_pad: bool = True,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.count_include_pad = padding, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average over an output_size grid of bins; ``AdaptiveAvgPool2d(1)`` is global pooling."""

    def __init__(self, output_size: int | tuple[int, int]):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
