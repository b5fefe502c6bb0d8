"""Conventions ported from other frameworks, each against its formula written out in NumPy.

* ``eps_inside_sqrt=True`` (AdaGrad, RMSProp): d = sqrt(r + eps), as Keras, Optax and d2l do.
* ``decoupled_weight_decay=True`` (every optimizer): theta <- theta - lr wd theta before the update
  of the loss gradient alone, Keras 3's meaning of ``weight_decay`` for every optimizer.
* SGD ``dampening``: PyTorch's, from the second step on.

The formulas are the frameworks' update rules transcribed in float64; nabla runs in float64 too,
so the two agree to rounding (rtol 1e-12) over 30 steps of random gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels, optim

STEPS = 30


def nabla_run(cls, grads, compiled=True, **kwargs):
    w = nb.tensor(np.linspace(-1, 1, grads.shape[1]), dtype="float64", requires_grad=True)
    opt = cls([w], **kwargs)
    with kernels.reference(not compiled):
        for g in grads:
            w.grad = g.copy()
            opt.step()
    return w.data


@pytest.fixture
def grads():
    return np.random.default_rng(0).normal(size=(STEPS, 5))


def start(grads):
    return np.linspace(-1, 1, grads.shape[1])


def keras_adagrad(grads, lr, eps, r0, wd=0.0):
    x, acc = start(grads), np.full(grads.shape[1], r0)
    for g in grads:
        x = x - x * wd * lr
        acc = acc + g * g
        x = x - lr * g / np.sqrt(acc + eps)
    return x


def keras_rmsprop(grads, lr, rho, eps, centered, wd=0.0):
    x, v, a = start(grads), np.zeros(grads.shape[1]), np.zeros(grads.shape[1])
    for g in grads:
        x = x - x * wd * lr
        v = rho * v + (1 - rho) * g * g
        denominator = v + eps
        if centered:
            a = rho * a + (1 - rho) * g
            denominator = v - a * a + eps
        x = x - lr * g / np.sqrt(denominator)
    return x


def keras_sgd(grads, lr, momentum, nesterov, wd):
    x, m = start(grads), np.zeros(grads.shape[1])
    for g in grads:
        x = x - x * wd * lr
        m = momentum * m - lr * g
        x = x + (momentum * m - lr * g if nesterov else m)
    return x


def keras_adam(grads, lr, beta1, beta2, eps, wd):
    x, m, v = start(grads), np.zeros(grads.shape[1]), np.zeros(grads.shape[1])
    for t, g in enumerate(grads, 1):
        x = x - x * wd * lr
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        x = x - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + eps)
    return x


def torch_sgd_dampening(grads, lr, momentum, dampening):
    x, buf = start(grads), None
    for g in grads:
        buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        x = x - lr * buf
    return x


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "reference"])
class TestAgainstFormulas:
    def test_adagrad_eps_inside_sqrt(self, grads, compiled):
        ours = nabla_run(
            optim.AdaGrad,
            grads,
            compiled,
            lr=0.1,
            eps=1e-1,
            eps_inside_sqrt=True,
            initial_accumulator_value=0.1,
        )
        np.testing.assert_allclose(ours, keras_adagrad(grads, 0.1, 1e-1, 0.1), rtol=1e-12)
        outside = nabla_run(
            optim.AdaGrad, grads, compiled, lr=0.1, eps=1e-1, initial_accumulator_value=0.1
        )
        assert np.abs(outside - ours).max() > 1e-3  # eps = 0.1 makes the placement visible

    @pytest.mark.parametrize("centered", [False, True])
    def test_rmsprop_eps_inside_sqrt(self, grads, compiled, centered):
        ours = nabla_run(
            optim.RMSProp,
            grads,
            compiled,
            lr=0.01,
            beta=0.9,
            eps=1e-2,
            centered=centered,
            eps_inside_sqrt=True,
        )
        np.testing.assert_allclose(
            ours, keras_rmsprop(grads, 0.01, 0.9, 1e-2, centered), rtol=1e-12
        )

    @pytest.mark.parametrize("nesterov", [False, True])
    def test_sgd_decoupled_weight_decay(self, grads, compiled, nesterov):
        ours = nabla_run(
            optim.SGD,
            grads,
            compiled,
            lr=0.05,
            momentum=0.9,
            nesterov=nesterov,
            weight_decay=0.5,
            decoupled_weight_decay=True,
        )
        np.testing.assert_allclose(ours, keras_sgd(grads, 0.05, 0.9, nesterov, 0.5), rtol=1e-12)
        coupled = nabla_run(
            optim.SGD, grads, compiled, lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=0.5
        )
        assert np.abs(coupled - ours).max() > 1e-3  # with momentum the two differ

    def test_adagrad_and_rmsprop_decoupled_weight_decay(self, grads, compiled):
        ours = nabla_run(
            optim.AdaGrad,
            grads,
            compiled,
            lr=0.1,
            eps=1e-7,
            eps_inside_sqrt=True,
            initial_accumulator_value=0.1,
            weight_decay=0.3,
            decoupled_weight_decay=True,
        )
        np.testing.assert_allclose(ours, keras_adagrad(grads, 0.1, 1e-7, 0.1, wd=0.3), rtol=1e-12)
        ours = nabla_run(
            optim.RMSProp,
            grads,
            compiled,
            lr=0.01,
            eps=1e-7,
            eps_inside_sqrt=True,
            weight_decay=0.3,
            decoupled_weight_decay=True,
        )
        np.testing.assert_allclose(
            ours, keras_rmsprop(grads, 0.01, 0.9, 1e-7, False, wd=0.3), rtol=1e-12
        )

    def test_adam_decoupled_is_keras_adam_with_weight_decay(self, grads, compiled):
        ours = nabla_run(
            optim.Adam,
            grads,
            compiled,
            lr=0.01,
            eps=1e-7,
            bias_correction="folded",
            weight_decay=0.3,
            decoupled_weight_decay=True,
        )
        np.testing.assert_allclose(ours, keras_adam(grads, 0.01, 0.9, 0.999, 1e-7, 0.3), rtol=1e-12)
        adamw = nabla_run(
            optim.AdamW,
            grads,
            compiled,
            lr=0.01,
            eps=1e-7,
            bias_correction="folded",
            weight_decay=0.3,
        )
        np.testing.assert_array_equal(ours, adamw)

    def test_sgd_dampening(self, grads, compiled):
        ours = nabla_run(optim.SGD, grads, compiled, lr=0.05, momentum=0.9, dampening=0.3)
        np.testing.assert_allclose(ours, torch_sgd_dampening(grads, 0.05, 0.9, 0.3), rtol=1e-12)


def test_bad_conventions_are_refused():
    w = nb.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="eps_inside_sqrt must be True or False"):
        optim.AdaGrad([w], eps_inside_sqrt="yes")
    with pytest.raises(ValueError, match="decoupled_weight_decay must be True or False"):
        optim.SGD([w], decoupled_weight_decay=1)
    with pytest.raises(ValueError, match="use Adam"):
        optim.AdamW([w], decoupled_weight_decay=False)
    with pytest.raises(ValueError, match="dampening = 0"):
        optim.SGD([w], momentum=0.9, nesterov=True, dampening=0.1)
    with pytest.raises(ValueError, match=r"dampening must be in \[0, 1\]"):
        optim.SGD([w], momentum=0.9, dampening=1.5)
