"""The autograd engine: Tensor, Function, backward over the graph, grad modes, gradcheck."""

from .broadcast import sum_to
from .dtypes import bool_, float32, float64, int64
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor

__all__ = [
    "Function", "GradcheckError", "Tensor", "bool_", "enable_grad", "float32", "float64",
    "gradcheck", "int64", "is_grad_enabled", "no_grad", "set_grad_enabled", "sum_to",
]  # fmt: skip
