"""Tensor: dtype rules, autograd flags, array facts, repr, type promotion and Python protocols."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb

# --- dtypes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected", "torch_dtype"),
    [
        (1.5, np.float32, torch.float32),
        ([1.0, 2.0], np.float32, torch.float32),
        (np.array([1.0, 2.0], dtype=np.float64), np.float32, None),  # torch keeps float64 here
        (np.array([1.0], dtype=np.float16), np.float32, None),
        (3, np.int64, torch.int64),
        ([1, 2, 3], np.int64, torch.int64),
        (np.array([1, 2], dtype=np.int32), np.int64, None),
        (np.array([1, 2], dtype=np.uint8), np.int64, None),
        (True, np.bool_, torch.bool),
        ([True, False], np.bool_, torch.bool),
    ],
)
def test_default_dtype(data, expected, torch_dtype):
    t = nb.tensor(data)
    assert t.dtype == expected
    if torch_dtype is not None:
        assert torch.tensor(data).dtype == torch_dtype  # the rule is PyTorch's


@pytest.mark.parametrize(
    "dtype", ["float64", np.float64, np.dtype("float64"), nb.float64, "float32", "int64", "bool"]
)
def test_dtype_override(dtype):
    t = nb.tensor([1.0, 0.0, 2.5], dtype=dtype)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.data, np.array([1.0, 0.0, 2.5]).astype(dtype))


@pytest.mark.parametrize("dtype", ["int32", "float16", np.complex128, "uint8", "object"])
def test_unsupported_dtype_is_refused(dtype):
    with pytest.raises(TypeError, match="dtype"):
        nb.tensor([1.0], dtype=dtype)


def test_unknown_dtype_name_is_refused():
    with pytest.raises(TypeError, match="not a dtype"):
        nb.tensor([1.0], dtype="floaty")


@pytest.mark.parametrize("data", [["a", "b"], np.array([1 + 2j]), [object()]])
def test_unsupported_data_is_refused(data):
    with pytest.raises(TypeError):
        nb.tensor(data)


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = nb.tensor(a)
    a[0] = 100.0
    assert t.data[0] == 1.0
    u = nb.tensor(t)
    assert not np.shares_memory(u.data, t.data)


def test_tensor_from_a_list_of_tensors():
    t = nb.tensor([nb.tensor([1.0, 2.0]), nb.tensor([3.0, 4.0])])
    assert t.shape == (2, 2)
    np.testing.assert_array_equal(t.data, [[1.0, 2.0], [3.0, 4.0]])


def test_tensor_class_constructor_follows_the_same_rules():
    assert nb.Tensor([1.0]).dtype == np.float32
    assert nb.Tensor([1]).dtype == np.int64
    assert nb.Tensor([1], dtype="float64", requires_grad=True).requires_grad


# --- requires_grad -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_only_float_tensors_can_require_grad(data):
    with pytest.raises(TypeError, match="floating"):
        nb.tensor(data, requires_grad=True)
    t = nb.tensor(data)
    with pytest.raises(TypeError):
        t.requires_grad = True
    with pytest.raises(TypeError):
        t.requires_grad_()


def test_requires_grad_flags():
    x = nb.tensor([1.0])
    assert not x.requires_grad and x.is_leaf and x.grad_fn is None
    assert x.requires_grad_() is x
    assert x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad


def test_requires_grad_cannot_change_on_non_leaf():
    y = nb.tensor([1.0], requires_grad=True) * 2.0
    assert not y.is_leaf
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    assert y.requires_grad


def test_int_tensor_setting_requires_grad_false_is_allowed():
    t = nb.tensor([1, 2])
    t.requires_grad = False
    assert not t.requires_grad


# --- array facts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 4), (0, 2)])
def test_shape_ndim_size(shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = nb.tensor(a)
    assert t.shape == a.shape
    assert t.ndim == a.ndim == t.dim()
    assert t.size == a.size == t.numel()
    assert isinstance(t.shape, tuple)


def test_item():
    assert nb.tensor(2.5).item() == 2.5
    assert isinstance(nb.tensor(2.5).item(), float)
    assert isinstance(nb.tensor([[7]]).item(), int)
    assert nb.tensor([[7]]).item() == 7
    with pytest.raises(ValueError, match=r"\(2,\)"):
        nb.tensor([1.0, 2.0]).item()


def test_numpy_shares_memory():
    t = nb.tensor([1.0, 2.0])
    a = t.numpy()
    assert isinstance(a, np.ndarray)
    a[0] = 5.0
    assert t.data[0] == 5.0


def test_tolist():
    data = [[1.5, 2.0], [3.0, -4.0]]
    assert nb.tensor(data).tolist() == data
    assert nb.tensor([1, 2]).tolist() == [1, 2]
    assert nb.tensor(3.0).tolist() == 3.0


def test_len_and_iteration():
    t = nb.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(isinstance(r, nb.Tensor) for r in rows)
    np.testing.assert_array_equal(rows[2].data, [5.0, 6.0])
    with pytest.raises(TypeError):
        len(nb.tensor(1.0))


def test_bool():
    assert bool(nb.tensor(1.0)) is True
    assert bool(nb.tensor([0.0])) is False
    assert bool(nb.tensor([[True]])) is True
    with pytest.raises(ValueError, match="ambiguous"):
        bool(nb.tensor([1.0, 1.0]))
    with pytest.raises(ValueError):
        bool(nb.tensor(np.zeros((0,))))


def test_float_int_index():
    assert float(nb.tensor([2.5])) == 2.5
    assert int(nb.tensor(3.7)) == 3
    items = ["a", "b", "c"]
    assert items[nb.tensor(2)] == "c"
    with pytest.raises(TypeError):
        items[nb.tensor(1.0)]


def test_numpy_conversion():
    t = nb.tensor([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(t), t.data)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


# --- repr ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [[[1.0, 2.0]], [[1.0, 2.0], [3.0, 4.0]], 3.0, [1, 2, 3], [True, False], [[-1.0], [2.0]]],
)
def test_repr_matches_torch_for_whole_numbers(data):
    assert repr(nb.tensor(data)) == repr(torch.tensor(data))


def test_repr_requires_grad_matches_torch():
    data = [[1.0, 2.0]]
    assert repr(nb.tensor(data, requires_grad=True)) == "tensor([[1., 2.]], requires_grad=True)"
    assert repr(nb.tensor(data, requires_grad=True)) == repr(torch.tensor(data, requires_grad=True))


def test_repr_shows_float64_dtype():
    text = repr(nb.tensor([1.0, 2.0], dtype="float64"))
    torch_text = repr(torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert text == torch_text.replace("torch.", "")  # tensor([1., 2.], dtype=float64)


def test_repr_shows_grad_fn():
    y = nb.tensor([1.0], requires_grad=True) * 2.0
    assert repr(y) == "tensor([2.], grad_fn=<Mul>)"
    assert "requires_grad" not in repr(y)  # as torch: grad_fn implies it


# --- type promotion ------------------------------------------------------------------------------


def test_float32_times_python_float_stays_float32():
    t = nb.tensor([1.0, 2.0])
    for r in (t * 0.5, 0.5 * t, t + 1e-300, t / 3.0, 2.0 - t, t**2.0):
        assert r.dtype == np.float32


def test_float32_times_numpy_float64_scalar_stays_float32():
    t = nb.tensor([1.0, 2.0])
    assert (t * np.float64(0.5)).dtype == np.float32
    assert (np.float64(0.5) * t).dtype == np.float32
    assert (t * np.int64(3)).dtype == np.float32


def test_float_tensor_with_numpy_array_keeps_tensor_dtype():
    t = nb.tensor([1.0, 2.0])
    assert (t * np.array([2.0, 3.0])).dtype == np.float32
    t64 = nb.tensor([1.0, 2.0], dtype="float64")
    assert (t64 * np.array([2.0, 3.0], dtype=np.float32)).dtype == np.float64


def test_int64_plus_python_float_gives_float32():
    r = nb.tensor([1, 2]) + 1.5
    assert r.dtype == np.float32
    assert (torch.tensor([1, 2]) + 1.5).dtype == torch.float32
    np.testing.assert_array_equal(r.data, [2.5, 3.5])


def test_int64_with_numpy_float64_scalar_gives_float32():
    r = nb.tensor([1, 2]) * np.float64(0.5)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r.data, [0.5, 1.0])


def test_int64_arithmetic_with_ints_stays_int64():
    t = nb.tensor([1, 2])
    assert (t + 1).dtype == np.int64
    assert (t * nb.tensor([3, 4])).dtype == np.int64


@pytest.mark.parametrize("divisor", [2, "tensor"])
def test_int64_true_division_gives_float32_like_torch(divisor):
    t = nb.tensor([1, 2])
    d = nb.tensor([2, 2]) if divisor == "tensor" else divisor
    td = torch.tensor([2, 2]) if divisor == "tensor" else divisor
    r = t / d
    assert (torch.tensor([1, 2]) / td).dtype == torch.float32
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r.data, [0.5, 1.0])


def test_int64_plus_float32_tensor_gives_float32_and_grad_to_the_float():
    i = nb.tensor([1, 2])
    f = nb.tensor([0.5, 0.25], requires_grad=True)
    r = i + f
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r.data, [1.5, 2.25])
    (r * r).sum().backward()
    np.testing.assert_array_equal(f.grad, 2 * r.data)
    assert i.grad is None


def test_float32_plus_float64_gives_float64_with_gradients_in_each_dtype():
    a = nb.tensor([1.0, 2.0], requires_grad=True)
    b = nb.tensor([0.1, 0.2], dtype="float64", requires_grad=True)
    r = a * b + a
    assert r.dtype == np.float64
    r.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad, (b.data + 1).astype(np.float32))
    np.testing.assert_allclose(b.grad, a.data.astype(np.float64))


def test_matmul_promotes_like_arithmetic():
    a = nb.tensor([[1.0, 2.0]], requires_grad=True)
    b = nb.tensor([[3.0], [4.0]], dtype="float64", requires_grad=True)
    r = a @ b
    assert r.dtype == np.float64
    r.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


# --- operators with NumPy arrays on the left -----------------------------------------------------


@pytest.mark.parametrize(
    ("op", "derivative"),
    [
        (lambda a, t: a + t, lambda a, x: np.ones_like(x)),
        (lambda a, t: a - t, lambda a, x: -np.ones_like(x)),
        (lambda a, t: a * t, lambda a, x: a),
        (lambda a, t: a / t, lambda a, x: -a / x**2),
        (lambda a, t: a**t, lambda a, x: a**x * np.log(a)),
    ],
    ids=["add", "sub", "mul", "div", "pow"],
)
def test_ndarray_op_tensor_uses_the_reflected_operator(op, derivative):
    a = np.array([1.5, 2.0, 3.0])
    v = np.array([0.5, -1.0, 2.0])
    x = nb.tensor(v, dtype="float64", requires_grad=True)
    r = op(a, x)
    assert isinstance(r, nb.Tensor) and r.requires_grad
    np.testing.assert_allclose(r.data, op(a, v))
    r.sum().backward()
    np.testing.assert_allclose(x.grad, derivative(a, v), rtol=1e-12)


# --- comparisons, hashing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compare",
    [
        lambda a, b: a == b,
        lambda a, b: a != b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_comparisons_give_bool_tensors_without_grad(compare):
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([3.0, 2.0, 1.0])
    x = nb.tensor(a, requires_grad=True)
    for r, expected in (
        (compare(x, nb.tensor(b)), compare(a, b)),
        (compare(x, 2.0), compare(a, 2.0)),
        (compare(x, b), compare(a, b)),
    ):
        assert isinstance(r, nb.Tensor)
        assert r.dtype == np.bool_
        assert not r.requires_grad and r.grad_fn is None
        np.testing.assert_array_equal(r.data, expected)


def test_tensors_hash_by_identity():
    a = nb.tensor([1.0])
    b = nb.tensor([1.0])
    assert bool(a == b)
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b, a}) == 2
    assert hash(a) == hash(a) and hash(a) != hash(b)


# --- __setitem__ ---------------------------------------------------------------------------------


def test_setitem_on_plain_tensor():
    t = nb.tensor([1.0, 2.0, 3.0])
    t[1] = 5.0
    t[nb.tensor([0, 2])] = nb.tensor([7.0, 8.0])
    np.testing.assert_array_equal(t.data, [7.0, 5.0, 8.0])


def test_setitem_refused_on_leaf_requiring_grad_with_grad_enabled():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x[0] = 3.0
    np.testing.assert_array_equal(x.data, [1.0, 2.0])


def test_setitem_allowed_on_leaf_under_no_grad():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with nb.no_grad():
        x[0] = 3.0
    np.testing.assert_array_equal(x.data, [3.0, 2.0])
    assert x.requires_grad


def test_setitem_refused_on_non_leaf_even_under_no_grad():
    y = nb.tensor([1.0, 2.0], requires_grad=True) * 2.0
    for context in (nb.enable_grad, nb.no_grad):
        with context(), pytest.raises(RuntimeError):
            y[0] = 0.0
    np.testing.assert_array_equal(y.data, [2.0, 4.0])


# --- in-place updates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        (lambda t: t.__iadd__(2.0), [3.0, 4.0]),
        (lambda t: t.__isub__(nb.tensor([1.0, 1.0])), [0.0, 1.0]),
        (lambda t: t.__imul__(3.0), [3.0, 6.0]),
        (lambda t: t.__itruediv__(2.0), [0.5, 1.0]),
        (lambda t: t.add_(nb.tensor([1.0, 2.0]), alpha=0.5), [1.5, 3.0]),
        (lambda t: t.add_([1.0, 2.0], alpha=2), [3.0, 6.0]),  # not the list repeated
        (lambda t: t.add_([1.0, 2.0], alpha=0.5), [1.5, 3.0]),
        (lambda t: t.mul_(np.array([2.0, 0.5])), [2.0, 1.0]),
        (lambda t: t.copy_(nb.tensor([7.0, 8.0])), [7.0, 8.0]),
        (lambda t: t.fill_(4.0), [4.0, 4.0]),
        (lambda t: t.zero_(), [0.0, 0.0]),
    ],
    ids=[
        "iadd",
        "isub",
        "imul",
        "itruediv",
        "add_",
        "add_ list int alpha",
        "add_ list alpha",
        "mul_",
        "copy_",
        "fill_",
        "zero_",
    ],
)
def test_inplace_updates(update, expected):
    t = nb.tensor([1.0, 2.0])
    data = t.data
    assert update(t) is t
    assert t.data is data  # really in place: an optimizer's flat buffer stays one
    np.testing.assert_array_equal(t.data, expected)
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        update(x)
    np.testing.assert_array_equal(x.data, [1.0, 2.0])
    with nb.no_grad():
        update(x)
    np.testing.assert_array_equal(x.data, expected)
    assert x.requires_grad and x.is_leaf


def test_augmented_assignment_keeps_the_name_bound_to_the_same_tensor():
    w = nb.tensor([1.0, 2.0], requires_grad=True)
    alias = w
    with nb.no_grad():
        w -= 0.5
    assert w is alias
    np.testing.assert_array_equal(alias.data, [0.5, 1.5])


# --- small methods --------------------------------------------------------------------------------


def test_detach_shares_data_and_is_a_leaf():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    y = x.detach()
    assert np.shares_memory(y.data, x.data)


def test_dtype_conversion_methods():
    x = nb.tensor([1.5, -2.5])
    assert x.double().dtype == np.float64
    assert x.float() is x
    assert x.long().dtype == np.int64
    np.testing.assert_array_equal(x.long().data, np.array([1.5, -2.5]).astype(np.int64))
    assert x.to("float64").dtype == np.float64
