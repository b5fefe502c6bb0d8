"""Every optimizer converges on a convex quadratic and on Rosenbrock, at a stated lr and budget.

Gradients are computed in NumPy and written into ``x.grad`` (a view into the optimizer's flat
gradient buffer), so these tests exercise the optimizers alone; float64 throughout. A run passes
if, after its whole budget, the iterate is within the tolerance of the minimizer.

Quadratic f(x) = 0.5 x^T A x - b^T x, 10-D, A SPD with eigenvalues geomspace(1, 10), from x = 0,
tolerance |x - x*| < 1e-4:

    optimizer   settings                        lr      steps   (reaches tol at)
    SGD         -                               0.1     300     84
    momentum    momentum=0.9                    0.1     300     174
    Nesterov    momentum=0.9, nesterov          0.1     300     64
    AdaGrad     -                               0.3     300     47
    RMSProp     beta=0.999                      1e-3    2000    1212
    Adam        -                               0.03    400     186
    AMSGrad     amsgrad                         0.03    400     188
    AdamW       weight_decay=0                  0.03    400     186

Rosenbrock f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 from (-1.5, 2), tolerance |p - (1, 1)| < 1e-3:

    optimizer   settings                        lr      steps   (reaches tol at)
    SGD         -                               1e-3    20000   17695
    momentum    momentum=0.9                    1e-3    3000    1677
    Nesterov    momentum=0.9, nesterov          1e-3    3000    1573
    AdaGrad     -                               0.5     20000   13827
    RMSProp     beta=0.9                        3e-4    20000   16392
    Adam        -                               1e-3    13000   10453
    AMSGrad     amsgrad                         0.03    4000    3041
    AdamW       weight_decay=0                  1e-3    13000   10453

RMSProp without momentum does not converge at a constant lr: near the minimum g / sqrt(r) stays
O(1), so it ends in a cycle of size ~lr around x* (about 1.5 lr on the quadratic with beta = 0.9).
Its lr is chosen so that the cycle lies inside the tolerance (Rosenbrock), or beta = 0.999 so
that r forgets slowly enough for the steps to shrink with the gradient (quadratic).
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import optim

# (id, class, settings, lr, steps)
QUADRATIC = [
    ("sgd", optim.SGD, {}, 0.1, 300),
    ("momentum", optim.SGD, {"momentum": 0.9}, 0.1, 300),
    ("nesterov", optim.SGD, {"momentum": 0.9, "nesterov": True}, 0.1, 300),
    ("adagrad", optim.AdaGrad, {}, 0.3, 300),
    ("rmsprop", optim.RMSProp, {"beta": 0.999}, 1e-3, 2000),
    ("adam", optim.Adam, {}, 0.03, 400),
    ("amsgrad", optim.Adam, {"amsgrad": True}, 0.03, 400),
    ("adamw", optim.AdamW, {"weight_decay": 0.0}, 0.03, 400),
]

ROSENBROCK = [
    ("sgd", optim.SGD, {}, 1e-3, 20_000),
    ("momentum", optim.SGD, {"momentum": 0.9}, 1e-3, 3000),
    ("nesterov", optim.SGD, {"momentum": 0.9, "nesterov": True}, 1e-3, 3000),
    ("adagrad", optim.AdaGrad, {}, 0.5, 20_000),
    ("rmsprop", optim.RMSProp, {"beta": 0.9}, 3e-4, 20_000),
    ("adam", optim.Adam, {}, 1e-3, 13_000),
    ("amsgrad", optim.Adam, {"amsgrad": True}, 0.03, 4000),
    ("adamw", optim.AdamW, {"weight_decay": 0.0}, 1e-3, 13_000),
]


def minimize(cls, settings, lr, steps, grad, x0) -> np.ndarray:
    x = nb.tensor(x0, dtype="float64", requires_grad=True)
    opt = cls([x], lr=lr, **settings)
    for _ in range(steps):
        x.grad[...] = grad(x.data)
        opt.step()
    assert opt.iterations == steps
    return x.data


def quadratic(n: int = 10, seed: int = 0):
    """A (SPD, condition number 10), b and the minimizer x* = A^-1 b."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.geomspace(1.0, 10.0, n)) @ q.T
    b = rng.normal(size=n)
    return a, b, np.linalg.solve(a, b)


def rosenbrock_grad(p: np.ndarray) -> np.ndarray:
    x, y = p
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


def test_quadratic_is_as_stated():
    a, _, _ = quadratic()
    assert np.linalg.cond(a) == pytest.approx(10.0)
    assert np.all(np.linalg.eigvalsh(a) > 0)


@pytest.mark.parametrize(
    ("cls", "settings", "lr", "steps"), [c[1:] for c in QUADRATIC], ids=[c[0] for c in QUADRATIC]
)
def test_converges_on_a_quadratic(cls, settings, lr, steps):
    a, b, x_star = quadratic()
    x = minimize(cls, settings, lr, steps, lambda x: a @ x - b, np.zeros(len(b)))
    assert np.linalg.norm(x - x_star) < 1e-4


@pytest.mark.parametrize(
    ("cls", "settings", "lr", "steps"), [c[1:] for c in ROSENBROCK], ids=[c[0] for c in ROSENBROCK]
)
def test_converges_on_rosenbrock(cls, settings, lr, steps):
    x = minimize(cls, settings, lr, steps, rosenbrock_grad, np.array([-1.5, 2.0]))
    assert np.linalg.norm(x - np.ones(2)) < 1e-3
