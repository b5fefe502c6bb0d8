"""Batch transforms: preprocessing and vectorized augmentation (see ``base`` for the protocol)."""

from .augment import (
    GaussianNoise,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomScale,
    RandomTranslate,
    RandomVerticalFlip,
)
from .base import Compose, Context, Transform
from .mixing import CutMix, Mixup
from .preprocess import MinMaxScale, OneHot, Standardize

__all__ = [
    "Compose", "Context", "CutMix", "GaussianNoise", "MinMaxScale", "Mixup", "OneHot",
    "RandomCrop", "RandomErasing", "RandomHorizontalFlip", "RandomResizedCrop", "RandomRotation",
    "RandomScale", "RandomTranslate", "RandomVerticalFlip", "Standardize", "Transform",
]  # fmt: skip
