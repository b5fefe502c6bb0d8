"""Tensor details that the broader tests leave open: construction, conversion, in-place writes,
repr.

Each group pins one behaviour a user relies on, mostly against PyTorch's (same call, same
answer) or against NumPy's semantics: that ``Tensor(...)`` copies, that versions start at 0 and
count every in-place write once, that ``np.asarray`` shares memory unless a dtype or a copy is
asked for, that the scalar conversions refuse the tensors PyTorch refuses, and that errors name
what went wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla.autograd.dtypes import as_array, as_dtype

# --- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [None, "float32", "float64"])
def test_tensor_class_copies_an_array_of_its_own_dtype(dtype):
    """``Tensor(array)`` owns its data, like ``torch.tensor(array)``, even when no cast is
    needed."""
    a = np.array([1.0, 2.0], dtype=dtype or "float32")
    t = nb.Tensor(a, dtype=dtype)
    assert not np.shares_memory(t.data, a)
    a[0] = 5.0
    assert t.data[0] == 1.0


def test_as_array_copies_only_when_asked():
    a = np.array([1.0, 2.0], dtype=np.float32)
    assert as_array(a) is a  # the fast path used by operations: no copy when none is needed
    assert not np.shares_memory(as_array(a, copy=True), a)
    assert as_array(a, "float32") is a
    assert not np.shares_memory(as_array(a, "float32", copy=True), a)
    i = np.array([1, 2], dtype=np.int64)
    assert as_array(i) is i
    b = np.array([True, False])
    assert as_array(b) is b


@pytest.mark.parametrize(
    ("data", "torch_dtype"),
    [
        (np.array([1.5], dtype=np.float16), torch.float32),
        (np.array([1], dtype=np.uint8), torch.int64),
        (np.array([1], dtype=np.int32), torch.int64),
        (np.array([True]), torch.bool),
    ],
)
def test_as_array_dtype_rule_follows_torch_default(data, torch_dtype):
    """Float data -> float32, integer data (signed or not) -> int64, bool stays bool."""
    expected = torch.tensor(data.tolist()).dtype
    assert expected == torch_dtype
    assert str(as_array(data).dtype) == str(expected).removeprefix("torch.")


def test_as_dtype_error_lists_the_supported_dtypes():
    with pytest.raises(TypeError, match=r"complex64.*float32, float64, int64, bool"):
        as_dtype("complex64")
    with pytest.raises(TypeError, match=r"not a dtype: .*float32, float64, int64, bool"):
        as_dtype(object())
    with pytest.raises(TypeError, match="complex128"):
        as_array(np.array([1j]))


def test_tensor_requires_grad_argument_and_initial_state():
    t = nb.Tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad is True and t.is_leaf and t.grad is None and t.grad_fn is None
    u = nb.Tensor([1.0, 2.0])
    assert u.requires_grad is False and u.grad is None and u.grad_fn is None
    assert t._version == 0 and u._version == 0  # like torch: a fresh tensor has version 0
    assert torch.tensor([1.0])._version == 0


def test_make_wraps_an_operation_output_with_its_node():
    x = nb.tensor([1.0], requires_grad=True)
    node = (x * 2).grad_fn
    t = nb.Tensor._make(np.array([2.0]), node)
    assert t.grad_fn is node and t.requires_grad and not t.is_leaf and t._version == 0
    plain = nb.Tensor._make(np.array([2.0]))
    assert plain.grad_fn is None and not plain.requires_grad and plain._version == 0


def test_tensor_from_a_tensor_copies_its_data():
    src = nb.tensor([1.0, 2.0])
    t = nb.Tensor(src)
    assert t.dtype == np.float32 and not np.shares_memory(t.data, src.data)


def test_detach_is_a_leaf_without_grad_sharing_the_version():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with nb.no_grad():
        x += 1
    d = y.detach()
    assert d.requires_grad is False and d.is_leaf and d.grad is None
    assert d._version == y._version == 0
    dx = x.detach()
    assert dx._version == x._version == 1
    dx.add_(1.0)
    assert x._version == 2


def test_requires_grad_underscore_defaults_to_true_like_torch():
    t = nb.tensor([1.0])
    assert t.requires_grad_() is t and t.requires_grad is True
    assert t.requires_grad_(False) is t and t.requires_grad is False
    assert torch.tensor([1.0]).requires_grad_().requires_grad is True


# --- conversions --------------------------------------------------------------------------------


def test_item_on_several_elements_names_the_shape():
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        nb.tensor([1.0, 2.0]).item()
    assert nb.tensor([[3.0]]).item() == 3.0
    assert nb.tensor([]).numel() == 0
    with pytest.raises(ValueError, match=r"\(0,\)"):
        nb.tensor([]).item()


def test_asarray_shares_memory_unless_a_copy_or_another_dtype_is_asked():
    t = nb.tensor([1.0, 2.0])
    assert np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float32) is t.data
    as64 = np.asarray(t, dtype=np.float64)
    assert as64.dtype == np.float64 and not np.shares_memory(as64, t.data)
    assert t.__array__(np.int64).dtype == np.int64  # the protocol honours dtype itself
    copied = t.__array__(copy=True)
    assert copied.dtype == np.float32 and not np.shares_memory(copied, t.data)
    np.testing.assert_array_equal(copied, t.data)


def test_len_and_iteration_of_a_one_dimensional_tensor():
    t = nb.tensor([4.0, 5.0, 6.0])
    assert len(t) == 3 == len(torch.tensor([4.0, 5.0, 6.0]))
    assert [float(v) for v in t] == [4.0, 5.0, 6.0]
    with pytest.raises(TypeError, match="0-d"):
        len(nb.tensor(1.0))


@pytest.mark.parametrize("values", [[0.0], [2.0], [[1.0]]])
def test_bool_of_one_element_matches_torch(values):
    assert bool(nb.tensor(values)) is bool(torch.tensor(values))


@pytest.mark.parametrize("values", [[1.0, 1.0], [], [[1.0, 0.0, 1.0]]])
def test_bool_of_other_sizes_is_ambiguous_and_names_the_size(values):
    with pytest.raises(ValueError, match=f"with {len(np.ravel(values))} elements is ambiguous"):
        bool(nb.tensor(values))


def test_float_and_int_give_the_value():
    assert float(nb.tensor([2.5])) == 2.5 and isinstance(float(nb.tensor([2.5])), float)
    assert int(nb.tensor([7])) == 7 and isinstance(int(nb.tensor([7])), int)
    assert int(nb.tensor(2.9)) == int(torch.tensor(2.9))


def test_index_accepts_one_element_integer_tensors():
    items = list(range(10))
    assert items[nb.tensor(3)] == 3 == items[torch.tensor(3)]
    assert items[nb.tensor([4])] == 4
    assert int(nb.tensor(5).__index__()) == 5


@pytest.mark.parametrize(
    "bad", [nb.tensor(3.0), nb.tensor([1, 2]), nb.tensor(True), nb.tensor([], dtype="int64")]
)
def test_index_refuses_float_bool_and_multi_element_tensors(bad):
    with pytest.raises(TypeError, match="one-element integer"):
        [0, 1, 2][bad]


# --- in-place writes ----------------------------------------------------------------------------


def test_every_inplace_write_bumps_the_version_by_one_like_torch():
    t, r = nb.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    steps = [
        (lambda a: a.__iadd__(1.0), lambda a: a.__iadd__(1.0)),
        (lambda a: a.__isub__(1.0), lambda a: a.__isub__(1.0)),
        (lambda a: a.__imul__(2.0), lambda a: a.__imul__(2.0)),
        (lambda a: a.__itruediv__(2.0), lambda a: a.__itruediv__(2.0)),
        (lambda a: a.add_(1.0), lambda a: a.add_(1.0)),
        (lambda a: a.mul_(3.0), lambda a: a.mul_(3.0)),
        (lambda a: a.copy_(nb.tensor([5.0, 6.0])), lambda a: a.copy_(torch.tensor([5.0, 6.0]))),
        (lambda a: a.fill_(2.0), lambda a: a.fill_(2.0)),
        (lambda a: a.zero_(), lambda a: a.zero_()),
    ]
    for n, (ours, theirs) in enumerate(steps, start=1):
        assert ours(t) is t
        theirs(r)
        assert t._version == n
        np.testing.assert_array_equal(t.data, r.numpy())
    t[0] = 1.0
    assert t._version == len(steps) + 1


@pytest.mark.parametrize("other", [3.0, nb.tensor([3.0, -1.0]), np.array([3.0, -1.0])])
def test_inplace_operators_with_tensor_and_constant_operands(other):
    base = np.array([6.0, 4.0], dtype=np.float32)
    o = other.data if isinstance(other, nb.Tensor) else other
    for name, op in [
        ("__iadd__", np.add),
        ("__isub__", np.subtract),
        ("__imul__", np.multiply),
        ("__itruediv__", np.divide),
        ("mul_", np.multiply),
        ("add_", np.add),
    ]:
        t = nb.tensor(base)
        getattr(t, name)(other)
        np.testing.assert_array_equal(t.data, op(base, o).astype(np.float32), err_msg=name)


@pytest.mark.parametrize("alpha", [2.0, -0.5, 1.0])
def test_add_with_alpha_matches_torch(alpha):
    t, r = nb.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    t.add_(nb.tensor([3.0, 5.0]), alpha=alpha)
    r.add_(torch.tensor([3.0, 5.0]), alpha=alpha)
    np.testing.assert_array_equal(t.data, r.numpy())


def test_inplace_operands_may_be_lists_like_numpy():
    t = nb.tensor([1.0, 2.0])
    t.add_([1.0, 2.0])
    t += [1.0, 1.0]
    t.mul_([2.0, 0.5])
    np.testing.assert_array_equal(t.data, [6.0, 2.5])


def test_copy_broadcasts_a_tensor_or_array_source_and_fill_sets_every_element():
    t = nb.zeros((2, 3))
    t.copy_(nb.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t.data, np.broadcast_to([1.0, 2.0, 3.0], (2, 3)))
    t.copy_(np.array([[7.0], [8.0]]))
    np.testing.assert_array_equal(t.data, [[7.0] * 3, [8.0] * 3])
    t.fill_(4.5)
    np.testing.assert_array_equal(t.data, np.full((2, 3), 4.5))
    t.zero_()
    np.testing.assert_array_equal(t.data, np.zeros((2, 3)))


def test_setitem_with_tensor_index_and_tensor_value():
    t = nb.tensor([0.0, 0.0, 0.0, 0.0])
    t[nb.tensor([1, 3])] = nb.tensor([5.0, 6.0])
    np.testing.assert_array_equal(t.data, [0.0, 5.0, 0.0, 6.0])
    t[nb.tensor(2)] = 9.0
    np.testing.assert_array_equal(t.data, [0.0, 5.0, 9.0, 6.0])


def test_setitem_of_a_grad_tensor_is_refused_only_while_recording():
    value = nb.tensor([1.0], requires_grad=True)
    t = nb.zeros(3)
    with pytest.raises(RuntimeError, match="item assignment of a tensor that requires grad"):
        t[0:1] = value
    assert t._version == 0
    with nb.no_grad():
        t[0:1] = value  # a plain copy of the values: nothing to differentiate
    np.testing.assert_array_equal(t.data, [1.0, 0.0, 0.0])
    t[1:2] = nb.tensor([2.0])  # a value that does not require grad is always fine
    assert t.data[1] == 2.0


@pytest.mark.parametrize(
    ("what", "write"),
    [
        ("item assignment", lambda t: t.__setitem__(0, 1.0)),
        (r"\+=", lambda t: t.__iadd__(1.0)),
        ("-=", lambda t: t.__isub__(1.0)),
        (r"\*=", lambda t: t.__imul__(1.0)),
        ("/=", lambda t: t.__itruediv__(1.0)),
        ("add_", lambda t: t.add_(1.0)),
        ("mul_", lambda t: t.mul_(1.0)),
        ("copy_", lambda t: t.copy_(1.0)),
        ("fill_", lambda t: t.fill_(1.0)),
        ("fill_", lambda t: t.zero_()),
    ],
)
def test_inplace_write_on_a_grad_leaf_names_the_operation(what, write):
    leaf = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=f"^{what}: in-place change of a tensor that requires"):
        write(leaf)
    assert leaf._version == 0  # refused before anything was written
    np.testing.assert_array_equal(leaf.data, [1.0, 2.0])
    with nb.no_grad():
        write(leaf)  # a leaf under no_grad: an optimizer step
    assert leaf._version == 1


def test_inplace_write_rules_for_non_leaves_and_plain_tensors():
    leaf = nb.tensor([1.0, 2.0], requires_grad=True)
    y = leaf * 2
    with nb.no_grad(), pytest.raises(RuntimeError, match="in-place"):
        y += 1  # a computed tensor stays protected under no_grad
    plain = nb.tensor([1.0, 2.0])
    plain += 1  # a tensor outside any graph may be written while recording
    np.testing.assert_array_equal(plain.data, [2.0, 3.0])


# --- repr ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype", "torch_dtype"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], None, None),
        ([[1, 2], [3, 4]], None, None),
        ([True, False], None, None),
        ([[1.0, 2.0], [3.0, 4.0]], "float64", torch.float64),
        ([[True], [False]], None, None),
    ],
)
def test_repr_matches_torch(values, dtype, torch_dtype):
    ours = repr(nb.tensor(values, dtype=dtype))
    assert ours == repr(torch.tensor(values, dtype=torch_dtype)).replace("torch.", "")


def test_repr_of_a_computed_tensor_names_its_operation():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert repr(y) == f"tensor([2., 4.], grad_fn=<{type(y.grad_fn).__name__}>)"
    assert repr(x.double() * 2).endswith(f"dtype=float64, grad_fn=<{type(y.grad_fn).__name__}>)")
    assert repr(y.grad_fn) == f"<{type(y.grad_fn).__name__}>"
    assert repr(nb.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
