"""L-BFGS' strong Wolfe line search and its cubic interpolation, against torch.optim.lbfgs.

``cubic_minimizer`` on exact cubics, a double root and its fallbacks; ``strong_wolfe`` on random
one-dimensional lines and on hand-made ones whose search takes each branch of the bracketing and
zoom phases (a kink where the curvature condition never holds, exact quadratics where a trial
lands on a threshold), with non-default c1, c2, tolerance and call limits; and whole L-BFGS steps
whose search runs out of calls or meets a concave line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import optim
from nabla.optim.lbfgs import _Point, cubic_minimizer

# --- L-BFGS' line search helper -------------------------------------------------------------------


def test_cubic_minimizer_of_a_cubic_and_its_fallbacks():
    """f(t) = (t - 1)^2 (t + 2) has its local minimum at t = 1; two points with values and
    slopes determine the cubic, so the minimizer is exact, whichever point comes first."""

    def point(t):
        return _Point(t, (t - 1) ** 2 * (t + 2), None, 3 * t * t - 3)

    assert cubic_minimizer(point(0.0), point(2.0)) == pytest.approx(1.0, rel=1e-12)
    assert cubic_minimizer(point(2.0), point(0.5)) == pytest.approx(1.0, rel=1e-12)
    assert cubic_minimizer(point(0.0), point(2.0), bounds=(1.5, 3.0)) == 1.5  # clipped
    assert cubic_minimizer(point(0.0), point(2.0), bounds=(-1.0, 0.5)) == 0.5
    # rising at both ends more steeply than the values rise: no real minimizer, the midpoint
    a, b = _Point(0.0, 0.0, None, 3.0), _Point(1.0, 2.0, None, 3.0)
    assert cubic_minimizer(a, b) == 0.5
    assert cubic_minimizer(a, b, bounds=(2.0, 3.0)) == 2.5


def line_functions():
    """1-D functions f(t) with slopes, for the line search along d = [1]: quartics with a
    narrow or a wide valley (the zoom phase narrows the bracket many times), waves whose slope
    turns, and a function unbounded below (the bracketing phase runs out of calls)."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        a, b, s = rng.uniform(0.05, 5.0), rng.uniform(-1.0, 1.0), rng.uniform(0.5, 50.0)
        yield lambda t, a=a, b=b, s=s: (
            s * (t - a) ** 4 + b * t - s * a**4,
            4 * s * (t - a) ** 3 + b,
        )
    for _ in range(30):
        w, c = rng.uniform(0.5, 20.0), rng.uniform(0.1, 3.0)
        yield lambda t, w=w, c=c: (
            math.sin(w * t) * c / w - t + t * t,
            math.cos(w * t) * c - 1 + 2 * t,
        )
    for _ in range(40):  # double wells: the search may stop in either well
        a, b, s = rng.uniform(0.3, 3.0), rng.uniform(0.05, 2.0), rng.uniform(0.1, 10.0)
        yield lambda t, a=a, b=b, s=s: (
            s * ((t - a) ** 2 - a * a) ** 2 - b * t,
            4 * s * ((t - a) ** 2 - a * a) * (t - a) - b,
        )
    yield lambda t: (-(t + t**3), -(1 + 3 * t * t))  # (an exact quadratic: see the notes)


@pytest.mark.parametrize("t0", [1e-2, 0.3, 1.0, 3.0, 7.0])
def test_line_search_matches_torch_on_one_dimensional_functions(t0):
    """Every branch of the bracketing and zoom phases, against torch.optim.lbfgs._strong_wolfe
    with its defaults (c1 = 1e-4, c2 = 0.9, tolerance 1e-9, 25 calls after the first)."""
    from nabla.optim.lbfgs import strong_wolfe

    torch_search = getattr(pytest.importorskip("torch.optim.lbfgs"), "_strong_wolfe", None)
    if torch_search is None:
        pytest.skip("torch.optim.lbfgs no longer has _strong_wolfe")
    d = np.array([1.0])
    for fun in line_functions():
        f0, g0 = fun(0.0)
        if g0 >= 0:
            continue  # not a descent direction

        def phi(t, fun=fun):
            f_t, g_t = fun(float(t))
            return f_t, np.array([g_t])

        def obj_func(_, t, d_torch, fun=fun):
            f_t, g_t = fun(float(t))
            return f_t, torch.tensor([g_t], dtype=torch.float64)

        ours = strong_wolfe(phi, t0, d, f0, np.array([g0]), g0)
        theirs = torch_search(
            obj_func,
            None,
            t0,
            torch.tensor(d),
            f0,
            torch.tensor([g0], dtype=torch.float64),
            torch.tensor(g0, dtype=torch.float64),
        )
        assert ours[3] == theirs[3]
        assert ours[0] == pytest.approx(float(theirs[2]), rel=1e-10, abs=1e-300)
        assert ours[1] == pytest.approx(float(theirs[0]), rel=1e-10, abs=1e-12)


