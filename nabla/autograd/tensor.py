"""Tensor: a NumPy array that remembers how it was computed.

A tensor produced by a recorded operation points to its graph node (the operation's ``ctx``),
which points to the operation's input tensors: following those links from the loss reaches every
tensor it depends on. A *leaf* is a tensor made by the user (``node is None``); when it requires
grad, ``backward`` accumulates dL/dleaf into its ``.grad``.

The arithmetic, reduction and shape methods (``+``, ``@``, ``sum``, ``reshape``, ...) are bound to
the class by :mod:`nabla.ops`, which defines the operations; this module only holds the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import engine
from .dtypes import as_array, float32, int64
from .grad_mode import is_grad_enabled
from .trace import Trace

if TYPE_CHECKING:
    from .function import Function


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    >>> import nabla as nb
    >>> x = nb.tensor([[1.0, 2.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.]], dtype=float32)
    """

    # _grad_slot (optional): where an optimizer wants this leaf's gradient, a view into its flat
    # gradient buffer; backward writes the first gradient there when .grad is None.
    __slots__ = ("__weakref__", "_grad_slot", "_node", "_requires_grad", "_vc", "data", "grad")

    # NumPy must not treat a Tensor as an array-like in its own operators: with this,
    # ``ndarray + Tensor`` calls ``Tensor.__radd__`` and stays differentiable.
    __array_ufunc__ = None
    # ``==`` is elementwise, so hashing is by identity (tensors are dict keys in optimizers).
    __hash__ = object.__hash__

    def __init__(
        self, data: Tensor | ArrayLike, dtype: DTypeLike | None = None, requires_grad: bool = False
    ):
        if isinstance(data, Tensor):
            data = data.data
        self._init(as_array(data, dtype, copy=True))
        if requires_grad:
            self.requires_grad = True

    def _init(
        self, data: np.ndarray, node: Function | None = None, vc: list[int] | None = None
    ) -> None:
        """Set every field: the one place a Tensor is set up (the constructor, :meth:`_make`,
        ``Parameter`` and ``Function.apply`` all come here). ``node`` is the graph node that made
        it (None for a leaf); ``vc`` the version counter it shares with the tensors over the same
        memory (views, detached copies; see ``Function.apply``), else a new one."""
        self.data = data
        self.grad = None
        self._node = node
        self._requires_grad = node is not None
        self._vc = [0] if vc is None else vc

    @classmethod
    def _make(
        cls, data: np.ndarray, node: Function | None = None, vc: list[int] | None = None
    ) -> Tensor:
        """Wrap an array without copying or checking (the fast path used by operations)."""
        t = object.__new__(Tensor)
        t._init(data, node, vc)
        return t

    # --- autograd state -------------------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor; only leaves may change it."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if self._node is not None:
            raise RuntimeError(
                "requires_grad can only be changed on a leaf tensor; "
                "use .detach() to get a leaf from a computed tensor"
            )
        if flag and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return self (freezing: ``requires_grad_(False)``)."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by a recorded operation."""
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        """The graph node that produced this tensor, or None for a leaf."""
        return self._node

    def backward(self, grad: Tensor | ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is the upstream gradient dL/dself; it may be omitted only for a one-element
        tensor (then dL/dself = 1). The graph is freed afterwards unless ``retain_graph``.
        """
        engine.backward(self, grad, retain_graph)

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._node is not None:  # leaves keep their gradient anyway
            engine.retain(self)

    @property
    def _version(self) -> int:
        """How many in-place writes this tensor's memory has had (shared with its views)."""
        return self._vc[0]

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph.

        In-place writes through the detached tensor still count as writes to this one (they bump
        its version), so they cannot silently corrupt a gradient that needs these values.
        """
        # one counter for one memory: writes through either are seen by both
        return Tensor._make(self.data, vc=self._vc)

    # --- array facts ----------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements (NumPy's meaning; PyTorch's ``numel()``)."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied), like ``torch.Tensor.numpy``."""
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))  # type: ignore[index]  # ops/methods.py

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only one-element integer tensors can be used as an index")
        return int(self.data.item())

    # --- in-place updates (not recorded; for optimizer steps and initialization) ---------------

    def _check_inplace(self, what: str) -> None:
        # Writing into an array that a graph node saved would silently corrupt its gradient,
        # so only plain data may be changed: a tensor outside any graph, or a leaf under no_grad.
        if self._requires_grad and (self._node is not None or is_grad_enabled()):
            raise RuntimeError(
                f"{what}: in-place change of a tensor that requires grad is not differentiable; "
                "do it under nb.no_grad() on a leaf, or compute a new tensor"
            )
        if Trace.recorder is not None:  # a write outside the operations: a plan cannot replay it
            Trace.recorder.unsupported(f"it writes into a tensor in place ({what})")
        self._vc[0] += 1

    def __setitem__(self, index: Any, value: Tensor | ArrayLike) -> None:
        if isinstance(value, Tensor) and value._requires_grad and is_grad_enabled():
            raise RuntimeError(
                "item assignment of a tensor that requires grad is not differentiable (its "
                "gradient would be lost); build the result with nb.where, nb.concatenate or "
                "nb.stack instead"
            )
        self._check_inplace("item assignment")
        if isinstance(index, Tensor):
            index = index.data
        self.data[index] = value.data if isinstance(value, Tensor) else value

    def _inplace(self, ufunc: np.ufunc, other: Tensor | ArrayLike, what: str) -> Tensor:
        self._check_inplace(what)
        ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        return self

    def __iadd__(self, other: Tensor | ArrayLike) -> Tensor:
        return self._inplace(np.add, other, "+=")

    def __isub__(self, other: Tensor | ArrayLike) -> Tensor:
        return self._inplace(np.subtract, other, "-=")

    def __imul__(self, other: Tensor | ArrayLike) -> Tensor:
        return self._inplace(np.multiply, other, "*=")

    def __itruediv__(self, other: Tensor | ArrayLike) -> Tensor:
        return self._inplace(np.divide, other, "/=")

    def add_(self, other: Tensor | ArrayLike, alpha: float = 1.0) -> Tensor:
        """self += alpha * other, in place."""
        if alpha != 1.0:  # a list or a number as an array first: alpha * [1, 2] repeats the list
            # (Tensor's operators are attached by nabla/ops/methods.py: the checker cannot see)
            other = alpha * (other if isinstance(other, Tensor) else np.asarray(other))  # type: ignore[operator]
        return self._inplace(np.add, other, "add_")

    def mul_(self, other: Tensor | ArrayLike) -> Tensor:
        """self *= other, in place."""
        return self._inplace(np.multiply, other, "mul_")

    def copy_(self, source: Tensor | ArrayLike) -> Tensor:
        """Copy ``source`` (broadcast to this shape) into this tensor's data."""
        self._check_inplace("copy_")
        np.copyto(self.data, source.data if isinstance(source, Tensor) else source)
        return self

    def fill_(self, value: float) -> Tensor:
        """Set every element to ``value``."""
        self._check_inplace("fill_")
        self.data.fill(value)
        return self

    def zero_(self) -> Tensor:
        """Set every element to zero."""
        return self.fill_(0)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (float32, int64) and self.data.dtype.kind != "b":
            extras.append(f"dtype={self.data.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn=<{type(self._node).__name__}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"
