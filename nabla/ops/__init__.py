"""The differentiable operations, one module per family, and their binding as Tensor methods."""

from . import methods
from .activations import elu, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from .elementwise import (
    abs,
    add,
    astype,
    clip,
    cos,
    div,
    eq,
    exp,
    ge,
    gt,
    le,
    log,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    sin,
    sqrt,
    sub,
    where,
)
from .linalg import linear, matmul
from .losses import cross_entropy
from .reduce import argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .shape import (
    broadcast_to,
    cat,
    concatenate,
    expand_dims,
    flatten,
    getitem,
    pad,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
)

__all__ = [
    "abs", "add", "argmax", "argmin", "astype", "broadcast_to", "cat", "clip", "concatenate",
    "cos", "cross_entropy", "div", "elu", "eq", "exp", "expand_dims", "flatten", "ge", "gelu",
    "getitem", "gt", "le", "leaky_relu", "linear", "log", "log_softmax", "logsumexp", "lt",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg", "pad", "permute",
    "pow", "relu", "reshape", "sigmoid", "sin", "softmax", "softplus", "split", "sqrt", "squeeze",
    "stack", "std", "sub", "sum", "swapaxes", "tanh", "transpose", "unsqueeze", "var", "where",
]  # fmt: skip
