"""The full text of every autograd error message, pinned word for word.

The messages are what a user reads when backward, gradcheck or an in-place change refuses to run:
each names the operation, the values involved and what to do instead. The broader tests check that
an error is raised and that it names the op and the shapes; these check the whole sentence, with
its case, from its first character to its last (``^...$``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import nabla as nb


def exactly(message: str) -> str:
    """A ``match=`` pattern that accepts ``message`` and nothing longer, shorter or re-cased."""
    return "^" + re.escape(message) + "$"


def leaf(values) -> nb.Tensor:
    return nb.tensor(values, dtype="float64", requires_grad=True)


class Twice(nb.Function):
    """y = 2 x with a constant second input, so the input shapes read "(2,), constant"."""

    @staticmethod
    def forward(ctx, x, c):
        return 2.0 * x

    @staticmethod
    def backward(ctx, g):
        return 2.0 * g, None


# --- engine -------------------------------------------------------------------------------------


def test_backward_on_a_tensor_without_grad():
    message = (
        "backward() on a tensor that does not require grad: no input of the computation "
        "has requires_grad=True (or it was computed under no_grad)"
    )
    with pytest.raises(RuntimeError, match=exactly(message)):
        nb.tensor([1.0, 2.0]).sum().backward()


def test_output_modified_after_it_was_saved():
    x = leaf([0.5, -1.0])
    y = x.tanh()  # Tanh's backward reads its own output
    y.detach().add_(1.0)
    name = type(y.grad_fn).__name__
    message = (
        f"the output of {name} was modified in place after the operation saved it for backward, "
        "so its gradient would be wrong; compute a new tensor instead"
    )
    with pytest.raises(RuntimeError, match=exactly(message)):
        y.backward(np.ones(2))


def test_input_modified_after_it_was_used():
    x = leaf([1.0, 2.0])
    y = Twice.apply(x, 3.0)
    with nb.no_grad():
        x += 1
    message = (
        "an input of Twice (input shapes (2,), constant) was modified in place after the "
        "operation used it, so its gradient would be wrong; compute a new tensor instead of "
        "writing into one that a graph still needs"
    )
    with pytest.raises(RuntimeError, match=exactly(message)):
        y.sum().backward()


# --- gradcheck ----------------------------------------------------------------------------------


def test_gradcheck_without_an_input_that_requires_grad():
    with pytest.raises(ValueError, match=exactly("gradcheck: no input requires grad")):
        nb.gradcheck(lambda t: t * 2, nb.tensor([1.0, 2.0]))


def test_gradcheck_without_a_differentiable_output():
    message = "gradcheck: no output depends differentiably on the inputs"
    with pytest.raises(ValueError, match=exactly(message)):
        nb.gradcheck(lambda t: t.detach() * 2, leaf([1.0, 2.0]))


# --- tensor -------------------------------------------------------------------------------------


def test_retain_grad_on_a_tensor_without_grad():
    message = "retain_grad() on a tensor that does not require grad"
    with pytest.raises(RuntimeError, match=exactly(message)):
        nb.tensor([1.0, 2.0]).retain_grad()


def test_len_of_a_0d_tensor():
    with pytest.raises(TypeError, match=exactly("len() of a 0-d tensor")):
        len(nb.tensor(1.0))


def test_truth_value_of_a_tensor_with_several_elements():
    message = "the truth value of a tensor with 3 elements is ambiguous; use .any() or .all()"
    with pytest.raises(ValueError, match=exactly(message)):
        bool(nb.tensor([1.0, 0.0, 1.0]))


@pytest.mark.parametrize("index", [nb.tensor(1.5), nb.tensor([1, 2], dtype="int64")])
def test_index_with_a_float_or_several_elements(index):
    message = "only one-element integer tensors can be used as an index"
    with pytest.raises(TypeError, match=exactly(message)):
        [10, 20, 30][index]


def test_in_place_change_of_a_tensor_in_a_graph():
    message = (
        "fill_: in-place change of a tensor that requires grad is not differentiable; "
        "do it under nb.no_grad() on a leaf, or compute a new tensor"
    )
    with pytest.raises(RuntimeError, match=exactly(message)):
        leaf([1.0, 2.0]).fill_(0.0)


def test_item_assignment_of_a_tensor_that_requires_grad():
    message = (
        "item assignment of a tensor that requires grad is not differentiable (its gradient "
        "would be lost); build the result with nb.where, nb.concatenate or nb.stack instead"
    )
    with pytest.raises(RuntimeError, match=exactly(message)):
        nb.zeros(3)[0] = leaf(1.0)
