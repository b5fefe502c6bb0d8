"""Optimizers (one file per algorithm, over flat parameter buffers) and learning-rate schedules."""

from .adagrad import AdaGrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSProp
from .sgd import SGD

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSProp"]
