"""Metrics the trainer reports next to the loss, accumulated batch by batch over an epoch.

A metric sees the model's raw outputs (logits for classification) and the targets of each batch,
keeps running sums, and gives the epoch's value at the end: the mean over *samples*, so a short
last batch counts for what it holds.

- ``accuracy``: the share of samples whose arg-max logit is the label. Targets may be class
  indices (N,), or probabilities (N, C) (one-hot, label smoothing, mixup: the arg-max class
  counts). With one output per sample (N,) or (N, 1), the output is a logit and the prediction is
  ``logit > 0`` against 0/1 targets (binary cross-entropy).
- ``top_k_accuracy`` (``"top5_accuracy"`` by name): the label is among the k largest logits.
- ``mse``: mean of (output - target)^2 over all elements; ``mae``: mean of |output - target|.

>>> m = get("accuracy")
>>> m.update(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 1, 1]))
>>> round(m.result(), 4)
0.6667
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class Metric:
    """A running metric: ``reset()``, ``update(output, target)`` per batch, ``result()``."""

    name = "metric"
    higher_is_better = True

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, output: np.ndarray, target: np.ndarray) -> None:
        raise NotImplementedError

    def result(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _labels(output: np.ndarray, target: np.ndarray, name: str) -> np.ndarray:
    """Class indices from targets given as indices or as per-class probabilities."""
    if target.ndim == output.ndim and target.shape == output.shape:
        return target.argmax(axis=-1)
    if target.ndim == output.ndim - 1 and target.shape == output.shape[:-1]:
        return target.astype(np.int64, copy=False)
    raise ValueError(
        f"{name}: outputs of shape {output.shape} need targets of shape {output.shape[:-1]} "
        f"(class indices) or {output.shape} (probabilities), got {target.shape}"
    )


class Accuracy(Metric):
    name = "accuracy"

    def update(self, output: ArrayLike, target: ArrayLike) -> None:
        output, target = np.asarray(output), np.asarray(target)
        if output.ndim == 1 or output.shape[-1] == 1:  # one logit per sample: binary
            if target.size != output.size:
                raise ValueError(
                    f"accuracy: binary outputs of shape {output.shape} need as many targets, "
                    f"got shape {target.shape}"
                )
            correct = (output.reshape(-1) > 0) == (target.reshape(-1) > 0.5)
        else:
            correct = output.argmax(axis=-1) == _labels(output, target, self.name)
        self.total += float(np.count_nonzero(correct))
        self.count += correct.size


class TopKAccuracy(Metric):
    def __init__(self, k: int = 5):
        if int(k) != k or k < 1:
            raise ValueError(f"top_k_accuracy: k must be a positive int, got {k!r}")
        self.k, self.name = int(k), f"top{int(k)}_accuracy"
        super().__init__()

    def update(self, output: ArrayLike, target: ArrayLike) -> None:
        output, target = np.asarray(output), np.asarray(target)
        labels = _labels(output, target, self.name)
        if self.k >= output.shape[-1]:
            hits = np.ones(labels.shape, dtype=bool)
        else:
            # The label is in the top k when fewer than k classes score strictly higher.
            label_score = np.take_along_axis(output, labels[..., None], axis=-1)
            hits = (output > label_score).sum(axis=-1) < self.k
        self.total += float(np.count_nonzero(hits))
        self.count += hits.size


class _Elementwise(Metric):
    higher_is_better = False

    def update(self, output: ArrayLike, target: ArrayLike) -> None:
        output, target = np.asarray(output), np.asarray(target)
        if output.shape != target.shape:
            if output.size == target.size and output.shape[0] == target.shape[0]:
                target = target.reshape(output.shape)  # (N,) targets for (N, 1) outputs
            else:
                raise ValueError(
                    f"{self.name}: outputs of shape {output.shape} and targets of shape "
                    f"{target.shape} differ"
                )
        self.total += float(self.error(output - target.astype(output.dtype, copy=False)))
        self.count += output.size


class MSE(_Elementwise):
    name = "mse"

    @staticmethod
    def error(d: np.ndarray) -> np.number:
        return np.dot(d.reshape(-1), d.reshape(-1))


class MAE(_Elementwise):
    name = "mae"

    @staticmethod
    def error(d: np.ndarray) -> np.number:
        return np.abs(d).sum()


def get(metric: str | Metric) -> Metric:
    """A fresh metric from a name (``"accuracy"``, ``"top5_accuracy"``, ``"mse"``, ``"mae"``) or a
    Metric instance (returned as is)."""
    if isinstance(metric, Metric):
        return metric
    simple = {"accuracy": Accuracy, "mse": MSE, "mae": MAE, "top_k_accuracy": TopKAccuracy}
    if metric in simple:
        return simple[metric]()
    match = re.fullmatch(r"top(\d+)_accuracy", str(metric))
    if match:
        return TopKAccuracy(int(match.group(1)))
    raise ValueError(
        f"unknown metric {metric!r}; choose one of accuracy, top5_accuracy (any k), mse, mae, "
        "or pass a nabla.train.metrics.Metric"
    )
