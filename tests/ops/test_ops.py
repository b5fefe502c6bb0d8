"""Every operation, checked the same way: NumPy forward, gradcheck, torch forward and backward.

The table below is the whole specification: each OpCase names the op in nabla, in NumPy and in
torch, with the shapes to try (including broadcasting and 0-d scalars).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from harness import (
    OpCase,
    away_from,
    check_forward,
    check_gradcheck,
    check_torch,
    distinct,
    normal,
    params,
    positive,
)

import nabla as nb
import nabla.nn.functional as F

torch.set_num_threads(1)

BINARY = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((5,), ())]
UNARY = [((3, 4),), ((),), ((2, 3, 4),)]
MATRIX = [((3, 4),), ((2, 3, 4),)]

_erf = np.vectorize(math.erf)


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return np.log(np_softmax(x, axis))


def torch_pad(widths):
    """numpy.pad widths ((before, after) per axis) -> F.pad's flat list, last axis first."""
    return [w for pair in reversed(widths) for w in pair]


def condition(shape):
    return (np.arange(int(np.prod(shape, dtype=int))).reshape(shape) % 3) == 0


def class_targets(shape):
    """Deterministic class indices for logits of ``shape`` (classes along axis 1)."""
    n_classes = shape[1]
    rest = shape[:1] + shape[2:]
    return (np.arange(int(np.prod(rest))).reshape(rest) * 7 + 1) % n_classes


def prob_targets(shape):
    return np_softmax(np.random.default_rng(1).standard_normal(shape), axis=1)


def np_cross_entropy(z, q, smoothing=0.0, reduction="mean"):
    log_p = np_log_softmax(z, axis=1)
    if q.dtype.kind in "iu":
        q = np.moveaxis(np.eye(z.shape[1])[q], -1, 1)
    q = (1 - smoothing) * q + smoothing / z.shape[1]
    loss = -(q * log_p).sum(axis=1)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def torch_targets(q):
    return torch.from_numpy(q) if q.dtype.kind in "iu" else q


MASK = np.array(
    [[True, False, True, False], [False, False, True, True], [True, True, False, False]]
)

