"""Gradient checking: backward against central finite differences, in float64.

For a function f and a random cotangent v (a fixed, seeded direction in output space), backward
computes the vector-Jacobian product v^T J. Each of its entries is compared with

    v^T (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),

whose error is O(eps^2). A wrong derivative is caught unless it happens to agree on that one
random v, which has probability zero.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .grad_mode import enable_grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with finite differences."""


def gradcheck(
    fn: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Tensor | list[Any] | tuple[Any, ...],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check ``fn``'s gradients with respect to every input that requires grad.

    ``inputs`` is a Tensor or a sequence of them (and constants); float inputs are copied to
    float64 first. ``fn`` returns a Tensor or a tuple of Tensors. Passes when, for every entry,
    ``|analytic - numeric| <= atol + rtol * |numeric|``; otherwise raises :class:`GradcheckError`
    naming the input, the index and both values (or returns False if ``raise_exception=False``).

    >>> import nabla as nb
    >>> x = nb.tensor([0.5, -1.0, 2.0], requires_grad=True)
    >>> nb.gradcheck(lambda t: (t * t).sin(), x)
    True
    """
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    inputs = [_as_float64(t) for t in inputs]
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")

    with enable_grad():
        outputs = _outputs(fn(*inputs))
    rng = np.random.default_rng(0)
    cotangents = [rng.standard_normal(o.shape) for o in outputs]
    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    differentiable = [(o, v) for o, v in zip(outputs, cotangents) if o.requires_grad]
    if not differentiable:
        raise ValueError("gradcheck: no output depends differentiably on the inputs")
    with enable_grad():
        terms = [(o * v).sum() for o, v in differentiable]
        objective = functools.reduce(operator.add, terms)
        objective.backward()

    def projected() -> float:
        with no_grad():
            outs = _outputs(fn(*inputs))
        return sum(float(np.sum(o.data * v)) for o, v in zip(outs, cotangents))

    for i in checked:
        t = inputs[i]
        analytic = np.zeros(t.shape) if t.grad is None else t.grad
        flat = t.data.ravel()  # a view (the data is C-ordered): perturbing it perturbs the input
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = projected()
            flat[j] = original - eps
            minus = projected()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            value = analytic.ravel()[j]
            if not abs(value - numeric) <= atol + rtol * abs(numeric):
                index = np.unravel_index(j, t.shape)  # () for a 0-d input
                message = (
                    f"gradcheck: gradient of input {i} (shape {t.shape}) at index "
                    f"{tuple(map(int, index))}: "
                    f"backward gives {value:.10g}, finite differences give {numeric:.10g} "
                    f"(difference {abs(value - numeric):.3g} > atol {atol} + rtol {rtol} * "
                    "|numeric|)"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def _as_float64(t: Any) -> Any:
    if not isinstance(t, Tensor):
        return t
    dtype = np.float64 if t.dtype.kind == "f" else t.dtype
    leaf = Tensor._make(np.array(t.data, dtype=dtype, order="C"))  # a copy; keeps 0-d as 0-d
    if t.requires_grad:
        leaf.requires_grad = True
    return leaf


def _outputs(result: Any) -> list[Tensor]:
    outputs = list(result) if isinstance(result, (list, tuple)) else [result]
    for o in outputs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, got {type(o).__name__}")
    return outputs
