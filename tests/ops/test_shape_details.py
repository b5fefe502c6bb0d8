"""Details of the shape operations: PyTorch's argument names, reshape, transpose, flatten, squeeze,
indexing, joining, splitting and padding, against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_pairs import check, data

import nabla as nb
from nabla.ops.axis_names import pytorch_names
from nabla.ops.shape import _is_basic

# --- PyTorch's argument names --------------------------------------------------------------------


def test_pytorch_names_rename_and_refuse_two_different_values():
    x = nb.tensor(data((2, 3)))
    np.testing.assert_allclose(x.sum(dim=1).data, x.sum(axis=1).data)
    assert x.sum(1, dim=1).shape == (2,) and x.sum(axis=1, dim=1).shape == (2,)
    message = r"sum\(\) got axis=1 and dim=0; dim is PyTorch's name for axis: give one of them"
    with pytest.raises(TypeError, match=message):
        x.sum(1, dim=0)
    with pytest.raises(TypeError, match=message):
        x.sum(axis=1, dim=0)
    with pytest.raises(TypeError, match=r"got keepdims=True and keepdim=False"):
        nb.sum(x, 1, True, keepdim=False)
    with pytest.raises(TypeError, match=r"var\(\) got ddof=0 and correction=1"):
        nb.var(x, None, 0, correction=1)


def test_pytorch_names_are_added_only_for_arguments_the_function_has():
    @pytorch_names
    def f(x, axis=0):
        """Doc."""
        return x, axis

    parameters = inspect_parameters(f)
    assert list(parameters) == ["x", "axis", "dim"]
    assert (
        parameters["dim"].default is None
        and parameters["dim"].kind == parameters["dim"].KEYWORD_ONLY
    )
    assert f(1, dim=2) == (1, 2) and f(1, 3) == (1, 3) and f(1) == (1, 0)
    assert f.__name__ == "f" and f.__doc__ == "Doc."
    with pytest.raises(TypeError, match="unexpected keyword argument 'keepdim'"):
        f(1, keepdim=True)


def inspect_parameters(fn):
    import inspect

    return inspect.signature(fn).parameters


# --- reshape, transpose, flatten, squeeze ------------------------------------------------------


def test_reshape_accepts_a_tuple_a_list_or_integers_and_explains_a_mismatch():
    x = nb.arange(6)
    for shape in ((2, 3), [2, 3], (np.int64(2), 3)):
        assert x.reshape(shape).shape == (2, 3)
    assert x.reshape(3, -1).shape == (3, 2) and x.view(6).shape == (6,)
    with pytest.raises(
        ValueError, match=r"reshape: cannot view \(6,\) \(6 elements\) as shape \(4,\)"
    ):
        x.reshape(4)


@pytest.mark.parametrize("axes", [(1, 2, 0), (2, 0, 1), (-1, 0, 1), (0, 2, 1)])
def test_transpose_and_permute_gradients_undo_the_permutation(axes):
    array = data((2, 3, 4))
    check(lambda x: x.permute(*axes), lambda t: t.permute(*axes), array)
    check(lambda x: x.transpose(axes), lambda t: t.permute(*axes), array)


def test_transpose_without_axes_reverses_them_and_validates_a_permutation():
    array = data((2, 3, 4))
    check(lambda x: x.T, lambda t: t.permute(2, 1, 0), array)
    check(lambda x: x.swapaxes(0, 1), lambda t: t.swapaxes(0, 1), array)
    check(lambda x: x.swapaxes(-1, 1), lambda t: t.swapaxes(-1, 1), array)
    x = nb.tensor(array)
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 0, 1\) are not a permutation of 3"):
        x.transpose(0, 0, 1)
    with pytest.raises(ValueError, match=r"not a permutation"):
        x.transpose(0, 1)
    scalar = nb.tensor(1.0)
    for axes in ((), (0,), (-1,)):
        assert scalar.transpose(*axes) is scalar
    with pytest.raises(ValueError, match=r"transpose: axes \(1,\) for a 0-d tensor"):
        scalar.transpose(1)


@pytest.mark.parametrize("start, end", [(0, -1), (1, -1), (0, 1), (1, 2), (-2, -1), (2, 2)])
def test_flatten_matches_torch(start, end):
    array = data((2, 3, 4))
    check(lambda x: x.flatten(start, end), lambda t: t.flatten(start, end), array)


def test_flatten_defaults_a_scalar_and_a_reversed_range():
    x = nb.tensor(data((2, 3, 4)))
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert nb.tensor(3.0).flatten().shape == (1,) == tuple(torch.tensor(3.0).flatten().shape)
    with pytest.raises(ValueError, match="flatten: start_dim 2 comes after end_dim 1"):
        x.flatten(2, 1)
    with pytest.raises(ValueError, match="flatten: start_dim -1 comes after end_dim 0"):
        x.flatten(-1, 0)


def test_squeeze_all_one_or_several_axes_and_refuse_a_longer_axis():
    x = nb.zeros((1, 3, 1, 1))
    assert x.squeeze().shape == (3,)
    assert x.squeeze(0).shape == (3, 1, 1) and x.squeeze(-1).shape == (1, 3, 1)
    assert x.squeeze((0, 2)).shape == (3, 1) and x.squeeze(dim=2).shape == (1, 3, 1)
    with pytest.raises(
        ValueError, match=r"squeeze: axis 1 has length 3, not 1 \(shape \(1, 3, 1, 1\)\)"
    ):
        x.squeeze(1)
    with pytest.raises(ValueError, match="squeeze: axis 1 has length 3"):
        x.squeeze((0, -3))
    scalar = nb.tensor(2.0)
    assert (
        scalar.squeeze() is scalar and scalar.squeeze(0) is scalar and scalar.squeeze(-1) is scalar
    )
    with pytest.raises(ValueError, match="squeeze: axis 1 for a 0-d tensor"):
        scalar.squeeze(1)


def test_unsqueeze_and_broadcast_to():
    array = data((2, 3))
    check(lambda x: x.unsqueeze(1), lambda t: t.unsqueeze(1), array)
    check(lambda x: x.expand_dims(-1), lambda t: t.unsqueeze(-1), array)
    check(lambda x: x.broadcast_to([4, 2, 3]), lambda t: t.broadcast_to((4, 2, 3)), array)
    with pytest.raises(
        ValueError, match=r"broadcast_to: cannot broadcast shape \(2, 3\) to \(3, 3\)"
    ):
        nb.tensor(array).broadcast_to((3, 3))


# --- indexing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index",
    [
        (slice(None), 1),
        (Ellipsis, None, slice(1, 3)),
        np.int64(1),
        ([0, 0, 2],),
        (slice(None), [1, 1, 3]),
        (np.array([True, False, True]),),
    ],
    ids=["basic", "ellipsis-none", "np-int", "repeated-rows", "repeated-columns", "mask"],
)
def test_indexing_gradients_scatter_back_and_accumulate_repeats(index):
    array = data((3, 4))
    torch_index = tuple(
        torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i
        for i in (index if isinstance(index, tuple) else (index,))
    )
    check(lambda x: x[index], lambda t: t[torch_index], array)


def test_basic_indices_are_told_apart_from_advanced_ones():
    """Basic indices (None, ..., slices, integers) take the backward's plain assignment; lists
    and arrays take the scatter-add that accumulates repeats."""
    for index in (1, np.int64(1), slice(1, 3), Ellipsis, None, (None, Ellipsis, slice(2), 0)):
        assert _is_basic(index), index
    for index in ([0, 0], np.array([1]), (slice(None), [0, 0]), (Ellipsis, np.array([True]))):
        assert not _is_basic(index), index


def test_index_given_as_a_tensor_or_a_list():
    array = data((3, 4))
    check(lambda x: x[nb.tensor([2, 2])], lambda t: t[torch.tensor([2, 2])], array)
    check(lambda x: x[[0, 0]], lambda t: t[[0, 0]], array)
    check(lambda x: x[1, nb.tensor([3, 3])], lambda t: t[1, torch.tensor([3, 3])], array)


# --- joining and splitting -----------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack_gradients_match_torch(axis):
    a, b, c = data((2, 3), 1), data((2, 3), 2), data((2, 3), 3)
    check(lambda *x: nb.concatenate(x, axis=axis), lambda *t: torch.cat(t, dim=axis), a, b, c)
    check(lambda *x: nb.stack(x, axis=axis), lambda *t: torch.stack(t, dim=axis), a, b, c)
    check(lambda *x: nb.cat(x, dim=axis), lambda *t: torch.cat(t, dim=axis), a, b)


def test_joining_defaults_to_axis_0_and_converts_arrays():
    a, b = np.ones((2, 3)), np.zeros((2, 3))
    assert nb.concatenate([a, b]).shape == (4, 3) and nb.stack([a, b]).shape == (2, 2, 3)
    assert isinstance(nb.stack([a, nb.tensor(b)]), nb.Tensor)
    # plain arrays become tensors as nb.tensor makes them: float data is float32
    assert nb.concatenate([a, b]).dtype == np.float32 and nb.stack([a, b]).dtype == np.float32


def test_joining_errors_name_the_operation_and_the_shapes():
    a, b = nb.ones((2, 3)), nb.ones((2, 4))
    with pytest.raises(
        ValueError, match=r"concatenate: shapes \[\(2, 3\), \(2, 4\)\] differ outside axis 0"
    ):
        nb.concatenate([a, b])
    with pytest.raises(
        ValueError, match=r"stack: all tensors need the same shape, got \[\(2, 3\), \(2, 4\)\]"
    ):
        nb.stack([a, b])
    for name in ("concatenate", "stack"):
        with pytest.raises(ValueError, match=f"{name}: needs at least one tensor"):
            getattr(nb, name)([])


def test_split_into_sections_or_at_indices_like_numpy():
    array = data((4, 6))
    x = nb.tensor(array)
    for sections, axis in ((2, 0), (3, 1), (1, 0), (6, -1), ([1, 3], 1), ([2], 0)):
        pieces = x.split(sections, axis=axis)
        expected = np.split(array.astype(np.float32), sections, axis=axis)
        assert len(pieces) == len(expected)
        for piece, reference in zip(pieces, expected):
            np.testing.assert_array_equal(piece.data, reference)
    assert [p.shape for p in x.split(2)] == [(2, 6), (2, 6)]
    for bad in (0, -2, 3):
        with pytest.raises(
            ValueError, match=f"split: axis 0 of length 4 does not divide into {bad}"
        ):
            x.split(bad)


def test_split_gradient_reaches_each_piece():
    x = nb.tensor(data((4, 6)), dtype="float64", requires_grad=True)
    a, b, c = x.split(3, axis=-1)
    (a * 1 + b * 2 + c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, np.repeat([[1.0, 2.0, 3.0]], 2, axis=1).repeat(4, 0))


@pytest.mark.parametrize("width", [1, (1, 2), ((0, 1), (2, 0))])
def test_pad_matches_torch_and_its_gradient_is_the_inner_slice(width):
    array = data((2, 3))
    w = np.broadcast_to(np.asarray(width), (2, 2))
    torch_pad = (int(w[1, 0]), int(w[1, 1]), int(w[0, 0]), int(w[0, 1]))
    check(lambda x: x.pad(width), lambda t: TF.pad(t, torch_pad), array)
    check(lambda x: nb.pad(x, width, 2.5), lambda t: TF.pad(t, torch_pad, value=2.5), array)


@pytest.mark.parametrize("width", [1.0, (1, 2.5), [[0, 1], [1.5, 0]]])
def test_pad_refuses_widths_that_are_not_integers_like_numpy_pad(width):
    with pytest.raises(TypeError, match="integral"):
        np.pad(np.ones((2, 3)), width)
    with pytest.raises(TypeError, match=r"^pad: pad widths must be integers, got "):
        nb.ones((2, 3)).pad(width)


def test_pad_refuses_a_negative_width():
    x = nb.ones((2, 3))
    with pytest.raises(ValueError, match=r"pad: negative pad width \(\(0, 0\), \(-1, 1\)\)"):
        x.pad(((0, 0), (-1, 1)))
    assert x.pad(0).shape == (2, 3)
