"""Optimizers (one file per algorithm, over flat parameter buffers) and learning-rate schedules.

``Adagrad`` and ``RMSprop`` are PyTorch's spellings (``RMSprop`` with PyTorch's default decay
rate 0.99; see :class:`.rmsprop.RMSprop`)."""

from ..kernels import get_num_threads, set_num_threads
from . import scaling, schedules
from .adagrad import AdaGrad, Adagrad
from .adam import Adam, AdamW
from .lbfgs import LBFGS
from .optimizer import Optimizer
from .rmsprop import RMSProp, RMSprop
from .scaling import BatchSizeSchedule
from .sgd import SGD

__all__ = [
    "LBFGS", "SGD", "AdaGrad", "Adagrad", "Adam", "AdamW", "BatchSizeSchedule", "Optimizer",
    "RMSProp", "RMSprop",
    "get_num_threads", "scaling", "schedules", "set_num_threads",
]  # fmt: skip
