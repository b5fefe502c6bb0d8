"""Optimizers (one file per algorithm, over flat parameter buffers) and learning-rate schedules."""

from ..kernels import get_num_threads, set_num_threads
from . import scaling, schedules
from .adagrad import AdaGrad
from .adam import Adam, AdamW
from .lbfgs import LBFGS
from .optimizer import Optimizer
from .rmsprop import RMSProp
from .scaling import BatchSizeSchedule
from .sgd import SGD

__all__ = [
    "LBFGS", "SGD", "AdaGrad", "Adam", "AdamW", "BatchSizeSchedule", "Optimizer", "RMSProp",
    "get_num_threads", "scaling", "schedules", "set_num_threads",
]  # fmt: skip
