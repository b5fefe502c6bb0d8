"""``gradcheck``'s details: its defaults (torch's), its tolerance test at the exact boundary, the
cotangent it projects on, the inputs it copies to float64, and its messages naming the input, the
index and both values. Exact floating-point cases (powers of two) hit each boundary exactly."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import nabla as nb


def leaf(values, dtype="float64") -> nb.Tensor:
    return nb.tensor(values, dtype=dtype, requires_grad=True)


def test_gradcheck_defaults_are_torchs():
    ours = inspect.signature(nb.gradcheck).parameters
    theirs = inspect.signature(torch.autograd.gradcheck).parameters
    for name in ("eps", "atol", "rtol", "raise_exception"):
        assert ours[name].default == theirs[name].default, name


def test_gradcheck_tolerance_is_inclusive_and_not_negative():
    """At x = 0 with eps a power of two, every value is exact: |analytic - numeric| == 0."""
    x = leaf([0.0, 0.0])
    assert nb.gradcheck(lambda t: t * 1.0, x, eps=2.0**-10, atol=0.0, rtol=0.0)
    assert nb.gradcheck(lambda t: t * 1.0, x, eps=2.0**-10, atol=0.0, rtol=1e-3)


def test_gradcheck_relative_tolerance_scales_with_the_derivative():
    """f(x) = 1000 x reported as 1001 x: off by 1e-3 relative, 1 absolute."""

    class Off(nb.Function):
        @staticmethod
        def forward(ctx, x):
            return 1000 * x

        @staticmethod
        def backward(ctx, g):
            return 1001 * g

    x = leaf([0.0])
    ok = dict(eps=2.0**-10, atol=0.0, raise_exception=False)
    assert nb.gradcheck(Off.apply, x, rtol=1.5e-3, **ok)
    assert not nb.gradcheck(Off.apply, x, rtol=0.5e-3, **ok)
    # The entries compared are projected on gradcheck's cotangent v (seed 0): off by |v|.
    v = abs(np.random.default_rng(0).standard_normal(1)[0])
    assert nb.gradcheck(Off.apply, x, rtol=0.0, atol=1.5 * v, eps=2.0**-10)
    atol = round(0.5 * v, 3)
    message = rf"\(difference {v:.3g} > atol {atol} \+ rtol 0.0 \* \|numeric\|\)$"
    with pytest.raises(nb.GradcheckError, match=message):
        nb.gradcheck(Off.apply, x, rtol=0.0, atol=atol, eps=2.0**-10)


def test_gradcheck_on_fortran_ordered_and_transposed_inputs():
    a = np.asfortranarray(np.arange(6.0).reshape(2, 3) / 7)
    x = nb.tensor(a, requires_grad=True)
    assert nb.gradcheck(lambda t: (t * t).sum(axis=0), x)
    assert nb.gradcheck(lambda t: (t * t).sum(axis=0), leaf(a.T))


def test_gradcheck_leaves_the_callers_tensor_alone_even_when_fn_raises():
    x = leaf([1.0, 2.0])
    calls = []

    def fn(t):
        calls.append(1)
        if len(calls) == 2:  # the first perturbed evaluation
            raise ArithmeticError("boom")
        return t * x  # also reads the caller's tensor, as a constant

    with pytest.raises(ArithmeticError):
        nb.gradcheck(fn, x)
    np.testing.assert_array_equal(x.data, [1.0, 2.0])
    y = leaf([1.0, 2.0])
    assert nb.gradcheck(lambda t: t * y.detach(), y)  # perturbing t must not perturb y


def test_gradcheck_errors_name_the_input_the_index_and_the_output_type():
    class Off(nb.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return 3 * g

    with pytest.raises(nb.GradcheckError, match=r"input 0 \(shape \(\)\) at index \(\):"):
        nb.gradcheck(Off.apply, leaf(0.5))
    with pytest.raises(nb.GradcheckError, match=r"input 1 \(shape \(2, 2\)\) at index \(0, 0\):"):
        nb.gradcheck(lambda c, t: Off.apply(t) * c, [nb.tensor(2.0), leaf([[0.5, 1], [2, 3]])])
    with pytest.raises(TypeError, match="got ndarray"):
        nb.gradcheck(lambda t: t.data, leaf([1.0]))


def test_gradcheck_cotangent_is_random_in_every_entry():
    """A backward that is right only along the all-ones direction (here: the reversed gradient
    of the identity) must fail: the cotangent has to differ between entries."""

    class Reversed(nb.Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, g):
            return g[::-1].copy()

    assert not nb.gradcheck(Reversed.apply, leaf([1.0, 2.0]), raise_exception=False)
    assert nb.gradcheck(lambda t: t * 1.0, leaf([1.0, 2.0]))


def test_gradcheck_passes_integer_inputs_through_unchanged():
    index = nb.tensor([2, 0])
    x = leaf([1.0, 2.0, 3.0])
    seen = []

    def fn(t, i):
        seen.append(i.dtype)
        return t[i] * 2

    assert nb.gradcheck(fn, [x, index])
    assert set(seen) == {np.dtype(np.int64)}
