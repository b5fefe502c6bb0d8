"""Weight initializers: fill a tensor in place with values of a chosen scale, and return it.

Why the scale matters: a layer ``y = W x`` with ``fan_in`` inputs and weights of variance
``σ²`` gives each output the variance ``fan_in · σ² · Var(x)`` (independent, zero-mean terms).
Unless ``fan_in · σ² ≈ 1`` the activations shrink or grow by that factor at every layer, so a
deep network starts with vanishing or exploding signals, and gradients, which flow through
``Wᵀ``, do the same with ``fan_out``. Glorot & Bengio (2010) compromise between the two passes
with ``σ² = 2 / (fan_in + fan_out)`` (Xavier); He et al. (2015) note that ReLU zeroes half of
its inputs, halving the variance, and use ``σ² = 2 / fan_in`` (Kaiming). A nonlinearity's
*gain* (:func:`calculate_gain`) is the factor that restores unit variance after it.

The names and formulas are PyTorch's (``torch.nn.init``), trailing underscore included: the
tensor is changed in place. Random draws come from ``generator`` or from the default generator
that :func:`nabla.manual_seed` resets. Initialization is not part of any graph, so a leaf that
requires grad may be initialized without ``no_grad``.

>>> import nabla as nb
>>> from nabla.nn import init
>>> w = nb.zeros(256, 128)
>>> init.kaiming_normal_(w, nonlinearity="relu") is w
True
>>> round(float(w.data.std() * 128**0.5), 1)  # std = sqrt(2 / fan_in)
1.4
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .. import random
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "calculate_gain",
    "constant_",
    "fan_in_and_fan_out",
    "kaiming_normal_",
    "kaiming_uniform_",
    "lecun_normal_",
    "normal_",
    "ones_",
    "orthogonal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
_NONLINEARITIES = (*_LINEAR, "sigmoid", "tanh", "relu", "leaky_relu", "selu")
_MODES = ("fan_in", "fan_out")


# --- helpers -------------------------------------------------------------------------------------


def _check_tensor(t: object, what: str, need_float: bool = False) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} expects a nabla Tensor, got {type(t).__name__}")
    if need_float and t.dtype.kind != "f":
        raise TypeError(f"{what} draws real numbers and needs a float tensor, got {t.dtype}")


def _write(t: Tensor, values: ArrayLike) -> Tensor:
    # copy_ casts to t's dtype and bumps t's version, so a graph that saved the old values
    # refuses to backward instead of silently using the new ones. no_grad lets a leaf that
    # requires grad (a parameter) be written: initialization is not part of the graph.
    with no_grad():
        t.copy_(values)
    return t


# --- gains and fans ------------------------------------------------------------------------------


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps the variance of activations unchanged through ``nonlinearity``.

    ``linear``/``conv*``/``sigmoid``: 1; ``tanh``: 5/3; ``relu``: sqrt(2);
    ``leaky_relu``: sqrt(2 / (1 + slope²)) with ``slope = param`` (default 0.01);
    ``selu``: 3/4 (PyTorch's empirical value).

    >>> calculate_gain("relu")
    1.4142135623730951
    >>> round(calculate_gain("leaky_relu", 0.2), 6)  # sqrt(2 / 1.04)
    1.38675
    """
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float, np.integer, np.floating)) and not isinstance(
            param, bool
        ):
            slope = float(param)
        else:
            raise ValueError(f"leaky_relu's negative slope must be a number, got {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"unknown nonlinearity {nonlinearity!r}; valid ones: {', '.join(_NONLINEARITIES)}"
    )


def fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``, as in PyTorch.

    ``fan_in = in · prod(kernel)`` inputs feed each output; ``fan_out = out · prod(kernel)``
    outputs read each input.

    >>> import nabla as nb
    >>> fan_in_and_fan_out(nb.zeros(16, 3, 5, 5))
    (75, 400)
    """
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dimensions (out, in, *kernel), "
            f"got shape {tuple(shape)}"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(t: Tensor, mode: str) -> int:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


# --- constant and plain random fills -------------------------------------------------------------


def zeros_(t: Tensor) -> Tensor:
    """Fill ``t`` with 0."""
    _check_tensor(t, "zeros_")
    return _write(t, 0)


def ones_(t: Tensor) -> Tensor:
    """Fill ``t`` with 1."""
    _check_tensor(t, "ones_")
    return _write(t, 1)


def constant_(t: Tensor, value: float) -> Tensor:
    """Fill ``t`` with ``value``.

    >>> import nabla as nb
    >>> constant_(nb.zeros(3), 0.5)
    tensor([0.5, 0.5, 0.5])
    """
    _check_tensor(t, "constant_")
    return _write(t, value)


def uniform_(
    t: Tensor, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Fill ``t`` with draws from U(a, b): mean (a + b) / 2, std (b - a) / sqrt(12)."""
    _check_tensor(t, "uniform_", need_float=True)
    if not a <= b:
        raise ValueError(f"uniform_ needs a <= b, got a={a}, b={b}")
    return _write(t, random.resolve(generator).uniform(a, b, size=t.shape))


def normal_(
    t: Tensor, mean: float = 0.0, std: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Fill ``t`` with draws from N(mean, std²)."""
    _check_tensor(t, "normal_", need_float=True)
    if std < 0:
        raise ValueError(f"normal_ needs std >= 0, got {std}")
    return _write(t, random.resolve(generator).normal(mean, std, size=t.shape))


# --- scaled by the fans --------------------------------------------------------------------------


def xavier_uniform_(
    t: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot & Bengio (2010): U(-bound, bound), ``bound = sqrt(3) · std``, where
    ``std = gain · sqrt(2 / (fan_in + fan_out))``."""
    _check_tensor(t, "xavier_uniform_", need_float=True)
    fan_in, fan_out = fan_in_and_fan_out(t)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out)) if t.size else 0.0
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(
    t: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot & Bengio (2010): N(0, std²), ``std = gain · sqrt(2 / (fan_in + fan_out))``."""
    _check_tensor(t, "xavier_normal_", need_float=True)
    fan_in, fan_out = fan_in_and_fan_out(t)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if t.size else 0.0
    return normal_(t, 0.0, std, generator)


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan = _fan(t, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan) if fan else 0.0  # a zero-size tensor has nothing to fill


def kaiming_uniform_(
    t: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He et al. (2015): U(-bound, bound), ``bound = sqrt(3) · gain / sqrt(fan)``.

    ``fan`` is ``fan_in`` (keeps the forward variance) or ``fan_out`` (keeps the backward one);
    ``gain = calculate_gain(nonlinearity, a)``, ``a`` being leaky_relu's negative slope.
    """
    _check_tensor(t, "kaiming_uniform_", need_float=True)
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(
    t: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He et al. (2015): N(0, std²), ``std = gain / sqrt(fan)``; arguments as in
    :func:`kaiming_uniform_`."""
    _check_tensor(t, "kaiming_normal_", need_float=True)
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)


def lecun_normal_(t: Tensor, generator: np.random.Generator | None = None) -> Tensor:
    """LeCun et al. (1998): N(0, std²), ``std = 1 / sqrt(fan_in)`` (Kaiming with gain 1).

    PyTorch has no ``lecun_normal_``; this is the untruncated normal, not Keras's truncated one.
    """
    _check_tensor(t, "lecun_normal_", need_float=True)
    return kaiming_normal_(t, mode="fan_in", nonlinearity="linear", generator=generator)


def orthogonal_(
    t: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Saxe et al. (2013): a (semi-)orthogonal matrix times ``gain``; dims after the first are
    flattened, so ``W`` is ``(rows, cols)`` and ``W Wᵀ = gain² I`` if rows <= cols, else
    ``Wᵀ W = gain² I``.

    Q of the QR factorization of a Gaussian matrix, with columns multiplied by the signs of
    R's diagonal so the result is uniform over orthogonal matrices (Mezzadri 2007).
    """
    _check_tensor(t, "orthogonal_", need_float=True)
    if t.ndim < 2:
        raise ValueError(
            f"orthogonal_ needs a tensor with at least 2 dimensions, got shape {t.shape}"
        )
    if t.size == 0:
        return t
    rows = t.shape[0]
    cols = t.size // rows
    flat = random.resolve(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T  # QR of the tall matrix; transpose back below
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(t, gain * q.reshape(t.shape))
