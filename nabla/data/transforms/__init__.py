"""Batch transforms: preprocessing and vectorized augmentation (see ``base`` for the protocol)."""

from .base import Compose, Context, Transform

__all__ = ["Compose", "Context", "Transform"]
