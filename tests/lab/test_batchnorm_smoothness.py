"""The batchnorm-smoothness experiment's measures against closed forms: the loss and the gradient
along -ηg on least squares, Santurkar et al.'s internal covariate shift on a two-layer linear net,
and the probes leaving the model as they found it."""

import numpy as np
import pytest

import nabla as nb
from nabla import nn
from nabla.lab.experiments import batchnorm_smoothness as bns


def f64(array):
    return nb.tensor(array, dtype="float64")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 3)), rng.standard_normal((20, 2)), rng


def test_along_the_gradient_of_least_squares_matches_the_quadratic(data):
    """L(w) = mean((Xw - y)²) over the n x k outputs: g = 2/(nk) Xᵀ(Xw - y) per output,
    L(w - ηg) = L - η||g||² + η²/2 gᵀHg and g(w - ηg) - g(w) = -ηHg, so the effective β is
    ||Hg|| / ||g|| at every η."""
    x, y, rng = data
    model = nn.Sequential(nn.Linear(3, 2, bias=False)).double()
    model[0].weight.data[...] = rng.standard_normal((2, 3))
    w = model[0].weight.data.T.copy()  # (3, 2): x @ w
    n, k = y.shape
    g = 2 / (n * k) * x.T @ (x @ w - y)
    hg = 2 / (n * k) * x.T @ x @ g  # the Hessian, block-diagonal over outputs, times g
    etas = np.array([0.01, 0.1, 0.5])
    out = bns.along_gradient(model, nn.MSELoss(), f64(x), f64(y), etas)
    loss = np.mean((x @ w - y) ** 2)
    expected = [np.mean((x @ (w - eta * g) - y) ** 2) for eta in etas]
    quadratic = [loss - eta * np.sum(g * g) + eta**2 / 2 * np.sum(g * hg) for eta in etas]
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-12)
    np.testing.assert_allclose(out["grad_norm"], np.linalg.norm(g), rtol=1e-12)
    np.testing.assert_allclose(out["losses"], expected, rtol=1e-10)
    np.testing.assert_allclose(out["losses"], quadratic, rtol=1e-10)
    np.testing.assert_allclose(out["changes"], etas * np.linalg.norm(hg), rtol=1e-10)
    run = make_run(etas, out)
    np.testing.assert_allclose(run.beta, np.linalg.norm(hg) / np.linalg.norm(g), rtol=1e-10)
    np.testing.assert_allclose(run.loss_range, max(expected) - min(expected), rtol=1e-12)


def make_run(etas, out, bn=False, cos=0.5):
    """A one-probe Run from along_gradient's output, with a given ICS cosine."""
    return bns.Run(
        bn,
        0.1,
        0,
        np.array([0]),
        etas,
        np.array([out["loss"]]),
        np.array([out["grad_norm"]]),
        np.array([out["losses"]]),
        np.array([out["changes"]]),
        np.array([[[1.0, 2.0, cos]]]),
        0.0,
        0.0,
    )


def test_covariate_shift_is_the_gradient_change_after_the_layers_below_step(data):
    """Two linear layers f = W2 W1 x and MSE: G = ∇_{W2} L at (W1, W2), G' the same at
    (W1 - lr ∇_{W1} L, W2); only the second layer has a layer below it."""
    x, y, rng = data
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False)).double()
    w1, w2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    model[0].weight.data[...], model[1].weight.data[...] = w1, w2
    n, k, lr = *y.shape, 0.3

    def gradients(w1):
        r = 2 / (n * k) * (x @ w1.T @ w2.T - y)  # dL/d(output), (n, k)
        return (r @ w2).T @ x, r.T @ (x @ w1.T)  # dL/dW1, dL/dW2

    g1, before = gradients(w1)
    after = gradients(w1 - lr * g1)[1]
    shifts = bns.covariate_shift(model, nn.MSELoss(), f64(x), f64(y), lr)
    assert len(shifts) == 1
    change, size, cos = shifts[0]
    np.testing.assert_allclose(change, np.linalg.norm(before - after), rtol=1e-10)
    np.testing.assert_allclose(size, np.linalg.norm(before), rtol=1e-12)
    expected = np.sum(before * after) / np.linalg.norm(before) / np.linalg.norm(after)
    np.testing.assert_allclose(cos, expected, rtol=1e-10)
    assert change > 1e-3 * size  # the layer below did move: the test is not trivially zero


def test_probes_leave_weights_buffers_and_mode_unchanged():
    model = bns.build([6, 5, 5, 3], batch_norm=True, seed=1)
    model.train()
    rng = np.random.default_rng(1)
    x = nb.tensor(rng.standard_normal((16, 6)).astype(np.float32))
    y = nb.tensor(rng.integers(0, 3, 16))
    model(x)  # move the running statistics off their defaults
    state = {k: v.data.copy() for k, v in model.state_dict().items()}
    criterion = nn.CrossEntropyLoss()
    bns.along_gradient(model, criterion, x, y, np.array([0.1, 1.0]))
    shifts = bns.covariate_shift(model, criterion, x, y, lr=0.5)
    assert len(shifts) == 2 and model.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.data, state[key], err_msg=key)


def test_both_nets_start_from_the_same_linear_weights():
    plain = bns.build([8, 6, 6, 4], batch_norm=False, seed=5)
    normed = bns.build([8, 6, 6, 4], batch_norm=True, seed=5)
    linears = [[m for m in net if isinstance(m, nn.Linear)] for net in (plain, normed)]
    for a, b in zip(*linears):
        np.testing.assert_array_equal(a.weight.data, b.weight.data)
        assert not b.bias.data.any()
    wide = bns.build([400, 300, 10], batch_norm=False, seed=5)
    for layer, fan_in in ((wide[0], 400), (wide[2], 300)):  # He normal: std sqrt(2 / fan_in)
        assert abs(layer.weight.data.std() / np.sqrt(2 / fan_in) - 1) < 0.05


def test_the_check_wants_smaller_smoothness_measures_and_no_higher_cosine():
    etas = np.array([0.1, 0.2])
    rough = {"loss": 1.0, "grad_norm": 1.0, "losses": [1.0, 3.0], "changes": [3.0, 4.0]}
    smooth = {"loss": 1.0, "grad_norm": 1.0, "losses": [1.0, 1.5], "changes": [1.0, 1.5]}
    plain = make_run(etas, rough)
    assert all(bns.judged(plain, make_run(etas, smooth, bn=True, cos=0.5)).values())
    ok = bns.judged(plain, make_run(etas, smooth, bn=True, cos=0.6))
    assert ok["loss range"] and ok["max ||Δg||"] and ok["effective β"] and not ok["ICS cos"]
    ok = bns.judged(plain, make_run(etas, rough, bn=True, cos=0.4))
    assert ok == {"loss range": False, "max ||Δg||": False, "effective β": False, "ICS cos": True}
