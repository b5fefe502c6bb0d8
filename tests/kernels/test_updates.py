"""Every optimizer's compiled kernel against its NumPy reference, option by option.

The kernels compute the reference's operations in the same order and dtype, so the two must agree
bit for bit: parameters and every state buffer, after several steps with gradients that include
zeros, tiny and large values, on float32 and float64, on sizes around the parallel threshold (the
parallel variant must not skip or repeat an element), with coupled and decoupled weight decay,
with stretches of parameters that took different numbers of steps, and on empty groups.
"""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels, optim
from nabla.kernels import runtime

CASES = {
    "sgd": (optim.SGD, {"lr": 0.1}),
    "sgd-wd": (optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    "sgd-momentum": (optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    "sgd-nesterov-wd": (
        optim.SGD,
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-2},
    ),
    "sgd-dampening": (optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    "sgd-decoupled": (
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ),
    "adagrad": (optim.AdaGrad, {"lr": 0.1}),
    "adagrad-init-wd": (
        optim.AdaGrad,
        {"lr": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 1e-3},
    ),
    "adagrad-inside": (optim.AdaGrad, {"lr": 0.1, "eps": 1e-7, "eps_inside_sqrt": True}),
    "adagrad-decoupled": (
        optim.AdaGrad,
        {"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ),
    "rmsprop": (optim.RMSProp, {"lr": 1e-2}),
    "rmsprop-centered": (optim.RMSProp, {"lr": 1e-2, "beta": 0.95, "centered": True}),
    "rmsprop-momentum-wd": (optim.RMSProp, {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-2}),
    "rmsprop-centered-momentum-inside": (
        optim.RMSProp,
        {"lr": 1e-3, "momentum": 0.5, "centered": True, "eps_inside_sqrt": True},
    ),
    "rmsprop-decoupled": (
        optim.RMSProp,
        {"lr": 1e-3, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ),
    "adam": (optim.Adam, {"lr": 1e-2}),
    "adam-l2": (optim.Adam, {"lr": 1e-2, "weight_decay": 1e-2}),
    "adam-folded": (optim.Adam, {"lr": 1e-2, "bias_correction": "folded"}),
    "adam-none-betas": (
        optim.Adam,
        {"lr": 1e-2, "bias_correction": "none", "beta1": 0.5, "beta2": 0.9},
    ),
    "amsgrad": (optim.Adam, {"lr": 1e-2, "amsgrad": True}),
    "adamw": (optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    "adamw-amsgrad-schedule": (
        optim.AdamW,
        {"lr": optim.schedules.CosineDecay(1e-2, 10), "amsgrad": True},
    ),
}
SIZES = [(1,), (7, 3), (runtime.PARALLEL_MIN + 13,)]  # the last one runs the parallel variant


def gradients(shape, dtype, steps, seed=0):
    """Gradients with exact zeros, tiny (subnormal-making) and large values mixed in."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(steps):
        g = rng.standard_normal(shape).astype(dtype)
        g[rng.random(shape) < 0.2] = 0
        g[rng.random(shape) < 0.05] *= np.finfo(dtype).tiny * 4
        g[rng.random(shape) < 0.02] *= 1e4
        if i == steps - 1:
            g[...] = 0  # a step on zero gradients: only the state moves
        out.append(g)
    return out


def run(make, shapes, dtype, compiled, steps=6, freeze_first_for=0):
    """Train parameters of ``shapes`` for ``steps`` with fixed gradients; the first parameter is
    frozen for its first ``freeze_first_for`` steps (so stretches take different step counts)."""
    rng = np.random.default_rng(1)
    params = [nb.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]
    grads = [gradients(s, dtype, steps, seed=i) for i, s in enumerate(shapes)]
    opt = make(params)
    with runtime_mode(compiled):
        assert kernels.compiled() == compiled
        for step in range(steps):
            params[0].requires_grad = step >= freeze_first_for
            for p, g in zip(params, grads):
                p.grad = g[step].copy()
            opt.step()
    state = opt.state_dict()["state"]
    return [p.data.copy() for p in params], state


def runtime_mode(compiled: bool):
    return kernels.reference(not compiled)


def assert_same(a, b):
    (params_a, state_a), (params_b, state_b) = a, b
    for x, y in zip(params_a, params_b):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert state_a[name].keys() == state_b[name].keys()
        for key in state_a[name]:
            np.testing.assert_array_equal(state_a[name][key], state_b[name][key], err_msg=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", CASES)
def test_kernel_equals_reference_bitwise(case, shape, dtype):
    cls, kwargs = CASES[case]

    def make(params):
        return cls(params, **kwargs)

    shapes = [shape, (5,), shape]
    compiled = run(make, shapes, dtype, compiled=True, freeze_first_for=2)
    reference = run(make, shapes, dtype, compiled=False, freeze_first_for=2)
    assert_same(compiled, reference)
    moved = [
        not np.array_equal(p, q)
        for p, q in zip(compiled[0], run(make, shapes, dtype, True, steps=0)[0])
    ]
    assert all(moved), "a parameter did not move: the comparison would prove nothing"


@pytest.mark.parametrize("case", ["sgd-momentum", "rmsprop-centered", "adam"])
def test_empty_and_all_frozen_groups(case):
    cls, kwargs = CASES[case]
    frozen = nb.zeros(3, requires_grad=True)
    live = nb.ones(4, requires_grad=True)
    opt = cls([{"params": [frozen]}, {"params": [live]}], **kwargs)
    frozen.requires_grad = False  # the first group is now empty
    live.grad = np.full(4, 0.5, np.float32)
    for compiled in (True, False):
        with runtime_mode(compiled):
            opt.step()
    assert np.all(frozen.data == 0) and np.all(live.data < 1)


@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_kernel_agrees_with_reference_under_any_thread_count():
    make = CASES["adam"]
    shapes = [(runtime.PARALLEL_MIN * 3 + 1,)]
    before = kernels.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            kernels.set_num_threads(threads)
            results.append(run(lambda p: make[0](p, **make[1]), shapes, "float32", compiled=True))
    finally:
        kernels.set_num_threads(before)
    assert_same(*results)
    assert_same(results[0], run(lambda p: make[0](p, **make[1]), shapes, "float32", compiled=False))


def test_set_num_threads_validates():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            kernels.set_num_threads(bad)
