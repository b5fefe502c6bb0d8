"""Data: datasets, splits, the DataLoader, transforms and augmentation."""

from . import transforms
from .dataset import ArrayDataset, ConcatDataset, Dataset, Subset, random_split, train_dev_split
from .loader import DataLoader

__all__ = [
    "ArrayDataset", "ConcatDataset", "DataLoader", "Dataset", "Subset", "random_split",
    "train_dev_split", "transforms",
]  # fmt: skip
