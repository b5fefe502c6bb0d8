"""Neural-network building blocks with PyTorch's names and state_dict layout."""

from . import functional, init
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .containers import ModuleDict, ModuleList, Sequential
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from .layers import Dropout, Flatten, Identity, Linear
from .loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    GaussianNLLLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from .module import IncompatibleKeys, Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .regularization import Ensemble, l2_penalty
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "GaussianNLLLoss", "HuberLoss", "L1Loss",
    "MSELoss", "NLLLoss", "Ensemble", "l2_penalty",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "SyncBatchNorm",
    "AdaptiveAvgPool2d", "AvgPool2d", "Conv2d", "MaxPool2d",
    "ELU", "GELU", "Dropout", "Flatten", "Identity", "IncompatibleKeys", "LeakyReLU", "Linear",
    "LogSoftmax", "Module", "ModuleDict", "ModuleList", "Parameter", "ReLU", "Sequential",
    "Sigmoid", "Softmax", "Softplus", "Tanh", "functional", "init",
]  # fmt: skip
