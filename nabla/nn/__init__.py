"""Neural-network building blocks. For now: the functional interface (``nabla.nn.functional``)."""

from . import functional

__all__ = ["functional"]