def test_cubic_minimizer_at_a_double_root():
    """d1^2 = g_a g_b: the cubic's stationary points coincide (a saddle) and eq. 3.59 still
    gives a point (torch's _cubic_interpolate agrees), not the midpoint fallback."""
    a, b = _Point(0.0, 0.0, None, -1.0), _Point(1.0, -1.0, None, -4.0)
    assert cubic_minimizer(a, b) == pytest.approx(1 / 3, rel=1e-15)
    interpolate = getattr(pytest.importorskip("torch.optim.lbfgs"), "_cubic_interpolate", None)
    if interpolate is not None:
        x = [torch.tensor(v, dtype=torch.float64) for v in (0.0, 0.0, -1.0, 1.0, -1.0, -4.0)]
        assert float(interpolate(*x)) == pytest.approx(1 / 3, rel=1e-15)


@pytest.mark.parametrize("max_eval", [1, 2])
def test_lbfgs_line_search_within_max_eval_matches_torch(max_eval):
    """A first trial that overshoots, with max_eval leaving the search no call after it (it
    keeps t = 0 and the gradient there) or one, as torch.optim.LBFGS does."""

    def run(w, opt_cls):
        opt = opt_cls([w], lr=10.0, max_iter=3, max_eval=max_eval, line_search_fn="strong_wolfe")
        calls = []

        def closure():
            calls.append(1)
            opt.zero_grad()
            loss = (100 * (w - 1.0) ** 2).sum()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return np.array(w.detach().numpy() if isinstance(w, torch.Tensor) else w.data), len(calls)

    ours = run(nb.tensor([3.0], dtype="float64", requires_grad=True), optim.LBFGS)
    theirs = run(torch.tensor([3.0], dtype=torch.float64, requires_grad=True), torch.optim.LBFGS)
    assert ours[1] == theirs[1]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)


