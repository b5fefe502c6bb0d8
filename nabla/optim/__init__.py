"""Optimizers (one file per algorithm, over flat parameter buffers) and learning-rate schedules.

``Adagrad`` and ``RMSprop`` are PyTorch's spellings (``RMSprop`` with PyTorch's default decay
rate 0.99; see :class:`.rmsprop.RMSprop`)."""

from ..kernels import get_num_threads, set_num_threads
from . import registry, scaling, schedules

# isort: off
# This order registers the optimizers (nabla/optim/registry.py) as the lecture teaches them: it is
# the order of `nabla train --help` and of the lab's presets and legends.
from .sgd import SGD
from .adagrad import AdaGrad, Adagrad
from .rmsprop import RMSProp, RMSprop
from .adam import Adam, AdamW

# isort: on
import importlib as _importlib
import pkgutil as _pkgutil

from .lbfgs import LBFGS
from .optimizer import Optimizer
from .scaling import BatchSizeSchedule

__all__ = [
    "LBFGS", "SGD", "AdaGrad", "Adagrad", "Adam", "AdamW", "BatchSizeSchedule", "Optimizer",
    "RMSProp", "RMSprop",
    "get_num_threads", "registry", "scaling", "schedules", "set_num_threads",
]  # fmt: skip

# An optimizer added as one more file here registers itself without an edit to this file.
for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")
