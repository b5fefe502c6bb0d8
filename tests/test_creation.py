"""Creation functions: shapes, dtypes, values and the requires_grad flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb


@pytest.mark.parametrize(
    ("maker", "reference"), [(nb.zeros, np.zeros), (nb.ones, np.ones)], ids=["zeros", "ones"]
)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 0, 4)])
def test_zeros_ones(maker, reference, shape):
    for t in (maker(*shape), maker(shape)):  # zeros(2, 3) and zeros((2, 3))
        assert t.shape == shape
        assert t.dtype == np.float32
        np.testing.assert_array_equal(t.data, reference(shape))
        assert not t.requires_grad and t.is_leaf


@pytest.mark.parametrize("maker", [nb.zeros, nb.ones])
def test_zeros_ones_dtype_and_requires_grad(maker):
    assert maker(2, dtype="float64").dtype == np.float64
    assert maker(2, dtype=nb.int64).dtype == np.int64
    t = maker(2, 2, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    with pytest.raises(TypeError):
        maker(2, dtype="int64", requires_grad=True)
    with pytest.raises(TypeError):
        maker(2, dtype="int32")


def test_zeros_accepts_list_shape_and_numpy_ints():
    assert nb.zeros([2, 3]).shape == (2, 3)
    assert nb.zeros(np.int64(4)).shape == (4,)


@pytest.mark.parametrize(
    ("fill", "dtype"), [(2.5, np.float32), (3, np.int64), (True, np.bool_)], ids=str
)
def test_full_infers_dtype_like_torch(fill, dtype):
    t = nb.full((2, 3), fill)
    assert t.shape == (2, 3)
    assert t.dtype == dtype
    assert str(torch.full((2, 3), fill).dtype).removeprefix("torch.") == np.dtype(dtype).name
    np.testing.assert_array_equal(t.data, np.full((2, 3), fill))


def test_full_with_int_shape_and_dtype():
    t = nb.full(4, 1, dtype="float64", requires_grad=True)
    assert t.shape == (4,) and t.dtype == np.float64 and t.requires_grad
    np.testing.assert_array_equal(t.data, np.ones(4))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((5,), {}), ((2, 7), {}), ((1, 10, 3), {}), ((0, 1, 0.25), {}), ((5,), {"dtype": "float64"})],
)
def test_arange(args, kwargs):
    t = nb.arange(*args, **kwargs)
    expected = np.arange(*args)
    np.testing.assert_allclose(t.data, expected)
    if "dtype" in kwargs:
        assert t.dtype == np.dtype(kwargs["dtype"])
    else:
        assert t.dtype == (np.int64 if expected.dtype.kind == "i" else np.float32)
        torch_dtype = torch.arange(*args).dtype
        assert str(torch_dtype).removeprefix("torch.") == t.dtype.name


def test_linspace():
    t = nb.linspace(-1.0, 1.0, 5)
    assert t.dtype == np.float32
    np.testing.assert_allclose(t.data, np.linspace(-1.0, 1.0, 5))
    assert nb.linspace(0, 1, 3, dtype="float64").dtype == np.float64


@pytest.mark.parametrize(("n", "m"), [(3, None), (2, 4), (4, 2), (1, None)])
def test_eye(n, m):
    t = nb.eye(n, m)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, np.eye(n, m))


def test_eye_requires_grad():
    assert nb.eye(2, requires_grad=True).requires_grad


@pytest.mark.parametrize("dtype", [None, "float32", "float64"])
def test_rand_and_randn_shapes_dtypes(dtype):
    expected = np.dtype(dtype or "float32")
    for maker in (nb.rand, nb.randn):
        for t in (maker(3, 4, dtype=dtype), maker((3, 4), dtype=dtype)):
            assert t.shape == (3, 4) and t.dtype == expected
        assert maker(2, requires_grad=True).requires_grad


def test_rand_is_uniform_in_unit_interval():
    t = nb.rand(20_000, generator=np.random.default_rng(1))
    assert t.data.min() >= 0.0 and t.data.max() < 1.0
    assert abs(t.data.mean() - 0.5) < 0.01
    assert abs(t.data.var() - 1 / 12) < 0.005


def test_randn_is_standard_normal():
    t = nb.randn(20_000, generator=np.random.default_rng(2))
    assert abs(t.data.mean()) < 0.03
    assert abs(t.data.std() - 1.0) < 0.03


def test_randint():
    t = nb.randint(-3, 5, (2, 1000), generator=np.random.default_rng(3))
    assert t.shape == (2, 1000) and t.dtype == np.int64
    assert t.data.min() == -3 and t.data.max() == 4
    assert nb.randint(0, 2, 7).shape == (7,)


@pytest.mark.parametrize(
    ("like", "plain"),
    [(nb.zeros_like, nb.zeros), (nb.ones_like, nb.ones)],
    ids=["zeros_like", "ones_like"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_like_keeps_shape_and_dtype(like, plain, dtype):
    src = nb.tensor(np.arange(6).reshape(2, 3), dtype=dtype)
    t = like(src)
    assert t.shape == (2, 3) and t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.data, plain(2, 3, dtype=dtype).data)
    assert like(src, dtype="float64").dtype == np.float64


def test_like_does_not_inherit_requires_grad():
    src = nb.tensor([1.0, 2.0], requires_grad=True)
    assert not nb.zeros_like(src).requires_grad
    assert nb.zeros_like(src, requires_grad=True).requires_grad


def test_full_like():
    src = nb.tensor([[1.0, 2.0]], dtype="float64")
    t = nb.full_like(src, 7)
    assert t.shape == (1, 2) and t.dtype == np.float64
    np.testing.assert_array_equal(t.data, [[7.0, 7.0]])
    assert nb.full_like(nb.tensor([1, 2]), 3).dtype == np.int64


def test_random_like():
    src = nb.zeros(3, 2, dtype="float64")
    a = nb.rand_like(src, generator=np.random.default_rng(5))
    b = nb.randn_like(src, generator=np.random.default_rng(5))
    assert a.shape == b.shape == (3, 2)
    assert a.dtype == b.dtype == np.float64
    np.testing.assert_array_equal(a.data, np.random.default_rng(5).random((3, 2)))
    np.testing.assert_array_equal(b.data, np.random.default_rng(5).standard_normal((3, 2)))


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.arange(4.0)
    t = nb.from_numpy(a)
    assert t.dtype == np.float64
    a[0] = 9.0
    assert t.data[0] == 9.0
    with pytest.raises(TypeError):
        nb.from_numpy(np.arange(3, dtype=np.int32))