def test_strong_wolfe_on_a_concave_quadratic_line_steps_on_instead_of_dividing_by_zero():
    """Along d the loss -(w + w^2) is a concave quadratic: the interpolating cubic has no
    minimizer (its denominator is 0), and the search takes the bracket's midpoint, as the
    docstring of ``cubic_minimizer`` says (this raised ZeroDivisionError)."""
    w = nb.tensor([0.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([w], max_iter=3, line_search="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -(w + w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert np.isfinite(w.data).all() and w.item() > 1.0  # moved downhill, finitely


def hand_made_line(kind, params):
    """F(x) and F'(x) of one hand-made family (the search runs on F(t * scale))."""
    if kind == "kink":  # slope -1, then b after x = a: the curvature condition never holds
        a, b = params
        return lambda x: (-x, -1.0) if x < a else (-a + b * (x - a), b)
    if kind == "quad":  # -x + b x^2 / 2, exact in binary
        (b,) = params
        return lambda x: (-x + 0.5 * b * x * x, -1.0 + b * x)
    if kind == "power":  # (x - a)^p - a^p
        a, p = params
        return lambda x: ((x - a) ** p - a**p, p * (x - a) ** (p - 1))
    if kind == "flat":  # f constant, the slope -1 then b: every f is a tie
        a, b = params
        return lambda x: (0.0, -1.0 if x < a else b)
    if kind == "shelf":  # -x up to a, then f constant (a tie) with the slope b
        a, b = params
        return lambda x: (-x, -1.0) if x < a else (-a, b)
    a, b, s = params  # a double well tilted by b
    return lambda x: (
        s * ((x - a) ** 2 - a * a) ** 2 - b * x,
        4 * s * ((x - a) ** 2 - a * a) * (x - a) - b,
    )


# (family, its parameters, scale of d, first trial t, c1, c2, tolerance, calls): each takes a
# branch the random lines above do not, or lands a trial on a threshold
HAND_MADE = [
    ("power", (0.5784, 2), 50.0, 0.5, 0.5, 0.9, 1e-09, 3),  # a trial moved in from t_max
    ("kink", (0.5, 3.0), 0.1, 4.0, 0.0001, 0.5, 1e-09, 25),  # ... from t_min
    ("quad", (3.0,), 50.0, 1.0, 0.5, 0.75, 1e-09, 6),
    ("kink", (0.3, 2.0), 3.0, 4.0, 0.0001, 0.25, 0.01, 6),  # bracket below tolerance, |d| = 3
    ("kink", (1.0, 1.0), 0.1, 7.0, 0.0001, 0.9, 1e-09, 25),  # zoom to the tolerance
    ("power", (2.9836, 4), 3.0, 2.0, 0.5, 0.9, 0.1, 6),  # the low end replaced
    ("quad", (1.0,), 0.001, 1.0, 0.5, 0.75, 1e-09, 25),  # f(t) = f + c1 t g'd exactly
    ("quad", (0.5,), 0.001, 0.5, 0.1, 0.75, 0.1, 25),  # |g'(t)| = c2 |g'(0)| exactly
    ("kink", (2.0, 0.5), 0.1, 0.5, 0.1, 0.9, 1e-09, 3),  # the second trial not lower
    ("power", (2.2434, 6), 3.0, 1.5, 0.25, 0.5, 1e-09, 25),
    ("well", (1.3686, 0.5136, 2.8743), 50.0, 0.05, 0.25, 0.9, 0.01, 25),  # stalled twice
    # a trial moved in from t_min lands on t_min exactly
    (
        "well",
        (2.524530637977233, 0.9299150601224171, 7.811187413490701),
        0.1,
        0.3,
        0.5,
        0.75,
        1e-09,
        25,
    ),
    ("well", (2.8265, 1.9747, 1.805), 0.1, 1.0, 0.0001, 0.5, 0.1, 6),
    # c1 = 0 and equal values: the ties go as in torch (the lower end is the first of equals,
    # a trial no lower than the low end replaces the high end)
    ("shelf", (0.25, 1.0), 50.0, 1.5, 0.0, 0.9, 1e-09, 6),
    ("flat", (0.25, 2.0), 50.0, 0.5, 0.0, 0.75, 0.01, 25),
    ("flat", (100.0, 1.0), 1.0, 1.0, 0.0, 0.9, 1e-09, 1),  # out of calls: t = 0 on a tie
]


@pytest.mark.parametrize("case", HAND_MADE, ids=lambda c: f"{c[0]}{c[1]}-t{c[3]}")
def test_line_search_matches_torch_on_hand_made_lines(case):
    """The same step, value and call count as torch's _strong_wolfe with the same c1, c2,
    tolerance_change and max_ls, along d = [scale]."""
    from nabla.optim.lbfgs import strong_wolfe

    torch_search = getattr(pytest.importorskip("torch.optim.lbfgs"), "_strong_wolfe", None)
    if torch_search is None:
        pytest.skip("torch.optim.lbfgs no longer has _strong_wolfe")
    kind, params, scale, t0, c1, c2, tolerance, calls = case
    fun = hand_made_line(kind, params)
    f0, g0 = fun(0.0)
    d = np.array([scale])

    def phi(t):
        f_t, g_t = fun(float(t) * scale)
        return f_t, np.array([g_t])

    def obj_func(_, t, d_torch):
        f_t, g_t = fun(float(t) * scale)
        return f_t, torch.tensor([g_t], dtype=torch.float64)

    ours = strong_wolfe(
        phi,
        t0,
        d,
        f0,
        np.array([g0]),
        g0 * scale,
        c1=c1,
        c2=c2,
        tolerance=tolerance,
        max_evals=calls,
    )
    theirs = torch_search(
        obj_func,
        None,
        t0,
        torch.tensor(d),
        f0,
        torch.tensor([g0], dtype=torch.float64),
        torch.tensor(g0 * scale, dtype=torch.float64),
        c1=c1,
        c2=c2,
        tolerance_change=tolerance,
        max_ls=calls,
    )
    assert ours[3] == theirs[3]
    assert ours[0] == pytest.approx(float(theirs[2]), rel=1e-12, abs=1e-300)
    assert ours[1] == pytest.approx(float(theirs[0]), rel=1e-12, abs=1e-12)


def test_cubic_minimizer_on_a_straight_stretch_takes_the_midpoint_of_the_bounds():
    """Two points on one line (f = -t, slope -1 at both): the cubic is that line, with no
    minimizer; the docstring's fallback is the bounds' midpoint. (torch's _cubic_interpolate
    divides by zero there and clamps the nan to its upper bound, so a search along a straight
    stretch takes other trials than torch's.)"""
    a, b = _Point(0.0, 0.0, None, -1.0), _Point(1.0, -1.0, None, -1.0)
    assert cubic_minimizer(a, b) == 0.5
    assert cubic_minimizer(b, a, bounds=(1.01, 10.0)) == 5.505
