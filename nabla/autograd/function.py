"""Function: one differentiable operation, as two NumPy computations.

A subclass states the operation and its vector-Jacobian product (VJP):

* ``forward(ctx, *arrays, **options)`` computes the output array from input arrays and stores on
  ``ctx`` whatever backward needs;
* ``backward(ctx, grad)`` receives dL/dy (an array of the output's shape) and returns dL/dx_i for
  every positional input, as one array, a tuple, or ``None`` for an input without a gradient.

A gradient may keep the *broadcast* shape of the output: the engine sums it back to the input's
shape with :func:`sum_to` (one helper for every op), so an op never repeats that bookkeeping.

``apply`` runs forward and, when grad mode is on and an input requires grad, makes the ``ctx``
object the graph node: it remembers its input tensors, and the output tensor points to it.

>>> import numpy as np
>>> import nabla as nb
>>> class Cube(nb.Function):
...     @staticmethod
...     def forward(ctx, x):
...         ctx.x = x
...         return x**3
...     @staticmethod
...     def backward(ctx, grad):
...         return grad * 3 * ctx.x**2
>>> x = nb.tensor([1.0, 2.0], requires_grad=True)
>>> Cube.apply(x).sum().backward()
>>> x.grad
array([ 3., 12.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .grad_mode import _GradMode
from .tensor import Tensor
from .trace import Trace


class Function:
    """Base class of differentiable operations; see the module docstring."""

    # Set by apply when the graph is recorded; ``inputs`` is None once the node has been freed.
    inputs: tuple | None = None
    needs_input_grad: list = []  # set per node by apply, never mutated
    versions: int = 0
    retained = None  # weakref to the output tensor when it called retain_grad()
    may_view = False  # True for operations whose output can be a view of their first input
    saves_output = False  # True for operations whose backward reads their own output
    output_vc = None  # the output's version counter and version, for those that save it
    output_version = 0

    # Positional-only (the engine passes them so): an operation names its gradient as its
    # formula does, ``g`` or ``grad``, and type checkers accept either.
    @staticmethod
    def forward(ctx: Any, /, *arrays: Any, **options: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray, /) -> Any:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **options: Any) -> Tensor:
        """Run the operation on Tensors (or constants) and record it when gradients are needed."""
        ctx = object.__new__(cls)
        arrays = []
        needs = []  # which inputs want a gradient (a list: cheaper to build than a tuple)
        versions = 0
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                needs.append(a._requires_grad)
                versions += a._vc[0]
            else:
                arrays.append(a)
                needs.append(False)
        track = _GradMode.enabled and True in needs
        if track:
            ctx.inputs = args
            ctx.needs_input_grad = needs
            # Backward reads the inputs' arrays as they are now. In-place writes bump a tensor's
            # version, and versions only grow, so a changed sum means an input was overwritten:
            # backward then raises instead of returning a silently wrong gradient.
            ctx.versions = versions
        out = cls.forward(ctx, *arrays, **options)
        if out.__class__ is not np.ndarray:  # NumPy returns scalars from full reductions
            out = np.asarray(out)
        # A view shares its input's memory, so it shares its version counter too: an in-place
        # write through either one is then seen by every graph node that saved the other.
        shared = cls.may_view and np.may_share_memory(out, arrays[0])
        t = Tensor._make(out, ctx if track else None, args[0]._vc if shared else None)
        if track and cls.saves_output:  # backward reads the output: it must not change either
            ctx.output_vc, ctx.output_version = t._vc, t._vc[0]
        if Trace.recorder is not None:  # nabla.compile is tracing this step
            Trace.recorder.op(cls, ctx, args, options, t)
        return t

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
