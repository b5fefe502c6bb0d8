"""Data: datasets, splits, the DataLoader, transforms and augmentation."""

from . import datasets, download, synthetic, transforms
from .dataset import ArrayDataset, ConcatDataset, Dataset, Subset, random_split, train_dev_split
from .download import ChecksumError, DownloadError, fetch
from .idx import DataFormatError
from .loader import DataLoader

__all__ = [
    "ArrayDataset", "ChecksumError", "ConcatDataset", "DataFormatError", "DataLoader", "Dataset",
    "DownloadError", "Subset", "datasets", "download", "fetch", "random_split", "synthetic",
    "train_dev_split", "transforms",
]  # fmt: skip
