"""Bugs found in review, each pinned by the smallest test that shows it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import nn, optim


def test_pow_with_exponent_zero_has_zero_gradient_at_zero_base():
    x = nb.tensor([0.0, 1.0], dtype="float64", requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    a = nb.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    e = nb.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    (a**e).sum().backward()
    ta = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    te = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    (ta**te).sum().backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy())
    np.testing.assert_allclose(e.grad, te.grad.numpy())


def test_assigning_a_buffer_keeps_it_registered_and_parameters_refuse_tensors():
    bn = nn.BatchNorm1d(3)
    bn.running_mean = nb.zeros(3)
    assert "running_mean" in bn.state_dict()
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"Linear\.weight is a parameter"):
        layer.weight = layer.weight * 2
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_state_dict_lists_a_shared_module_under_every_path_like_torch():
    ours = nn.Linear(2, 2)
    theirs = torch.nn.Linear(2, 2)
    assert list(nn.Sequential(ours, ours).state_dict()) == list(
        torch.nn.Sequential(theirs, theirs).state_dict()
    )


def test_item_assignment_of_a_tensor_that_requires_grad_is_refused():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    buffer = nb.zeros(2)
    with pytest.raises(RuntimeError, match="not differentiable"):
        buffer[0] = (x * x).sum()
    with nb.no_grad():
        buffer[0] = (x * x).sum()  # plain data outside the graph is fine
    assert buffer.data[0] == 5.0


def test_clip_bounds_are_weak_constants():
    assert nb.tensor([1.0, 2.0]).clip(np.float64(0.5), np.float64(1.5)).dtype == np.float32
    assert nb.tensor([1.0, 2.0]).clip(nb.tensor(0.5, dtype="float64")).dtype == np.float32
    assert nb.tensor([1, 2, 3]).clip(0.5, 2.5).dtype == np.float32
    assert nb.tensor([1, 2, 3]).clip(0, 2).dtype == np.int64
    assert nb.tensor([1, -2]).leaky_relu().dtype == np.float32


def test_reductions_and_shapes_of_0d_and_empty_tensors():
    x = nb.tensor(3.0, requires_grad=True)
    assert x.sum(axis=0).item() == 3.0 and x.squeeze(0).shape == () and x.transpose().shape == ()
    assert nb.zeros(0, 3).max(axis=1).shape == (0,)
    with pytest.raises(ValueError, match="empty axis"):
        nb.zeros(0, 3).max(axis=0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: nn.functional.conv2d(nb.ones(1, 1, 5, 5), nb.ones(1, 1, 3, 3), stride=0),
        lambda: nn.functional.conv2d(nb.ones(1, 1, 5, 5), nb.ones(1, 1, 3, 3), padding=-1),
        lambda: nn.functional.conv2d(nb.ones(1, 1, 5, 5), nb.ones(1, 1, 3, 3), dilation=0),
        lambda: nn.functional.max_pool2d(nb.ones(1, 1, 4, 4), 2, stride=0),
        lambda: nn.functional.adaptive_avg_pool2d(nb.ones(1, 1, 4, 4), 0),
        lambda: nn.Conv2d(3, 4, 0),
        lambda: nn.Conv2d(3, 4, 3, groups=0),
        lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"),
    ],
)
def test_bad_conv_and_pool_geometry_is_a_clear_value_error(call):
    with pytest.raises(ValueError, match=r"must be|groups|same"):
        call()


def test_max_pool_pads_integer_images():
    x = nb.tensor(np.arange(16).reshape(1, 1, 4, 4))
    out = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
    expected = torch.nn.functional.max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 3, 2, 1)
    np.testing.assert_array_equal(out.data, expected.numpy())


def test_backward_after_an_optimizer_step_through_the_old_graph_is_refused():
    layer = nn.Linear(3, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = nb.ones(4, 3, requires_grad=True)
    loss = layer(x).sum()
    opt.step()  # changes the weights the graph saved
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_adagrad_keeps_its_initial_accumulator_for_a_parameter_unfrozen_later():
    a = nb.tensor([1.0, 2.0], requires_grad=True)
    b = nb.tensor([3.0, 4.0], requires_grad=True).requires_grad_(False)
    opt = optim.AdaGrad([("a", a), ("b", b)], lr=0.1, initial_accumulator_value=0.1)
    (a * a).sum().backward()
    opt.step()
    b.requires_grad_(True)
    opt.zero_grad()
    ((a * a).sum() + (b * b).sum()).backward()
    opt.step()
    np.testing.assert_allclose(
        opt.state_dict()["state"]["b"]["sum_squares"], [36.1, 64.1], rtol=1e-6
    )


def test_loader_resumed_after_the_last_batch_of_an_epoch_starts_the_next():
    from nabla.data import ArrayDataset, DataLoader

    ds = ArrayDataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    straight = DataLoader(ds, batch_size=4, shuffle=True, seed=1)
    list(straight)
    expected = [y.data.tolist() for _, y in straight]  # epoch 1
    resumed = DataLoader(ds, batch_size=4, shuffle=True, seed=1)
    resumed.load_state_dict({"epoch": 0, "position": 3, "seed": 1})
    assert [y.data.tolist() for _, y in resumed] == expected


def test_concat_batch_with_negative_and_empty_indices():
    from nabla.data import ArrayDataset, ConcatDataset, Subset

    c = ConcatDataset(
        [
            ArrayDataset(np.zeros((3, 1)), np.arange(3)),
            ArrayDataset(np.zeros((4, 1)), np.arange(10, 14)),
        ]
    )
    assert c.batch([-1, 0])[1].tolist() == [13, 0]
    assert c.batch([])[0].shape == (0, 1)
    with pytest.raises(IndexError, match="out of range"):
        c.batch([7])
    with pytest.raises(TypeError, match="flatnonzero"):
        Subset(c, np.ones(7, dtype=bool))


def test_integer_images_are_mixed_and_noised_without_wraparound():
    from nabla.data import transforms as T

    x = np.stack([np.zeros((1, 2, 2), np.uint8), np.full((1, 2, 2), 200, np.uint8)])
    mixed, targets = T.Mixup(1.0, num_classes=2)(x, np.array([0, 1]))
    expected = targets[:, 1] * 200  # image value = weight of the bright image * 200
    np.testing.assert_allclose(mixed[:, 0, 0, 0], expected, atol=0.51)
    noisy, _ = T.GaussianNoise(10.0)(np.full((1, 1, 8, 8), 250, np.uint8))
    assert noisy.dtype == np.uint8 and noisy.min() >= 200  # clipped at 255, never wrapped to ~0


def test_two_augmentations_of_one_kind_draw_independent_numbers():
    from nabla.data import transforms as T

    first, second = T.RandomTranslate(2), T.RandomTranslate(2)
    T.Compose([first, second])
    context = T.Context(0, 0, np.arange(64))
    assert not np.array_equal(first.uniform(context, 2), second.uniform(context, 2))


def test_loader_converts_other_integer_dtypes_to_int64_tensors():
    from nabla.data import ArrayDataset, DataLoader

    ds = ArrayDataset(np.zeros((4, 2), np.float16), np.arange(4, dtype=np.uint8))
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert isinstance(y, nb.Tensor) and y.dtype == np.int64 and x.dtype == np.float32


@pytest.mark.parametrize(
    "write",
    [
        lambda x: x[:].__setitem__(0, 100.0),  # through a slice
        lambda x: x.reshape(2, 1).__setitem__((0, 0), 7.0),  # through a reshape
        lambda x: x.detach().mul_(0.0),  # through a detached copy
    ],
)
def test_writes_through_views_are_seen_by_the_graph(write):
    w = nb.tensor([1.0, 1.0], requires_grad=True)
    x = nb.tensor([2.0, 3.0])
    loss = (w * x).sum()
    write(x)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_writing_the_base_of_a_view_that_a_graph_saved_is_seen():
    w = nb.tensor([1.0, 1.0], requires_grad=True)
    x = nb.tensor([2.0, 3.0])
    view = x[:]
    loss = (w * view).sum()
    x[0] = 100.0
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_overwriting_a_saved_output_is_seen_but_copies_are_independent():
    x = nb.tensor([0.0, 1.0], requires_grad=True)
    y = x.exp()
    y.detach().mul_(0.0)  # exp's backward reads y
    with pytest.raises(RuntimeError, match="output of Exp"):
        y.sum().backward()
    w = nb.tensor([1.0, 1.0], requires_grad=True)
    x = nb.tensor([2.0, 3.0])
    copy = x[[0, 1]]  # advanced indexing copies: writing x later is harmless
    loss = (w * copy).sum()
    x[0] = 100.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 3.0])


def test_an_optimizer_refuses_another_optimizers_state_and_bad_norm_types():
    layer = nn.Linear(2, 2)
    sgd = optim.SGD(layer.named_parameters(), lr=0.1, momentum=0.9)
    adam = optim.Adam(layer.named_parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="another optimizer"):
        adam.load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="norm_type"):
        sgd.clip_grad_norm_(1.0, norm_type=0)


def test_both_erf_paths_of_gelu_agree(monkeypatch):
    from nabla.ops import activations

    x = np.linspace(-4, 4, 101)
    monkeypatch.setattr(activations, "_scipy_erf", False)  # the math.erf fallback
    slow = activations._erf(x)
    np.testing.assert_allclose(
        slow, torch.special.erf(torch.tensor(x)).numpy(), rtol=1e-15, atol=1e-16
    )
    pytest.importorskip("scipy", reason="the vectorized path needs SciPy")
    monkeypatch.setattr(activations, "_scipy_erf", None)  # found again on first use
    np.testing.assert_allclose(activations._erf(x), slow, rtol=1e-14, atol=1e-16)
