"""Details of the reductions: axes, keepdims, ties, ddof, 0-d tensors and all -inf slices, against
torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_pairs import check, data

import nabla as nb
from nabla.ops.reduce import _axes

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
