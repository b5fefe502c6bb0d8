"""Undoing broadcasting in backward: the one helper every operation relies on."""

from __future__ import annotations

import numpy as np


def sum_to(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` over the axes along which an input of ``shape`` was
    broadcast.

    Broadcasting copies an input along new leading axes and along axes of length 1, so by the
    chain rule its gradient is the sum of the output gradient over those axes. A ``grad`` that
    ``shape`` does not broadcast to raises ValueError.

    >>> sum_to(np.ones((2, 3, 4)), (3, 1)).tolist()
    [[8.0], [8.0], [8.0]]
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead < 0 or any(n not in (1, m) for n, m in zip(shape, grad.shape[lead:])):
        # A backward that returned a gradient of the wrong shape: refuse it rather than reshape
        # it (a transposed gradient of the same size would otherwise pass, silently wrong).
        raise ValueError(
            f"sum_to: a gradient of shape {grad.shape} cannot come from broadcasting an input "
            f"of shape {shape}"
        )
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    # axes is not empty (the shapes differ); keepdims keeps an array (not a NumPy scalar) for ()
    return grad.sum(axis=axes, keepdims=True).reshape(shape)