CASES = [
    # arithmetic, with broadcasting and scalars
    OpCase("add", lambda a, b: a + b, np.add, torch.add, BINARY),
    OpCase("sub", lambda a, b: a - b, np.subtract, torch.sub, BINARY),
    OpCase("mul", lambda a, b: a * b, np.multiply, torch.mul, BINARY),
    OpCase("div", lambda a, b: a / b, np.divide, torch.div, BINARY, draw=[normal, positive]),
    OpCase("pow", lambda a, b: a**b, np.power, torch.pow, BINARY, draw=[positive, normal]),
    OpCase("pow_scalar", lambda a: a**3, lambda a: a**3, lambda a: a**3, UNARY),
    OpCase("sqrt_by_pow", lambda a: a**0.5, np.sqrt, lambda a: a**0.5, UNARY, draw=positive),
    OpCase("rsub", lambda a: 2.0 - a, lambda a: 2.0 - a, lambda a: 2.0 - a, UNARY),
    OpCase("rdiv", lambda a: 1.5 / a, lambda a: 1.5 / a, lambda a: 1.5 / a, UNARY, draw=positive),
    OpCase("rpow", lambda a: 2.0**a, lambda a: 2.0**a, lambda a: 2.0**a, UNARY),
    OpCase("neg", lambda a: -a, np.negative, torch.neg, UNARY),
    OpCase("maximum", nb.maximum, np.maximum, torch.maximum, BINARY, draw=[normal, away_from(0.0)]),
    OpCase("minimum", nb.minimum, np.minimum, torch.minimum, BINARY),
    # math functions
    OpCase("exp", nb.exp, np.exp, torch.exp, UNARY),
    OpCase("log", nb.log, np.log, torch.log, UNARY, draw=positive),
    OpCase("sqrt", nb.sqrt, np.sqrt, torch.sqrt, UNARY, draw=positive),
    OpCase("abs", nb.abs, np.abs, torch.abs, UNARY, draw=away_from(0.0)),
    OpCase("sin", nb.sin, np.sin, torch.sin, UNARY),
    OpCase("cos", nb.cos, np.cos, torch.cos, UNARY),
    OpCase(
        "clip",
        lambda a: a.clip(-0.5, 0.5),
        lambda a: np.clip(a, -0.5, 0.5),
        lambda a: a.clamp(-0.5, 0.5),
        UNARY,
        draw=away_from(-0.5, 0.5),
    ),
    OpCase(
        "clip_low",
        lambda a: nb.clip(a, min=0.2),
        lambda a: np.maximum(a, 0.2),
        lambda a: a.clamp(min=0.2),
        UNARY,
        draw=away_from(0.2),
    ),
    OpCase(
        "where",
        lambda a, b: nb.where(nb.tensor(condition(np.broadcast_shapes(a.shape, b.shape))), a, b),
        lambda a, b: np.where(condition(np.broadcast_shapes(a.shape, b.shape)), a, b),
        lambda a, b: torch.where(
            torch.from_numpy(condition(np.broadcast_shapes(a.shape, b.shape))), a, b
        ),
        BINARY,
    ),
    # activations
    OpCase(
        "sigmoid", nb.sigmoid, lambda x: 1 / (1 + np.exp(-x)), torch.sigmoid, [*UNARY, ((50,),)]
    ),
    OpCase("tanh", nb.tanh, np.tanh, torch.tanh, UNARY),
    OpCase("relu", nb.relu, lambda x: np.maximum(x, 0), torch.relu, UNARY, draw=away_from(0.0)),
    OpCase(
        "leaky_relu",
        lambda x: F.leaky_relu(x, 0.1),
        lambda x: np.where(x > 0, x, 0.1 * x),
        lambda x: TF.leaky_relu(x, 0.1),
        UNARY,
        draw=away_from(0.0),
    ),
    OpCase(
        "elu",
        lambda x: F.elu(x, 1.5),
        lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)),
        lambda x: TF.elu(x, 1.5),
        UNARY,
        draw=away_from(0.0),
    ),
    OpCase("gelu", F.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), TF.gelu, UNARY),
    OpCase(
        "gelu_tanh",
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        lambda x: TF.gelu(x, approximate="tanh"),
        UNARY,
    ),
    OpCase("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), TF.softplus, UNARY),
    OpCase(
        "softplus_beta",
        lambda x: F.softplus(x, beta=2.0),
        lambda x: np.log1p(np.exp(2 * x)) / 2,
        lambda x: TF.softplus(x, beta=2.0),
        UNARY,
    ),
    OpCase("softmax", F.softmax, np_softmax, lambda x: TF.softmax(x, -1), MATRIX),
    OpCase(
        "softmax_axis0",
        lambda x: F.softmax(x, axis=0),
        lambda x: np_softmax(x, 0),
        lambda x: TF.softmax(x, 0),
        MATRIX,
    ),
    OpCase("log_softmax", F.log_softmax, np_log_softmax, lambda x: TF.log_softmax(x, -1), MATRIX),
    # reductions
    OpCase("sum", lambda x: x.sum(), np.sum, torch.sum, UNARY),
    OpCase(
        "sum_axis",
        lambda x: x.sum(axis=0),
        lambda x: x.sum(axis=0),
        lambda x: x.sum(dim=0),
        MATRIX,
    ),
    OpCase(
        "sum_axes_keepdims",
        lambda x: x.sum(axis=(0, -1), keepdims=True),
        lambda x: x.sum(axis=(0, -1), keepdims=True),
        lambda x: x.sum(dim=(0, -1), keepdim=True),
        MATRIX,
    ),
    OpCase("mean", lambda x: x.mean(), np.mean, torch.mean, UNARY),
    OpCase(
        "mean_axis",
        lambda x: x.mean(axis=-1, keepdims=True),
        lambda x: x.mean(axis=-1, keepdims=True),
        lambda x: x.mean(dim=-1, keepdim=True),
        MATRIX,
    ),
    OpCase("max", lambda x: x.max(), np.max, torch.max, UNARY, draw=distinct),
    OpCase(
        "max_axis",
        lambda x: x.max(axis=1),
        lambda x: x.max(axis=1),
        lambda x: torch.amax(x, dim=1),
        MATRIX,
        draw=distinct,
    ),
    OpCase(
        "min_axes",
        lambda x: x.min(axis=(0, 1), keepdims=True),
        lambda x: x.min(axis=(0, 1), keepdims=True),
        lambda x: torch.amin(x, dim=(0, 1), keepdim=True),
        MATRIX,
        draw=distinct,
    ),
    OpCase("var", lambda x: x.var(), np.var, lambda x: torch.var(x, correction=0), MATRIX),
    OpCase(
        "var_axis_ddof1",
        lambda x: x.var(axis=0, ddof=1),
        lambda x: x.var(axis=0, ddof=1),
        lambda x: torch.var(x, dim=0, correction=1),
        MATRIX,
    ),
    OpCase(
        "std_axis_keepdims",
        lambda x: x.std(axis=-1, ddof=1, keepdims=True),
        lambda x: x.std(axis=-1, ddof=1, keepdims=True),
        lambda x: torch.std(x, dim=-1, correction=1, keepdim=True),
        MATRIX,
    ),
    OpCase(
        "logsumexp",
        lambda x: x.logsumexp(axis=-1),
        lambda x: np.log(np.exp(x).sum(axis=-1)),
        lambda x: torch.logsumexp(x, dim=-1),
        MATRIX,
    ),
    OpCase(
        "logsumexp_all",
        lambda x: nb.logsumexp(x),
        lambda x: np.log(np.exp(x).sum()),
        lambda x: torch.logsumexp(x, dim=tuple(range(x.ndim))),
        MATRIX,
    ),
    # shape
    OpCase(
        "reshape",
        lambda x: x.reshape(-1, 2),
        lambda x: x.reshape(-1, 2),
        lambda x: x.reshape(-1, 2),
        MATRIX,
    ),
    OpCase("transpose", lambda x: x.T, lambda x: x.T, lambda x: x.permute(1, 0), [((3, 4),)]),
    OpCase(
        "permute",
        lambda x: x.permute(2, 0, 1),
        lambda x: x.transpose(2, 0, 1),
        lambda x: x.permute(2, 0, 1),
        [((2, 3, 4),)],
    ),
    OpCase(
        "swapaxes",
        lambda x: x.swapaxes(0, -1),
        lambda x: x.swapaxes(0, -1),
        lambda x: x.transpose(0, -1),
        MATRIX,
    ),
    OpCase(
        "flatten",
        lambda x: x.flatten(1),
        lambda x: x.reshape(x.shape[0], -1),
        lambda x: x.flatten(1),
        MATRIX,
    ),
    OpCase(
        "squeeze",
        lambda x: x.squeeze(1),
        lambda x: x.squeeze(1),
        lambda x: x.squeeze(1),
        [((3, 1, 2),)],
    ),
    OpCase(
        "unsqueeze",
        lambda x: x.unsqueeze(-1),
        lambda x: x[..., None],
        lambda x: x.unsqueeze(-1),
        UNARY,
    ),
    OpCase(
        "broadcast_to",
        lambda x: x.broadcast_to((2, 3, 4)),
        lambda x: np.broadcast_to(x, (2, 3, 4)),
        lambda x: x.broadcast_to((2, 3, 4)),
        [((3, 1),), ((4,),), ((),)],
    ),
    OpCase(
        "concatenate",
        lambda a, b, c: nb.concatenate([a, b, c], axis=1),
        lambda a, b, c: np.concatenate([a, b, c], axis=1),
        lambda a, b, c: torch.cat([a, b, c], dim=1),
        [((2, 1), (2, 3), (2, 2))],
    ),
    OpCase(
        "stack",
        lambda a, b: nb.stack([a, b], axis=-1),
        lambda a, b: np.stack([a, b], axis=-1),
        lambda a, b: torch.stack([a, b], dim=-1),
        [((3, 4), (3, 4)), ((), ())],
    ),
    OpCase(
        "split",
        lambda x: nb.concatenate([p * (i + 1) for i, p in enumerate(x.split([1, 3], axis=1))], 1),
        lambda x: np.concatenate([p * (i + 1) for i, p in enumerate(np.split(x, [1, 3], 1))], 1),
        lambda x: torch.cat(
            [p * (i + 1) for i, p in enumerate(torch.tensor_split(x, [1, 3], 1))], 1
        ),
        [((3, 4),)],
    ),
    OpCase(
        "pad",
        lambda x: x.pad(((0, 1), (2, 1)), value=0.5),
        lambda x: np.pad(x, ((0, 1), (2, 1)), constant_values=0.5),
        lambda x: TF.pad(x, torch_pad(((0, 1), (2, 1))), value=0.5),
        [((3, 4),)],
    ),
    OpCase("index_basic", lambda x: x[1:, ::2], lambda x: x[1:, ::2], lambda x: x[1:, ::2], MATRIX),
    OpCase(
        "index_ellipsis_none",
        lambda x: x[..., None, -1],
        lambda x: x[..., None, -1],
        lambda x: x[..., None, -1],
        MATRIX,
    ),
    OpCase(
        "index_repeated",
        lambda x: x[[0, 1, 0, 0]],
        lambda x: x[[0, 1, 0, 0]],
        lambda x: x[[0, 1, 0, 0]],
        MATRIX,
    ),
    OpCase(
        "index_pairs",
        lambda x: x[[0, 1, 1], [2, 3, 2]],
        lambda x: x[[0, 1, 1], [2, 3, 2]],
        lambda x: x[[0, 1, 1], [2, 3, 2]],
        [((3, 4),)],
    ),
    OpCase(
        "index_mask",
        lambda x: x[nb.tensor(MASK)],
        lambda x: x[MASK],
        lambda x: x[torch.from_numpy(MASK)],
        [((3, 4),)],
    ),
    # linear algebra
    OpCase(
        "matmul",
        lambda a, b: a @ b,
        np.matmul,
        torch.matmul,
        [
            ((3, 4), (4, 5)),
            ((4,), (4, 5)),
            ((3, 4), (4,)),
            ((4,), (4,)),
            ((2, 3, 4), (4, 5)),
            ((2, 3, 4), (2, 4, 5)),
            ((2, 1, 3, 4), (3, 4, 2)),
            ((4,), (2, 4, 5)),
            ((2, 3, 4), (4,)),
        ],
    ),
    OpCase(
        "linear",
        F.linear,
        lambda x, w, b: x @ w.T + b,
        TF.linear,
        [((5, 3), (4, 3), (4,)), ((2, 5, 3), (4, 3), (4,)), ((3,), (4, 3), (4,))],
    ),
    OpCase("linear_no_bias", F.linear, lambda x, w: x @ w.T, TF.linear, [((5, 3), (4, 3))]),
    # cross-entropy
    OpCase(
        "cross_entropy",
        lambda z: F.cross_entropy(z, class_targets(z.shape)),
        lambda z: np_cross_entropy(z, class_targets(z.shape)),
        lambda z: TF.cross_entropy(z, torch_targets(class_targets(z.shape))),
        [((5, 4),), ((2, 3, 2, 2),)],
    ),
    OpCase(
        "cross_entropy_sum_smoothing",
        lambda z: F.cross_entropy(z, class_targets(z.shape), "sum", label_smoothing=0.1),
        lambda z: np_cross_entropy(z, class_targets(z.shape), 0.1, "sum"),
        lambda z: TF.cross_entropy(
            z, torch_targets(class_targets(z.shape)), reduction="sum", label_smoothing=0.1
        ),
        [((5, 4),), ((2, 3, 2),)],
    ),
    OpCase(
        "cross_entropy_none",
        lambda z: F.cross_entropy(z, class_targets(z.shape), reduction="none"),
        lambda z: np_cross_entropy(z, class_targets(z.shape), reduction="none"),
        lambda z: TF.cross_entropy(z, torch_targets(class_targets(z.shape)), reduction="none"),
        [((5, 4),), ((2, 3, 2),)],
    ),
    OpCase(
        "cross_entropy_probs",
        lambda z: F.cross_entropy(z, prob_targets(z.shape), label_smoothing=0.2),
        lambda z: np_cross_entropy(z, prob_targets(z.shape), 0.2),
        lambda z: TF.cross_entropy(
            z, torch.tensor(prob_targets(z.shape), dtype=z.dtype), label_smoothing=0.2
        ),
        [((5, 4),), ((2, 3, 2),)],
    ),
    # likelihood losses: the target (and var, pos_weight) is an input, so its gradient is checked
    OpCase(
        "mse_loss",
        F.mse_loss,
        lambda x, y: ((x - y) ** 2).mean(),
        TF.mse_loss,
        [((4, 3), (4, 3)), ((), ()), ((2, 3, 2), (2, 3, 2))],
    ),
    OpCase(
        "mse_loss_none",
        lambda x, y: F.mse_loss(x, y, reduction="none"),
        lambda x, y: (x - y) ** 2,
        lambda x, y: TF.mse_loss(x, y, reduction="none"),
        [((4, 3), (4, 3))],
    ),
    OpCase(
        "l1_loss_sum",
        lambda x, y: F.l1_loss(x, y, "sum"),
        lambda x, y: np.abs(x - y).sum(),
        lambda x, y: TF.l1_loss(x, y, reduction="sum"),
        [((4, 3), (4, 3)), ((5,), (5,))],
    ),
    OpCase(
        "huber_loss",
        lambda x, y: F.huber_loss(x, y, reduction="none", delta=0.5),
        lambda x, y: np.where(
            np.abs(x - y) < 0.5, 0.5 * (x - y) ** 2, 0.5 * (np.abs(x - y) - 0.25)
        ),
        lambda x, y: TF.huber_loss(x, y, reduction="none", delta=0.5),
        [((4, 3), (4, 3)), ((2, 3, 2), (2, 3, 2))],
    ),
    OpCase(
        "gaussian_nll_loss",
        F.gaussian_nll_loss,
        lambda x, y, v: (0.5 * (np.log(v) + (x - y) ** 2 / v)).mean(),
        TF.gaussian_nll_loss,
        [((4, 3), (4, 3), (4, 3)), ((4, 3), (4, 3), (4, 1))],
        draw=[normal, normal, positive],
    ),
    OpCase(
        "gaussian_nll_loss_full_sum_per_sample",
        lambda x, y, v: F.gaussian_nll_loss(x, y, v, full=True, reduction="sum"),
        lambda x, y, v: (
            0.5 * (np.log(v[:, None]) + (x - y) ** 2 / v[:, None] + math.log(2 * math.pi))
        ).sum(),
        lambda x, y, v: TF.gaussian_nll_loss(x, y, v, full=True, reduction="sum"),
        [((4, 3), (4, 3), (4,))],
        draw=[normal, normal, positive],
    ),
    OpCase(
        "binary_cross_entropy",
        F.binary_cross_entropy,
        lambda p, y: -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(),
        TF.binary_cross_entropy,
        [((4, 3), (4, 3)), ((5,), (5,))],
        draw=[lambda rng, s: rng.uniform(0.05, 0.95, s), lambda rng, s: rng.uniform(0, 1, s)],
    ),
    OpCase(
        "binary_cross_entropy_with_logits",
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, "none"),
        lambda x, y: np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))),
        lambda x, y: TF.binary_cross_entropy_with_logits(x, y, reduction="none"),
        [((4, 3), (4, 3)), ((), ())],
        draw=[normal, lambda rng, s: rng.uniform(0, 1, s)],
    ),
    OpCase(
        "binary_cross_entropy_with_logits_pos_weight",
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, pos_weight=np.array([0.5, 2.0, 3.0])),
        lambda x, y: (
            (1 - y) * x
            + (1 + (np.array([0.5, 2.0, 3.0]) - 1) * y)
            * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))
        ).mean(),
        lambda x, y: TF.binary_cross_entropy_with_logits(
            x, y, pos_weight=torch.tensor(np.array([0.5, 2.0, 3.0]), dtype=x.dtype)
        ),
        [((4, 3), (4, 3)), ((2, 4, 3), (2, 4, 3))],
        draw=[normal, lambda rng, s: rng.uniform(0, 1, s)],
    ),
    OpCase(
        "nll_loss",
        lambda z: F.nll_loss(z, class_targets(z.shape)),
        lambda z: -np.take_along_axis(z, class_targets(z.shape)[:, None], 1).mean(),
        lambda z: TF.nll_loss(z, torch_targets(class_targets(z.shape))),
        [((5, 4),), ((2, 3, 2, 2),)],
    ),
    OpCase(
        "nll_loss_none",
        lambda z: F.nll_loss(z, class_targets(z.shape), reduction="none"),
        lambda z: -np.take_along_axis(z, class_targets(z.shape)[:, None], 1)[:, 0],
        lambda z: TF.nll_loss(z, torch_targets(class_targets(z.shape)), reduction="none"),
        [((5, 4),), ((2, 3, 2),)],
    ),
]

PARAMS = params(CASES)


@pytest.mark.parametrize(("case", "shapes"), PARAMS)
def test_forward_matches_numpy(case: OpCase, shapes):
    check_forward(case, shapes)


@pytest.mark.parametrize(("case", "shapes"), PARAMS)
def test_backward_passes_gradcheck(case: OpCase, shapes):
    check_gradcheck(case, shapes)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("case", "shapes"), PARAMS)
def test_matches_torch(case: OpCase, shapes, dtype):
    check_torch(case, shapes, dtype)
