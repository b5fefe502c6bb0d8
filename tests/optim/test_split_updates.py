"""Updates split over threads and stretches reach every element exactly once.

Each optimizer updates a parameter group as one flat buffer, in one compiled pass that numba
splits over threads from ``runtime.PARALLEL_MIN`` elements on, and in several passes when the
group's parameters took different numbers of steps (``FlatGroup.step_runs``). A bound off by one
anywhere in that chain (a kernel's loop, a thread's share, a stretch, a parameter's slice of the
buffer) leaves elements behind, and the kernel-against-reference tests (tests/kernels) cannot see
one that both paths share. So here each optimizer runs on a group of parameters of several shapes
whose total is larger than the parallel threshold and a multiple of no split size, on 1 and 2
threads, and every element is compared with the algorithm's formula computed parameter by
parameter in float64 NumPy, independently of the flat buffers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nabla as nb
from nabla import kernels, optim
from nabla.kernels import runtime

SPLIT = runtime.PARALLEL_MIN
# A group of 2 * SPLIT + 37 elements: a vector, a matrix, a 3-d block and a long remainder.
SHAPES = [(3,), (17, 13), (5, 7, 11), (2 * SPLIT + 37 - 3 - 17 * 13 - 5 * 7 * 11,)]
STEPS = 3


# --- the algorithms, as formulas on one parameter in float64 --------------------------------------


def sgd(theta, g, state, h, t):
    lr, beta = h["lr"], h.get("momentum", 0.0)
    if not beta:
        return theta - lr * g
    dampened = lr * (1 - h.get("dampening", 0.0)) if t > 1 else lr
    v = state["v"] = beta * state.get("v", 0.0) - dampened * g
    return theta + (beta * v - lr * g if h.get("nesterov") else v)


def adam(theta, g, state, h, t):
    lr, b1, b2, eps = h["lr"], h.get("beta1", 0.9), h.get("beta2", 0.999), h.get("eps", 1e-8)
    s = state["s"] = b1 * state.get("s", 0.0) + (1 - b1) * g
    r = state["r"] = b2 * state.get("r", 0.0) + (1 - b2) * g * g
    if h.get("amsgrad"):
        r = state["r_max"] = np.maximum(state.get("r_max", 0.0), r)
    correction = h.get("bias_correction", "explicit")
    if correction == "explicit":
        s_hat, r_hat = s / (1 - b1**t), r / (1 - b2**t)
        return theta - lr * s_hat / (np.sqrt(r_hat) + eps)
    if correction == "folded":
        return theta - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * s / (np.sqrt(r) + eps)
    return theta - lr * s / (np.sqrt(r) + eps)


def adagrad(theta, g, state, h, t):
    r = state["r"] = state.get("r", h.get("initial_accumulator_value", 0.0)) + g * g
    eps = h.get("eps", 1e-10)
    return theta - h["lr"] * g / (
        np.sqrt(r + eps) if h.get("eps_inside_sqrt") else np.sqrt(r) + eps
    )


def rmsprop(theta, g, state, h, t):
    beta, eps, momentum = h["beta"], h.get("eps", 1e-8), h.get("momentum", 0.0)
    r = state["r"] = beta * state.get("r", 0.0) + (1 - beta) * g * g
    if h.get("centered"):
        gbar = state["gbar"] = beta * state.get("gbar", 0.0) + (1 - beta) * g
        r = np.maximum(r - gbar * gbar, 0.0)
    step = g / (np.sqrt(r) + eps)
    if momentum:
        step = state["v"] = momentum * state.get("v", 0.0) + step
    return theta - h["lr"] * step


def with_weight_decay(formula):
    """Coupled L2 (g + wd theta) or decoupled decay (theta (1 - lr wd) first), as ``h`` says."""

    def update(theta, g, state, h, t):
        wd = h.get("weight_decay", 0.0)
        if h.get("decoupled_weight_decay"):
            theta = theta * (1 - h["lr"] * wd)
        elif wd:
            g = g + wd * theta
        return formula(theta, g, state, h, t)

    return update


# id -> (nabla class, hyperparameters, formula); the formula reads the class's defaults too
CASES = {
    "sgd": (optim.SGD, {"lr": 0.1}, sgd),
    "sgd-weight-decay": (optim.SGD, {"lr": 0.1, "weight_decay": 0.05}, sgd),
    "momentum": (optim.SGD, {"lr": 0.05, "momentum": 0.9}, sgd),
    "momentum-dampening": (optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}, sgd),
    "momentum-decoupled": (
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "decoupled_weight_decay": True},
        sgd,
    ),
    "nesterov-weight-decay": (
        optim.SGD,
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
        sgd,
    ),
    "adam-explicit": (optim.Adam, {"lr": 0.01}, adam),
    "adam-folded": (optim.Adam, {"lr": 0.01, "bias_correction": "folded"}, adam),
    "adam-none": (optim.Adam, {"lr": 0.01, "bias_correction": "none", "beta1": 0.5}, adam),
    "adam-l2-amsgrad": (optim.Adam, {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True}, adam),
    "adamw": (
        optim.AdamW,
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        adam,
    ),
    "adagrad": (optim.Adagrad, {"lr": 0.1, "initial_accumulator_value": 0.1}, adagrad),
    "adagrad-eps-inside": (optim.Adagrad, {"lr": 0.1, "eps_inside_sqrt": True}, adagrad),
    "rmsprop": (optim.RMSprop, {"lr": 0.01, "beta": 0.99}, rmsprop),
    "rmsprop-centered-momentum-wd": (
        optim.RMSProp,
        {"lr": 0.01, "beta": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.01},
        rmsprop,
    ),
}


def test_the_group_is_larger_than_every_split_and_a_multiple_of_none():
    total = sum(math.prod(s) for s in SHAPES)
    assert total > 2 * SPLIT and total % SPLIT != 0 and total % 2 != 0


def gradients(rng):
    """Per step and parameter: |g| in [0.5, 2] with random signs, so every element moves."""
    return [
        [(rng.uniform(0.5, 2, s) * rng.choice([-1, 1], s)).astype(np.float32) for s in SHAPES]
        for _ in range(STEPS)
    ]


def expected(formula, h, start, grads, active):
    """The formula run on each parameter on its own, in float64; ``active[step][i]``: whether
    parameter i takes that step (a frozen one keeps its value and its step count)."""
    out = []
    for i, theta in enumerate(start):
        theta, state, t = theta.astype(np.float64), {}, 0
        for step in range(STEPS):
            if active[step][i]:
                t += 1
                theta = formula(theta, grads[step][i].astype(np.float64), state, h, t)
        out.append(theta)
    return out


def train(cls, kwargs, start, grads, active, threads):
    """nabla's optimizer on the same parameters and gradients; gradients arrive by backward
    (sum(p * g) has gradient g), as in training, so they land in the flat gradient buffer.
    Returns the parameters, and which parameters had every element changed by the first step."""
    params = [nb.tensor(x.copy(), requires_grad=True) for x in start]
    opt = cls(params, **kwargs)
    before = kernels.get_num_threads()
    kernels.set_num_threads(threads)
    try:
        for step in range(STEPS):
            opt.zero_grad()
            for p, on in zip(params, active[step]):
                p.requires_grad = on
            live = [(p, g) for p, g, on in zip(params, grads[step], active[step]) if on]
            sum((p * nb.tensor(g)).sum() for p, g in live).backward()
            opt.step()
            if step == 0:
                moved = [bool(np.all(p.data != x)) for p, x in zip(params, start)]
    finally:
        kernels.set_num_threads(before)
    return [p.data.copy() for p in params], moved


def check(case, active, threads):
    cls, kwargs, formula = CASES[case]
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = gradients(rng)
    h = {**cls.defaults, **kwargs}
    got, moved = train(cls, kwargs, start, grads, active, threads)
    # The first step (|g| >= 0.5 everywhere) changed every element of the parameters that took
    # it, and nothing of the others; a later step may move an element by less than an ulp.
    assert moved == list(active[0]), f"{case}: an element of a parameter was left out of a step"
    want = expected(with_weight_decay(formula), h, start, grads, active)
    for name, x, y in zip(map(str, SHAPES), got, want):
        assert x.dtype == np.float32
        # float32 against float64: the rounding of a few operations on numbers of order 1 (at
        # most 1e-6 |theta| + 1e-7 here); an element left behind is off by a step, >= 1e-3
        np.testing.assert_allclose(x, y, rtol=4e-6, atol=4e-7, err_msg=f"{case}, shape {name}")
    return got


@pytest.mark.parametrize("case", CASES)
@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_every_element_follows_the_formula_on_one_and_two_threads(case):
    active = [[True] * len(SHAPES)] * STEPS
    one, two = (check(case, active, threads) for threads in (1, 2))
    for x, y in zip(one, two):  # each element is updated on its own: the split changes no bit
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("case", ["momentum", "adam-explicit", "adagrad", "rmsprop"])
def test_stretches_of_different_step_counts(case):
    """A parameter frozen for the first step splits the buffer into stretches (Adam's bias
    correction counts each parameter's own steps); every stretch still covers its elements."""
    active = [[True, True, False, True], [True] * 4, [False, True, True, True]]
    check(case, active, threads=2)


def test_packing_gives_every_element_its_own_slot():
    """One step with gradient g = index + 1: theta moves by exactly -lr g, element by element,
    so a slice that overlaps, shifts or drops an element shows up."""
    params = [nb.zeros(s, requires_grad=True) for s in SHAPES]
    opt = optim.SGD(params, lr=1.0)
    offset = 0
    for p in params:
        p.grad = np.arange(offset + 1, offset + p.data.size + 1, dtype=np.float32).reshape(p.shape)
        offset += p.data.size
    opt.step()
    flat = -np.concatenate([p.data.reshape(-1) for p in params])
    np.testing.assert_array_equal(flat, np.arange(1, offset + 1, dtype=np.float32))
    assert np.shares_memory(params[0].data, opt.parameter_vectors()[0])
