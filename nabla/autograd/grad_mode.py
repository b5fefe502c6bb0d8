"""Grad mode: whether operations record the graph.

Recording is on by default. Inside ``no_grad()`` no operation records a graph, so evaluation and
optimizer updates cost nothing extra and keep no intermediate arrays alive.

>>> import nabla as nb
>>> x = nb.ones(3, requires_grad=True)
>>> with nb.no_grad():
...     y = x * 2
>>> y.requires_grad
False
"""

from __future__ import annotations

import functools


class _GradMode:
    # One flag for the process, read on every operation: an attribute of a class object is the
    # cheapest global to look up. (Not thread-local: nabla runs one training loop per process.)
    enabled = True


def is_grad_enabled() -> bool:
    """Return True when operations record the graph for backward."""
    return _GradMode.enabled


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores the previous one."""

    _mode = True

    def __enter__(self):
        self._previous = _GradMode.enabled
        _GradMode.enabled = self._mode
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self._previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_SetGradMode):  # noqa: N801 - named like torch.no_grad
    """Disable graph recording inside a ``with`` block or a decorated function."""

    _mode = False


class enable_grad(_SetGradMode):  # noqa: N801 - named like torch.enable_grad
    """Enable graph recording, also inside an enclosing ``no_grad``."""

    _mode = True


class set_grad_enabled(_SetGradMode):  # noqa: N801 - named like torch.set_grad_enabled
    """Set grad mode to ``mode`` inside a ``with`` block."""

    def __init__(self, mode: bool):
        self._mode = bool(mode)

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper
