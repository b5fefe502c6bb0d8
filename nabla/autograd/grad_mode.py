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
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

_Mode = TypeVar("_Mode", bound="_SetGradMode")
_Function = TypeVar("_Function", bound=Callable[..., Any])


class _GradMode:
    # One flag for the process, read on every operation: an attribute of a class object is the
    # cheapest global to look up. (Not thread-local: nabla runs one training loop per process.)
    enabled = True


def is_grad_enabled() -> bool:
    """Return True when operations record the graph for backward."""
    return _GradMode.enabled


class _SetGradMode:
    """Context manager and decorator (``@no_grad()`` or bare ``@no_grad``) that sets grad mode
    for a block and restores the previous mode afterwards, also when the block raises."""

    _mode = True

    @overload
    def __new__(cls: type[_Mode], func: None = None) -> _Mode: ...
    @overload
    def __new__(cls, func: _Function) -> _Function: ...
    def __new__(cls, func=None):
        self = super().__new__(cls)
        if callable(func):  # used as a bare decorator: @no_grad
            return self(func)
        return self

    def __enter__(self: _Mode) -> _Mode:
        self._previous = _GradMode.enabled
        _GradMode.enabled = self._mode
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        _GradMode.enabled = self._previous
        return False

    def __call__(self, fn: _Function) -> _Function:
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = _GradMode.enabled
            _GradMode.enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                _GradMode.enabled = previous

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature


class no_grad(_SetGradMode):  # noqa: N801 - named like torch.no_grad
    """Disable graph recording inside a ``with`` block or a decorated function."""

    _mode = False


class enable_grad(_SetGradMode):  # noqa: N801 - named like torch.enable_grad
    """Enable graph recording, also inside an enclosing ``no_grad``."""

    _mode = True


class set_grad_enabled(_SetGradMode):  # noqa: N801 - named like torch.set_grad_enabled
    """Set grad mode to ``mode`` now; as a context manager, restore the previous mode on exit.

    As in PyTorch, ``nb.set_grad_enabled(False)`` on its own line switches recording off until
    it is switched on again.
    """

    def __new__(cls, mode: bool) -> set_grad_enabled:  # type: ignore[misc]  # a mode, never a function
        return object.__new__(cls)

    def __init__(self, mode: bool):
        self._mode = bool(mode)
        self._previous = _GradMode.enabled
        _GradMode.enabled = self._mode

    def __enter__(self: _Mode) -> _Mode:
        return self  # the mode was already set by the constructor

    def __call__(self, fn: _Function) -> _Function:
        _GradMode.enabled = self._previous  # decorating must not switch the mode for the caller
        return super().__call__(fn)
