"""Preprocessing: deterministic transforms whose statistics are fitted on training data.

``Standardize`` and ``MinMaxScale`` learn their statistics with ``fit`` on the training set
only, then apply the same affine map to every batch (train, dev, test), as scikit-learn's
scalers. Statistics are computed in float64 and applied in the batch's float dtype.

- ``per="channel"``: one statistic per channel, over all other axes (axis 1 of NCHW images;
  for (N, D) features, channel and feature coincide);
- ``per="feature"``: one statistic per value of a sample (shape x.shape[1:]).

>>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
>>> s = Standardize().fit(x)
>>> s
Standardize(per='channel', mean=[2.0, 20.0], std=[1.0, 10.0])
>>> s(x)[0]
array([[-1., -1.],
       [ 1.,  1.]], dtype=float32)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Transform

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ..dataset import DatasetLike
    from .base import Context

_PER = ("channel", "feature")


def _training_inputs(data: ArrayLike | DatasetLike) -> np.ndarray:
    """The inputs of an array or a dataset (``.x``, else its samples stacked)."""
    if isinstance(data, np.ndarray):
        return data
    x = getattr(data, "x", None)
    if x is None and hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        x = np.stack([np.asarray(data[i][0]) for i in range(len(data))])
    return np.asarray(data if x is None else x)


class _Fitted(Transform):
    """An affine map x -> (x - shift) / scale with statistics per channel or per feature."""

    _stats: tuple[str, ...] = ()

    def __init__(self, per: str):
        if per not in _PER:
            raise ValueError(f"{type(self).__name__}: per must be one of {_PER}, got {per!r}")
        self.per = per

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        if x.ndim < 2:
            raise ValueError(
                f"{type(self).__name__}: expected a batch of shape (N, ...) with ndim >= 2, "
                f"got {x.shape}"
            )
        return (0,) if self.per == "feature" else (0, *range(2, x.ndim))

    def _shape(self, x: np.ndarray) -> tuple[int, ...]:
        """The statistics' shape for a batch x."""
        return x.shape[1:] if self.per == "feature" else (x.shape[1],)

    def _broadcast(self, stat: np.ndarray, x: np.ndarray) -> np.ndarray:
        expected = self._shape(x)
        if stat.size != 1 and stat.shape != expected:
            raise ValueError(
                f"{type(self).__name__}: fitted {self.per} statistics of shape {stat.shape} do "
                "not fit "
                f"a batch of shape {x.shape} (expected statistics of shape {expected})"
            )
        if self.per == "channel" and stat.size != 1:
            stat = stat.reshape(-1, *[1] * (x.ndim - 2))
        return stat

    def _affine(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if any(getattr(self, name) is None for name in self._stats):
            raise RuntimeError(
                f"{type(self).__name__}: not fitted; call .fit(training data) first "
                f"(or give {' and '.join(self._stats)})"
            )
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        shift, scale = self._affine(x)
        shift, scale = self._broadcast(shift, x), self._broadcast(scale, x)
        return ((x - shift.astype(dtype)) / scale.astype(dtype)).astype(dtype, copy=False), y

    def get_config(self) -> dict:
        config = {"per": self.per}
        config.update({k: v for k, v in vars(self).items() if not k.startswith("_") and k != "per"})
        for name in self._stats:
            value = getattr(self, name)
            config[name] = None if value is None else np.asarray(value).tolist()
        return {"class_name": type(self).__name__, "config": config}

    def __repr__(self) -> str:
        config = self.get_config()["config"]
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


def _stat(value: ArrayLike | None) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


class Standardize(_Fitted):
    """x -> (x - mean) / std, with mean and std given or fitted on training data.

    ``fit(x_or_dataset)`` computes them per channel or per feature (see the module docstring);
    a zero std (a constant channel or feature, such as MNIST's border pixels) counts as 1.
    Given ``mean`` and ``std`` (numbers or one per channel), it works as torchvision's Normalize.
    """

    _stats = ("mean", "std")

    def __init__(
        self, mean: ArrayLike | None = None, std: ArrayLike | None = None, per: str = "channel"
    ):
        super().__init__(per)
        self.mean, self.std = _stat(mean), _stat(std)

    def fit(self, data: ArrayLike | DatasetLike) -> Standardize:
        x = _training_inputs(data)
        axes = self._axes(x)
        self.mean = x.mean(axis=axes, dtype=np.float64)
        self.std = x.std(axis=axes, dtype=np.float64)
        return self

    def _affine(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, np.where(self.std > 0, self.std, 1.0)


class MinMaxScale(_Fitted):
    """x -> low + (high - low) (x - min) / (max - min), with min and max fitted on training
    data, per channel or per feature; a constant channel or feature maps to ``low``."""

    _stats = ("min", "max")

    def __init__(self, low: float = 0.0, high: float = 1.0, per: str = "channel"):
        super().__init__(per)
        if not low < high:
            raise ValueError(f"{type(self).__name__}: need low < high, got {low!r}, {high!r}")
        self.low, self.high = float(low), float(high)
        self.min, self.max = None, None

    def fit(self, data: ArrayLike | DatasetLike) -> MinMaxScale:
        x = _training_inputs(data)
        axes = self._axes(x)
        self.min = x.min(axis=axes).astype(np.float64)
        self.max = x.max(axis=axes).astype(np.float64)
        return self

    def _affine(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        span = np.where(self.max > self.min, self.max - self.min, 1.0) / (self.high - self.low)
        return self.min - self.low * span, span


class OneHot(Transform):
    """Targets y (integer labels, shape (N,)) -> float32 one-hot (N, num_classes); x unchanged.

    >>> OneHot(3)(np.zeros((2, 1)), np.array([2, 0]))[1]
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    """

    def __init__(self, num_classes: int):
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"OneHot: num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)

    def apply(
        self, x: np.ndarray, y: np.ndarray | None, context: Context
    ) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise ValueError(
                f"OneHot: expected integer labels of shape ({len(x)},), got {y.dtype} {y.shape}"
            )
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(
                f"OneHot: labels must be in [0, {self.num_classes}), got min {y.min()} and "
                f"max {y.max()}"
            )
        return x, np.eye(self.num_classes, dtype=np.float32)[y]

    def get_config(self) -> dict:
        return {"class_name": "OneHot", "config": {"num_classes": self.num_classes}}
