"""PyTorch's names for NumPy's arguments: ``dim`` for ``axis``, ``keepdim`` for ``keepdims``,
``correction`` for ``ddof``.

nabla's operations take NumPy's names (STYLE.md); code ported from PyTorch writes
``x.sum(dim=1, keepdim=True)`` or ``F.log_softmax(x, dim=-1)``. :func:`pytorch_names` wraps an
operation so that it takes both spellings: the PyTorch keyword is renamed to the NumPy one before
the call, and nothing else changes (the meaning stays NumPy's: see docs/nn.md for where the two
frameworks mean different things by the same call). Giving one argument under both names with
different values is a TypeError, whether the NumPy one came by keyword or by position.

>>> import inspect
>>> import nabla as nb
>>> print(inspect.signature(nb.sum))  # doctest: +NORMALIZE_WHITESPACE
(x: 'Tensor', axis: 'int | Sequence[int] | None' = None, keepdims: 'bool' = False, *,
 dim: 'int | Sequence[int] | None' = None, keepdim: 'bool | None' = None) -> 'Tensor'
>>> nb.tensor([[1.0, 2.0]]).sum(dim=1, keepdim=True)
tensor([[3.]])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

_Result = TypeVar("_Result")

# PyTorch's name -> NumPy's (nabla's) name
ALIASES = {"dim": "axis", "keepdim": "keepdims", "correction": "ddof"}


def pytorch_names(fn: Callable[..., _Result]) -> Callable[..., _Result]:
    """``fn`` taking, besides its NumPy-named arguments, their PyTorch names as keywords.

    Only the aliases of arguments ``fn`` has are added (``softmax`` gets ``dim`` but no
    ``keepdim``). A call without PyTorch names costs one Python call and a check of its keywords
    (well under a microsecond, against several for the operation itself).
    """
    signature = inspect.signature(fn)
    names = list(signature.parameters)
    # where each aliased argument sits among the positional ones: given there, it counts as given
    positions = {alias: names.index(ours) for alias, ours in ALIASES.items() if ours in names}

    @functools.wraps(fn)
    def accepting_pytorch_names(*args: Any, **kwargs: Any) -> _Result:
        if kwargs and not positions.keys().isdisjoint(kwargs):
            for alias, position in positions.items():
                if alias in kwargs:
                    _rename(fn.__name__, kwargs, alias, ALIASES[alias], args, position)
        return fn(*args, **kwargs)

    extra = [
        inspect.Parameter(
            alias,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=_optional(signature.parameters[ALIASES[alias]].annotation),
        )
        for alias in positions
    ]
    accepting_pytorch_names.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    return accepting_pytorch_names


def _rename(fn_name: str, kwargs: dict, alias: str, ours: str, args: tuple, position: int) -> None:
    """Move ``kwargs[alias]`` to ``kwargs[ours]``, refusing two different values."""
    value = kwargs.pop(alias)
    if len(args) > position:
        given = args[position]
    elif ours in kwargs:
        given = kwargs[ours]
    else:
        kwargs[ours] = value
        return
    if given != value:
        raise TypeError(
            f"{fn_name}() got {ours}={given!r} and {alias}={value!r}; {alias} is PyTorch's name "
            f"for {ours}: give one of them"
        )


def _optional(annotation: Any) -> Any:
    """The annotation of a PyTorch-named keyword: its NumPy-named argument's, or None (not
    given). Only a string annotation (``from __future__ import annotations``) is carried over."""
    if not isinstance(annotation, str):
        return inspect.Parameter.empty
    return annotation if annotation.endswith("| None") else f"{annotation} | None"
