"""nabla: a readable deep-learning framework and optimizer lab on NumPy.

>>> import nabla as nb
>>> x = nb.tensor([[1.0, 2.0]], requires_grad=True)
>>> y = (x @ nb.tensor([[2.0], [1.0]])).relu().sum()
>>> y.backward()
>>> x.grad
array([[2., 1.]], dtype=float32)
"""

# First, before anything imports NumPy: the runtime sets how long OpenBLAS's threads spin.
from .kernels import runtime as _runtime

# isort: split
from . import models, nn, ops
from .autograd import (
    Function,
    GradcheckError,
    Tensor,
    bool_,
    enable_grad,
    float32,
    float64,
    gradcheck,
    int64,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .creation import (
    arange,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from .jit import compile
from .kernels import get_num_threads, set_num_threads
from .ops import *
from .random import manual_seed
from .serialization import CheckpointError, load, load_metadata, save
from .state import load_state, save_state

__version__ = "0.1.0"
