"""Two-dimensional test functions for watching optimizers, written with nabla ops.

Each function is a :class:`Function2D`: the formula as nabla operations on two tensors ``x`` and
``y`` (so autograd gives the gradient, and the same code evaluates a whole grid for a contour
plot), its known global minima and the value there, a plotting domain, a default start point and
suggested learning rates per optimizer for a run of about 300 steps. ``FUNCTIONS`` maps names to
them.

=============  ===========================================================  ====================
name           f(x, y)                                                      global minima, value
=============  ===========================================================  ====================
beale          (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²      (3, 0.5); 0
rosenbrock     (1 - x)² + 100 (y - x²)²                                      (1, 1); 0
himmelblau     (x² + y - 11)² + (x + y² - 7)²                                four points; 0
saddle         x² - y²                                                       none (unbounded)
valley         ½ (u² + 100 v²), (u, v) = (x, y) rotated by 45°               (0, 0); 0
rastrigin      20 + Σ (t² - 10 cos 2πt) over t = x, y                        (0, 0); 0
=============  ===========================================================  ====================

>>> import nabla as nb
>>> beale = FUNCTIONS["beale"]
>>> p = nb.tensor(beale.minima[0], dtype="float64", requires_grad=True)
>>> loss = beale(p)
>>> loss.backward()
>>> float(loss), p.grad.tolist()
(0.0, [0.0, 0.0])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..autograd import no_grad
from ..autograd.tensor import Tensor
from ..ops import cos

__all__ = ["FUNCTIONS", "OPTIMIZERS", "Function2D", "get"]

#: The optimizers' presets (:mod:`nabla.optim.registry`) for which each function suggests a tuned
#: learning rate; a preset registered later runs at its class's default rate (:meth:`lr`).
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


@dataclass(frozen=True)
class Function2D:
    """A test function f(x, y) with what a trajectory plot needs to know about it.

    ``f(x, y)`` takes two tensors (or the two entries of one) and returns f elementwise; calling
    the object on a tensor ``p`` of shape (2,) gives the scalar loss f(p[0], p[1]). ``minima``
    lists every global minimum and ``f_min`` the value there (``None`` with no minimum).
    ``escape`` = (axis, threshold) says when a run has left a saddle point: ``|p[axis]| >
    threshold``. ``log_levels`` asks for log-spaced contour levels of f - f_min.
    """

    name: str
    title: str
    formula: str
    f: Callable
    minima: tuple[tuple[float, float], ...]
    f_min: float | None
    domain: tuple[tuple[float, float], tuple[float, float]]
    start: tuple[float, float]
    lrs: dict[str, float]
    log_levels: bool = True
    saddle_points: tuple[tuple[float, float], ...] = ()
    escape: tuple[int, float] | None = None
    note: str = ""

    def lr(self, preset: str) -> float:
        """The learning rate for optimizer preset ``preset``: the tuned one, else the class's
        default."""
        if preset in self.lrs:
            return self.lrs[preset]
        from ..optim import registry

        return registry.presets()[preset][0].defaults["lr"]

    def __call__(self, p: Tensor) -> Tensor:
        if p.shape != (2,):
            raise ValueError(f"{self.name}: expected a point of shape (2,), got {p.shape}")
        return self.f(p[0], p[1])

    def value(self, x, y) -> np.ndarray:
        """f on arrays (a grid for a contour plot), in float64, without building a graph."""
        with no_grad():
            out = self.f(Tensor(x, dtype="float64"), Tensor(y, dtype="float64"))
        return out.numpy()

    def gradient(self, point) -> np.ndarray:
        """∇f at ``point`` by autograd, in float64."""
        p = Tensor(point, dtype="float64", requires_grad=True)
        self(p).backward()
        return np.array(p.grad)

    def box(self, factor: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """The plotting domain grown ``factor`` times about its center: a run that leaves it has
        diverged (or, on the saddle, gone downhill for good) and is stopped."""
        (x0, x1), (y0, y1) = self.domain
        center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        half = factor * np.array([(x1 - x0) / 2, (y1 - y0) / 2])
        return center - half, center + half


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _himmelblau(x, y):
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _saddle(x, y):
    return x**2 - y**2


#: The valley's rotation and the curvatures along (u, v): condition number 100.
VALLEY_ANGLE, VALLEY_CURVATURES = math.pi / 4, (1.0, 100.0)


def _valley(x, y):
    c, s = math.cos(VALLEY_ANGLE), math.sin(VALLEY_ANGLE)
    u, v = c * x + s * y, -s * x + c * y  # coordinates along and across the valley
    return 0.5 * (VALLEY_CURVATURES[0] * u**2 + VALLEY_CURVATURES[1] * v**2)


def _rastrigin(x, y):
    return 20 + x**2 - 10 * cos(2 * math.pi * x) + y**2 - 10 * cos(2 * math.pi * y)


def _lrs(sgd, momentum, nesterov, adagrad, rmsprop, adam) -> dict[str, float]:
    return dict(zip(OPTIMIZERS, (sgd, momentum, nesterov, adagrad, rmsprop, adam)))


FUNCTIONS: dict[str, Function2D] = {
    f.name: f
    for f in (
        Function2D(
            name="beale",
            title="Beale",
            formula="(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²",
            f=_beale,
            minima=((3.0, 0.5),),
            f_min=0.0,
            domain=((-0.5, 4.5), (-2.0, 2.5)),  # the usual [-4.5, 4.5]², zoomed on the action
            # on the flat shelf up and left of the minimum. Louis Tiao's animations start at
            # (3, 4), where |∇f| ~ 6e4: SGD and momentum at these rates leave at once, and the
            # adaptive methods spend 300 steps on the plateau near x = 0 (try --start=3,4)
            start=(1.0, 1.5),
            lrs=_lrs(1e-2, 2e-3, 2e-3, 0.5, 0.02, 0.1),
            note="flat plateaus and steep walls: the gradient spans five orders of magnitude",
        ),
        Function2D(
            name="rosenbrock",
            title="Rosenbrock",
            formula="(1 - x)² + 100 (y - x²)²",
            f=_rosenbrock,
            minima=((1.0, 1.0),),
            f_min=0.0,
            domain=((-2.0, 2.0), (-1.0, 3.0)),
            start=(-1.2, 1.0),  # Rosenbrock (1960)
            lrs=_lrs(2e-3, 1e-3, 1e-3, 0.5, 0.01, 0.1),
            note="a curved, flat-bottomed valley: easy to find, slow to follow",
        ),
        Function2D(
            name="himmelblau",
            title="Himmelblau",
            formula="(x² + y - 11)² + (x + y² - 7)²",
            f=_himmelblau,
            minima=(
                (3.0, 2.0),
                (-2.805118086952745, 3.131312518250573),
                (-3.779310253377747, -3.2831859912861696),
                (3.5844283403304917, -1.8481265269644034),
            ),
            f_min=0.0,
            domain=((-5.0, 5.0), (-5.0, 5.0)),
            start=(-0.3, -0.9),  # next to the local maximum (-0.2708, -0.9230): paths fan out
            lrs=_lrs(5e-3, 1e-3, 1e-3, 0.5, 0.02, 0.1),
            note="four global minima; which one a run reaches depends on its path",
        ),
        Function2D(
            name="saddle",
            title="Saddle",
            formula="x² - y²",
            f=_saddle,
            minima=(),
            f_min=None,
            domain=((-1.5, 1.5), (-1.5, 1.5)),
            start=(1.0, 1e-3),  # on the ridge y = 0, just off it: the gradient in y is tiny
            lrs=_lrs(0.1, 0.1, 0.1, 0.1, 0.1, 0.1),  # one rate: how each uses the gradient
            log_levels=False,
            saddle_points=((0.0, 0.0),),
            escape=(1, 1.0),
            note="no minimum (f is unbounded below); a saddle point at the origin",
        ),
        Function2D(
            name="valley",
            title="Narrow valley",
            formula="½ (u² + 100 v²), u = (x + y)/√2, v = (y - x)/√2",
            f=_valley,
            minima=((0.0, 0.0),),
            f_min=0.0,
            domain=((-3.0, 3.0), (-3.0, 3.0)),
            start=(-2.5, -1.5),  # at the far end of the valley, on its wall
            lrs=_lrs(1e-2, 2e-3, 2e-3, 0.5, 0.01, 0.1),
            note="a quadratic with condition number 100, rotated 45° off the axes",
        ),
        Function2D(
            name="rastrigin",
            title="Rastrigin",
            formula="20 + x² - 10 cos 2πx + y² - 10 cos 2πy",
            f=_rastrigin,
            minima=((0.0, 0.0),),
            f_min=0.0,
            domain=((-3.5, 3.5), (-2.0, 5.0)),  # of the usual [-5.12, 5.12]², where runs go
            start=(-2.0, 3.5),
            lrs=_lrs(2e-3, 5e-4, 5e-4, 0.5, 0.05, 0.1),
            log_levels=False,
            note="a local minimum near every integer point: local methods stop in one",
        ),
    )
}


def get(name: str) -> Function2D:
    """The function called ``name``, or a ``KeyError`` listing the names."""
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise KeyError(f"no test function {name!r}; choose one of {', '.join(FUNCTIONS)}") from None
