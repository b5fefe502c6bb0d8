"""Details of the shape operations, reductions, matrix products and PyTorch argument names that the
op table in test_ops.py does not reach: validation at its exact boundaries (axes at -ndim and
ndim, ddof = n, inner dimensions), error messages that name the operation and the shapes, the
backward of every layout (keepdims, permutations, repeated indices, vectors in matmul) against
PyTorch, and the defaults PyTorch documents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nabla as nb
import nabla.nn.functional as F
from nabla.ops import linalg
from nabla.ops.axis_names import pytorch_names
from nabla.ops.reduce import _axes


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is the fastest on a shared machine
    yield
    torch.set_num_threads(previous)


def data(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def both(array, grad=True):
    """The same float64 values as a nabla tensor and a torch tensor, both requiring grad."""
    return nb.tensor(array, dtype="float64", requires_grad=grad), torch.tensor(
        array, requires_grad=grad
    )


def check(nb_fn, torch_fn, *arrays, rtol=1e-12):
    """nb_fn and torch_fn agree on the value and, for a random cotangent, on every gradient."""
    pairs = [both(a) for a in arrays]
    mine = nb_fn(*[p[0] for p in pairs])
    theirs = torch_fn(*[p[1] for p in pairs])
    np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=rtol, atol=1e-14)
    assert mine.shape == tuple(theirs.shape)
    cotangent = data(mine.shape, seed=7)
    mine.backward(nb.tensor(cotangent, dtype="float64"))
    theirs.backward(torch.tensor(cotangent))
    for x, t in pairs:
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=rtol, atol=1e-14)


# --- reductions: axes, keepdims, ties, ddof ------------------------------------------------------


def test_axes_are_validated_at_both_ends_and_normalized():
    assert _axes(None, 3) == (0, 1, 2)
    assert _axes(-3, 3) == (0,) and _axes(2, 3) == (2,) and _axes(np.int64(-1), 3) == (2,)
    assert _axes((2, -3), 3) == (0, 2) and _axes([1], 3) == (1,)
    for bad in (3, -4, (0, 3)):
        with pytest.raises(np.exceptions.AxisError, match="out of range for a 3-d tensor"):
            _axes(bad, 3)
    with pytest.raises(ValueError, match=r"repeated axis in \(0, -3\)"):
        _axes((0, -3), 3)
    assert _axes(0, 0) == () and _axes(-1, 0) == () and _axes(None, 0) == ()
    for bad, named in ((1, 1), (-2, -2), ((0, 1), 1), ((-1, 2), 2)):  # every axis is checked
        with pytest.raises(
            np.exceptions.AxisError, match=f"axis {named} is out of range for a 0-d"
        ):
            _axes(bad, 0)


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "logsumexp"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (1, True), ((0, 2), True)])
def test_reductions_and_their_gradients_match_torch(name, dim, keepdim):
    array = data((2, 3, 4))
    array[0, 1, :2] = array[0, 1, 2]  # ties for max and min
    ours = {"amax": "max", "amin": "min"}.get(name, name)

    def theirs(t):
        if dim is None and name in ("amax", "amin", "logsumexp"):
            return getattr(torch, name)(t, dim=(0, 1, 2), keepdim=keepdim)
        kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
        return getattr(torch, name)(t, **kw)

    check(lambda x: getattr(x, ours)(axis=dim, keepdims=keepdim), theirs, array)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp", "var", "std"])
def test_reductions_drop_only_the_reduced_axes(name):
    """Axes of length 1 that are not reduced stay, with and without keepdims."""
    x = nb.tensor(data((1, 3, 1)))
    assert getattr(x, name)(axis=1).shape == (1, 1)
    assert getattr(x, name)(axis=(0, 1)).shape == (1,)
    assert getattr(x, name)(axis=1, keepdims=True).shape == (1, 1, 1)


def test_logsumexp_shifts_each_row_by_its_own_maximum():
    x = nb.tensor([[0.0, 0.0], [-1000.0, -1000.0], [1000.0, 999.0]], dtype="float64")
    expected = torch.logsumexp(torch.tensor(x.data), dim=1).numpy()
    np.testing.assert_allclose(x.logsumexp(axis=1).data, expected, rtol=1e-15)
    assert x.logsumexp(axis=1).data[1] == pytest.approx(-1000.0 + np.log(2.0))


def test_reductions_of_a_0d_tensor_reduce_nothing_like_torch():
    for name in ("sum", "mean", "max", "min", "logsumexp"):
        x = nb.tensor(2.5, requires_grad=True)
        out = getattr(x, name)(axis=0)
        out.backward()
        assert out.shape == () and float(out.data) == 2.5 and float(x.grad) == 1.0
        assert getattr(x, name)(axis=-1, keepdims=True).shape == ()


def test_logsumexp_of_an_all_minus_infinity_row_is_minus_infinity_not_nan():
    x = nb.tensor([[-np.inf, -np.inf], [0.0, np.log(3.0)]], dtype="float64")
    with np.errstate(divide="ignore"):  # log(0) for the empty row: NumPy warns, torch does not
        out = x.logsumexp(axis=1)
    torch_out = torch.logsumexp(torch.tensor(x.data), dim=1)
    np.testing.assert_allclose(out.data, torch_out.numpy())
    assert out.data[0] == -np.inf and out.data[1] == pytest.approx(np.log(4.0))


@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (1, True), ((0, 1), False)])
def test_var_and_std_match_torch_for_every_correction(ddof, dim, keepdim):
    array = data((3, 4))
    for name in ("var", "std"):
        check(
            lambda x, name=name: getattr(x, name)(axis=dim, ddof=ddof, keepdims=keepdim),
            lambda t, name=name: getattr(torch, name)(t, dim=dim, correction=ddof, keepdim=keepdim),
            array,
        )


def test_var_default_ddof_is_numpys_zero():
    array = data((5,))
    np.testing.assert_allclose(nb.tensor(array, dtype="float64").var().data, np.var(array))
    np.testing.assert_allclose(nb.tensor(array, dtype="float64").std().data, np.std(array))


def test_var_needs_a_degree_of_freedom():
    x = nb.ones((2, 3))
    with pytest.raises(ValueError, match="var: 3 elements with ddof=3 leave no degrees of freedom"):
        x.var(axis=1, ddof=3)
    with pytest.raises(ValueError, match="var: 6 elements with ddof=7"):
        x.std(ddof=7)
    assert x.var(axis=1, ddof=2).shape == (2,)


def test_max_and_min_over_an_empty_axis_are_refused_other_axes_give_empty_results():
    x = nb.zeros((2, 0))
    for name in ("max", "min"):
        with pytest.raises(
            ValueError, match=rf"{name}\(\) over an empty axis: .*\(2, 0\), axes \(1,\)"
        ):
            getattr(x, name)(axis=1)
        with pytest.raises(ValueError, match=rf"{name}\(\) over an empty axis"):
            getattr(x, name)()
        assert getattr(x, name)(axis=0).shape == (0,)
        assert getattr(nb.zeros(0), name)(axis=()).shape == (0,)  # no axis reduced: no maximum


def test_argmax_and_argmin_are_int64_with_keepdims_and_dim():
    array = data((3, 4))
    x, t = nb.tensor(array), torch.tensor(array)
    for name in ("argmax", "argmin"):
        out = getattr(x, name)(axis=1, keepdims=True)
        assert out.dtype == np.int64 and out.shape == (3, 1)
        np.testing.assert_array_equal(out.data, getattr(t, name)(dim=1, keepdim=True).numpy())
        assert getattr(x, name)().data.item() == getattr(t, name)().item()
        np.testing.assert_array_equal(getattr(x, name)(dim=0).data, getattr(t, name)(0).numpy())


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


def test_pad_refuses_a_negative_width():
    x = nb.ones((2, 3))
    with pytest.raises(ValueError, match=r"pad: negative pad width \(\(0, 0\), \(-1, 1\)\)"):
        x.pad(((0, 0), (-1, 1)))
    assert x.pad(0).shape == (2, 3)


# --- matmul and linear ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((3,), (3,)),
        ((3,), (3, 4)),
        ((2, 3), (3,)),
        ((2, 3), (3, 4)),
        ((5, 2, 3), (3,)),
        ((3,), (5, 3, 4)),
        ((5, 2, 3), (1, 3, 4)),
        ((2, 3), (5, 3, 4)),
    ],
)
def test_matmul_gradients_match_torch_for_vectors_matrices_and_batches(shape_a, shape_b):
    a, b = data(shape_a, 1), data(shape_b, 2)
    check(nb.matmul, torch.matmul, a, b)
    for need_a in (True, False):
        x, y = nb.tensor(a, dtype="float64", requires_grad=need_a), nb.tensor(b, dtype="float64")
        y.requires_grad = not need_a
        (x @ y).sum().backward()
        assert (x.grad is None) != need_a and (y.grad is None) == need_a


def test_matmul_errors_name_both_shapes():
    with pytest.raises(
        ValueError, match=r"matmul: operands must be at least 1-D, got shapes \(\) and \(3,\)"
    ):
        nb.matmul(nb.tensor(1.0), nb.ones(3))
    with pytest.raises(ValueError, match=r"got shapes \(3,\) and \(\)"):
        nb.matmul(nb.ones(3), nb.tensor(1.0))
    with pytest.raises(
        ValueError,
        match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not align \(inner dimensions 3 != 4\)",
    ):
        nb.matmul(nb.ones((2, 3)), nb.ones((4, 5)))
    with pytest.raises(ValueError, match=r"inner dimensions 3 != 4"):
        nb.matmul(nb.ones((2, 3)), nb.ones(4))
    with pytest.raises(
        ValueError,
        match=r"matmul: batch dimensions of \(2, 2, 3\) and \(3, 3, 4\) do not broadcast",
    ):
        nb.matmul(nb.ones((2, 2, 3)), nb.ones((3, 3, 4)))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4, 3), (2, 4, 3), (3,)])
def test_linear_and_linear_relu_match_torch(x_shape, bias):
    x, w, b = data(x_shape, 1), data((5, 3), 2), data((5,), 3)
    if bias:
        check(F.linear, TF.linear, x, w, b)
        check(linalg.linear_relu, lambda *t: TF.linear(*t).relu(), x, w, b)
    else:
        check(F.linear, TF.linear, x, w)
        check(linalg.linear_relu, lambda *t: TF.linear(*t).relu(), x, w)


def test_linear_relu_is_relu_of_linear_bit_for_bit_and_casts_the_input():
    x = nb.tensor(data((4, 3), 1), dtype="float64")
    w, b = nb.tensor(data((5, 3), 2)), nb.tensor(data((5,), 3))
    fused = linalg.linear_relu(x, w, b)
    assert fused.dtype == np.float32
    np.testing.assert_array_equal(fused.data, F.linear(x, w, b).relu().data)
    assert F.linear(x, w, b).dtype == np.float32
    w64, b64 = nb.tensor(w.data, dtype="float64"), nb.tensor(b.data, dtype="float64")
    x32 = nb.tensor(x.data, dtype="float32")
    assert linalg.linear_relu(x32, w64, b64).dtype == np.float64
    assert F.linear(x32, w64, b64).dtype == np.float64


def test_linear_and_linear_relu_take_a_plain_array_input():
    x, w, b = data((4, 3), 1).astype(np.float32), nb.tensor(data((5, 3), 2)), nb.tensor(data(5))
    expected = F.linear(nb.tensor(x), w, b)
    np.testing.assert_array_equal(F.linear(x, w, b).data, expected.data)
    np.testing.assert_array_equal(linalg.linear_relu(x, w, b).data, expected.relu().data)


def test_linear_gradients_when_only_some_inputs_require_grad():
    for need in ((True, False, False), (False, True, False), (False, False, True)):
        x, w, b = (
            nb.tensor(data(s, i), dtype="float64") for i, s in enumerate([(4, 3), (5, 3), (5,)])
        )
        for t, flag in zip((x, w, b), need):
            t.requires_grad = flag
        F.linear(x, w, b).sum().backward()
        assert [t.grad is not None for t in (x, w, b)] == list(need)


def test_linear_errors_name_the_shapes():
    w = nb.ones((5, 3))
    with pytest.raises(
        ValueError,
        match=r"linear: weight must be 2-D \(out_features, in_features\), got shape \(3,\)",
    ):
        F.linear(nb.ones(3), nb.ones(3))
    with pytest.raises(
        ValueError,
        match=r"input of shape \(2, 4\) does not fit weight of shape \(5, 3\): expected last dimension 3, got 4",
    ):
        F.linear(nb.ones((2, 4)), w)
    with pytest.raises(
        ValueError, match=r"input of shape \(\) .* expected last dimension 3, got a scalar"
    ):
        F.linear(nb.tensor(1.0), w)
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(5,\), got \(3,\)"):
        F.linear(nb.ones((2, 3)), w, nb.ones(3))


@pytest.mark.parametrize("fused", [False, True])
def test_linear_writes_weight_and_bias_gradients_into_the_optimizers_slots(fused):
    """A leaf with a ``_grad_slot`` (the optimizer's flat buffer) and no gradient yet receives its
    gradient in that very buffer; the values are torch's."""
    x, w, b = data((4, 3), 1), data((5, 3), 2), data((5,), 3)
    xs, ws, bs = (nb.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
    slots = {"w": np.full((5, 3), np.nan), "b": np.full((5,), np.nan)}
    ws._grad_slot, bs._grad_slot = slots["w"], slots["b"]
    fn = linalg.linear_relu if fused else F.linear
    fn(xs, ws, bs).backward(nb.tensor(data((4, 5), 4), dtype="float64"))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = TF.linear(xt, wt, bt)
    (out.relu() if fused else out).backward(torch.tensor(data((4, 5), 4)))
    for mine, slot, theirs in ((ws, slots["w"], wt), (bs, slots["b"], bt)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-12)
        assert np.shares_memory(mine.grad, slot)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), rtol=1e-12)
