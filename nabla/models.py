"""Ready-made models: an MLP, LeNet and the CIFAR ResNets of He et al. (2016).

Each returns an ``nn.Module`` whose state_dict has the keys and shapes of the same architecture
written with ``torch.nn`` (so checkpoints move between the two).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import nn
from .autograd.tensor import Tensor

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """The activation module called ``name`` (one of ACTIVATIONS)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def mlp(
    sizes: Iterable[int], activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False
) -> nn.Sequential:
    """A multilayer perceptron: sizes = [inputs, hidden..., outputs].

    Each hidden layer is Linear -> [BatchNorm1d] -> activation -> [Dropout]; the last layer is a
    plain Linear producing logits.

    >>> mlp([784, 256, 10])
    Sequential(
      (0): Linear(in_features=784, out_features=256, bias=True)
      (1): ReLU()
      (2): Linear(in_features=256, out_features=10, bias=True)
    )
    """
    sizes = list(sizes)
    if len(sizes) < 2 or any(int(s) <= 0 for s in sizes):
        raise ValueError(
            f"mlp: sizes must be at least [inputs, outputs], all positive, got {sizes}"
        )
    layers = []
    for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(fan_in, fan_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(fan_out))
        layers.append(make_activation(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def lenet(num_classes: int = 10, in_channels: int = 1, activation: str = "relu") -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998) for 28x28 inputs, with max pooling and a modern activation:
    conv5x5(6, padding 2) - pool - conv5x5(16) - pool - 120 - 84 - classes."""
    act = make_activation
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2),
        act(activation),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        act(activation),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        act(activation),
        nn.Linear(120, 84),
        act(activation),
        nn.Linear(84, num_classes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut: out = relu(F(x) + shortcut(x)).

    The shortcut is the identity, or a 1x1 conv + BN projection when the shape changes (option B
    of He et al.); ``skip=False`` removes it, leaving a plain deep network.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = skip
        if skip and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # bn + ReLU and bn + shortcut + ReLU as fused operations: the same numbers, fewer passes
        out = self.bn1.forward_relu(self.conv1(x))
        return self.bn2.forward_relu(self.conv2(out), self.shortcut(x) if self.skip else None)


class ResNet(nn.Module):
    """CIFAR ResNet: conv3x3 - 3 stages of n blocks (width w, 2w, 4w; stride 2 between stages) -
    global average pooling - linear; depth = 6n + 2 (20, 32, 44, 56, 110)."""

    def __init__(
        self,
        depth: int = 20,
        width: int = 16,
        num_classes: int = 10,
        skip: bool = True,
        in_channels: int = 3,
    ):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"resnet: depth must be 6n + 2 (20, 32, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, channels = [], width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride, skip))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn.forward_relu(self.conv(x))
        x = self.pool(self.blocks(x))
        return self.fc(x.flatten(1))


def resnet(
    depth: int = 20, width: int = 16, num_classes: int = 10, skip: bool = True, in_channels: int = 3
) -> ResNet:
    """The CIFAR-style ResNet-``depth`` of He et al. (2016); ``skip=False`` drops the shortcuts."""
    return ResNet(depth, width, num_classes, skip, in_channels)
