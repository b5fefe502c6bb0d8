"""Grad mode: no_grad, enable_grad and set_grad_enabled as context managers and decorators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    assert nb.is_grad_enabled()
    yield
    enabled = nb.is_grad_enabled()
    nb.set_grad_enabled(True).__enter__()  # repair for the next test whatever happened here
    assert enabled, "the test left grad mode disabled"


def x_leaf() -> nb.Tensor:
    return nb.tensor([1.0, 2.0], requires_grad=True)


def test_enabled_by_default_and_ops_record():
    x = x_leaf()
    y = x * 2.0
    assert y.requires_grad and y.grad_fn is not None


def test_no_grad_context_manager():
    x = x_leaf()
    with nb.no_grad():
        assert not nb.is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert nb.is_grad_enabled()
    assert not y.requires_grad
    assert y.grad_fn is None and y.is_leaf
    np.testing.assert_allclose(y.item(), np.exp(2 * x.data).sum(), rtol=1e-6)


def test_no_grad_keeps_leaves_requiring_grad():
    x = x_leaf()
    with nb.no_grad():
        assert x.requires_grad


def test_no_grad_result_can_be_used_as_a_constant_later():
    x = x_leaf()
    with nb.no_grad():
        c = x * 3.0
    (c * x).sum().backward()
    np.testing.assert_allclose(x.grad, c.data)  # c contributes no gradient path of its own


def test_no_grad_decorator():
    @nb.no_grad()
    def double(t):
        assert not nb.is_grad_enabled()
        return t * 2.0

    y = double(x_leaf())
    assert not y.requires_grad
    assert nb.is_grad_enabled()
    assert double.__name__ == "double"  # functools.wraps


def test_no_grad_bare_decorator_like_torch():
    # torch accepts @torch.no_grad without parentheses; so should nabla.
    @torch.no_grad
    def torch_double(t):
        return t * 2.0

    assert not torch_double(torch.ones(1, requires_grad=True)).requires_grad

    @nb.no_grad
    def double(t):
        return t * 2.0

    assert not double(x_leaf()).requires_grad


def test_no_grad_decorator_is_reentrant():
    @nb.no_grad()
    def depth(n):
        assert not nb.is_grad_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(5) == 5
    assert nb.is_grad_enabled()


def test_nested_no_grad():
    with nb.no_grad():
        with nb.no_grad():
            assert not nb.is_grad_enabled()
        assert not nb.is_grad_enabled()  # the inner exit restores the outer state, not "on"
    assert nb.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = x_leaf()
    with nb.no_grad():
        with nb.enable_grad():
            assert nb.is_grad_enabled()
            y = (x * x).sum()
        assert not nb.is_grad_enabled()
        z = x * x
    assert y.requires_grad and not z.requires_grad
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_enable_grad_decorator_inside_no_grad():
    @nb.enable_grad()
    def square(t):
        return t * t

    with nb.no_grad():
        y = square(x_leaf())
        assert not nb.is_grad_enabled()
    assert y.requires_grad


@pytest.mark.parametrize("mode", [True, False])
def test_set_grad_enabled_context_manager(mode):
    x = x_leaf()
    with nb.set_grad_enabled(mode):
        assert nb.is_grad_enabled() is mode
        y = x * 2.0
    assert nb.is_grad_enabled()
    assert y.requires_grad is mode


def test_set_grad_enabled_restores_the_enclosing_mode():
    with nb.no_grad():
        with nb.set_grad_enabled(True):
            assert nb.is_grad_enabled()
        assert not nb.is_grad_enabled()


def test_set_grad_enabled_decorator():
    @nb.set_grad_enabled(False)
    def f(t):
        return t * 2.0

    assert not f(x_leaf()).requires_grad
    assert nb.is_grad_enabled()


def test_set_grad_enabled_as_a_function_call_like_torch():
    # torch.set_grad_enabled(False) switches the mode at once, without a with block.
    torch.set_grad_enabled(False)
    torch_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    nb.set_grad_enabled(False)
    mode = nb.is_grad_enabled()
    nb.set_grad_enabled(True)
    assert torch_mode is False
    assert mode is False


def test_set_grad_enabled_accepts_truthy_values():
    with nb.set_grad_enabled(0):
        assert nb.is_grad_enabled() is False


@pytest.mark.parametrize(
    "manager", [nb.no_grad, nb.enable_grad, lambda: nb.set_grad_enabled(False)]
)
def test_mode_restored_after_exception_in_with(manager):
    with pytest.raises(KeyError):
        with manager():
            raise KeyError("boom")
    assert nb.is_grad_enabled()


def test_mode_restored_after_exception_inside_no_grad_inside_no_grad():
    with nb.no_grad():
        with pytest.raises(ValueError):
            with nb.enable_grad():
                raise ValueError
        assert not nb.is_grad_enabled()
    assert nb.is_grad_enabled()


def test_mode_restored_after_exception_in_decorated_function():
    @nb.no_grad()
    def fail():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert nb.is_grad_enabled()


def test_exception_propagates_out_of_the_manager():
    with pytest.raises(RuntimeError, match="not swallowed"):
        with nb.no_grad():
            raise RuntimeError("not swallowed")


def test_operations_under_no_grad_keep_no_graph():
    x = x_leaf()
    with nb.no_grad():
        y = x.exp() * x + x.sum()
    with pytest.raises(RuntimeError):
        y.sum().backward()
