"""The lab's 2-D test functions: autograd gradients against finite differences and the analytic
formulas, the listed minima (gradient 0, the listed value, the lowest on a grid), the saddle."""

import math

import numpy as np
import pytest

import nabla as nb
from nabla.lab import functions
from nabla.lab.functions import FUNCTIONS, OPTIMIZERS


def analytic_gradient(name, x, y):
    """The gradients derived by hand, in NumPy."""
    if name == "beale":
        a, b, c = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
        return np.array(
            [
                2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1),
                2 * a * x + 4 * b * x * y + 6 * c * x * y**2,
            ]
        )
    if name == "rosenbrock":
        return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])
    if name == "himmelblau":
        a, b = x**2 + y - 11, x + y**2 - 7
        return np.array([4 * x * a + 2 * b, 2 * a + 4 * y * b])
    if name == "saddle":
        return np.array([2 * x, -2 * y])
    if name == "valley":
        c, s = math.cos(functions.VALLEY_ANGLE), math.sin(functions.VALLEY_ANGLE)
        lu, lv = functions.VALLEY_CURVATURES
        u, v = c * x + s * y, -s * x + c * y
        return np.array([lu * u * c - lv * v * s, lu * u * s + lv * v * c])
    if name == "rastrigin":
        return np.array([2 * t + 20 * math.pi * math.sin(2 * math.pi * t) for t in (x, y)])
    raise AssertionError(f"no analytic gradient for {name}")


def points(function, n=5, seed=0):
    """The start point and ``n`` seeded random points of the domain."""
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = function.domain
    return [function.start, *zip(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n))]


def hessian(function, point, h=1e-5):
    """Central differences of the autograd gradient."""
    columns = []
    for i in range(2):
        step = np.zeros(2)
        step[i] = h
        columns.append((function.gradient(point + step) - function.gradient(point - step)) / 2 / h)
    return np.array(columns).T


def test_the_registry_names_the_six_functions():
    assert set(FUNCTIONS) == {"beale", "rosenbrock", "himmelblau", "saddle", "valley", "rastrigin"}
    for name, function in FUNCTIONS.items():
        assert function.name == name and functions.get(name) is function


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_autograd_gradient_passes_gradcheck_in_float64(name):
    function = FUNCTIONS[name]
    for point in points(function):
        p = nb.tensor(point, dtype="float64", requires_grad=True)
        assert nb.gradcheck(function, p, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_autograd_gradient_equals_the_analytic_gradient(name):
    function = FUNCTIONS[name]
    for x, y in points(function, seed=1):
        expected = analytic_gradient(name, x, y)
        np.testing.assert_allclose(function.gradient((x, y)), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", [n for n, f in FUNCTIONS.items() if f.minima])
def test_each_listed_minimum_is_a_minimum_with_the_listed_value(name):
    function = FUNCTIONS[name]
    for point in function.minima:
        p = nb.tensor(point, dtype="float64")
        assert abs(float(function(p)) - function.f_min) < 1e-12
        assert np.linalg.norm(function.gradient(point)) < 1e-8
        assert np.all(np.linalg.eigvalsh(hessian(function, np.array(point))) > 0)


@pytest.mark.parametrize("name", [n for n, f in FUNCTIONS.items() if f.minima])
def test_no_point_of_the_domain_is_lower_than_the_listed_minimum(name):
    function = FUNCTIONS[name]
    (x0, x1), (y0, y1) = function.domain
    grid = np.meshgrid(np.linspace(x0, x1, 301), np.linspace(y0, y1, 301))
    assert function.value(*grid).min() >= function.f_min - 1e-12


def test_himmelblau_lists_its_four_distinct_minima():
    minima = np.array(FUNCTIONS["himmelblau"].minima)
    assert minima.shape == (4, 2)
    gaps = np.linalg.norm(minima[:, None] - minima[None], axis=-1)
    assert gaps[~np.eye(4, dtype=bool)].min() > 1.0


def test_the_saddle_has_no_minimum_and_a_saddle_point_at_the_origin():
    saddle = FUNCTIONS["saddle"]
    assert saddle.minima == () and saddle.f_min is None
    assert saddle.saddle_points == ((0.0, 0.0),)
    np.testing.assert_allclose(saddle.gradient((0.0, 0.0)), [0.0, 0.0], atol=0)
    eigenvalues = np.linalg.eigvalsh(hessian(saddle, np.zeros(2)))
    assert eigenvalues[0] < 0 < eigenvalues[1]  # one direction down, one up
    np.testing.assert_allclose(hessian(saddle, np.zeros(2)), [[2, 0], [0, -2]], atol=1e-6)
    assert saddle.value(0.0, 10.0) < saddle.value(0.0, 1.0) < 0  # unbounded below along y


def test_the_valley_is_rotated_and_has_condition_number_100():
    valley = FUNCTIONS["valley"]
    eigenvalues, vectors = np.linalg.eigh(hessian(valley, np.array([0.3, -0.2])))
    np.testing.assert_allclose(eigenvalues[1] / eigenvalues[0], 100.0, rtol=1e-5)
    # the long axis (small curvature) lies 45 degrees off the x axis: no coordinate is aligned
    assert abs(abs(vectors[0, 0]) - math.sqrt(0.5)) < 1e-6


def test_each_function_knows_its_domain_start_and_learning_rates():
    for function in FUNCTIONS.values():
        (x0, x1), (y0, y1) = function.domain
        assert x0 < function.start[0] < x1 and y0 < function.start[1] < y1
        for mx, my in function.minima:
            assert x0 <= mx <= x1 and y0 <= my <= y1
        assert set(function.lrs) == set(OPTIMIZERS)
        assert all(lr > 0 for lr in function.lrs.values())
        low, high = function.box()
        assert np.all(low < [x0, y0]) and np.all(high > [x1, y1])


def test_the_saddle_compares_every_optimizer_at_one_learning_rate():
    assert len(set(FUNCTIONS["saddle"].lrs.values())) == 1


def test_functions_evaluate_whole_grids_and_refuse_a_wrong_shape():
    beale = FUNCTIONS["beale"]
    xs, ys = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 3))
    grid = beale.value(xs, ys)
    assert grid.shape == (3, 4) and grid.dtype == np.float64
    one = beale(nb.tensor([xs[1, 2], ys[1, 2]], dtype="float64"))
    assert float(one) == grid[1, 2]
    with pytest.raises(ValueError, match=r"beale: expected a point of shape \(2,\)"):
        beale(nb.tensor([1.0, 2.0, 3.0]))


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="no test function 'booth'; choose one of beale"):
        functions.get("booth")
