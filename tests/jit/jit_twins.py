"""Twin set-ups for the compile tests: the same model, optimizer and data, one run eagerly and one
through ``nb.compile``, so that every number can be compared bit for bit."""

from __future__ import annotations

import numpy as np

import nabla as nb
from nabla import models, nn, optim
from nabla.optim import schedules


def batches(n: int, batch: int = 16, features: int = 20, classes: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((batch, features)).astype(np.float32), rng.integers(0, classes, batch))
        for _ in range(n)
    ]


def training_step(model, opt, loss_fn=nn.functional.cross_entropy):
    """step(x, y): forward, loss, zero_grad, backward, update; returns the loss."""

    def step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def mlp_setup(dropout: float = 0.3, sizes=(20, 32, 32, 5), seed: int = 0):
    """An MLP with dropout and Adam on a cosine schedule; returns (model, optimizer, step)."""
    nb.manual_seed(seed)
    model = models.mlp(list(sizes), dropout=dropout)
    opt = optim.Adam(model.parameters(), lr=schedules.CosineDecay(1e-2, decay_steps=60))
    return model, opt, training_step(model, opt)


def eager(step):
    """The step as the compiled one is called: arrays in, the tensors it returns out."""
    return lambda *args: step(
        *(nb.Tensor._make(a) if isinstance(a, np.ndarray) else a for a in args)
    )


def bits(a) -> np.ndarray:
    a = np.asarray(a.data if isinstance(a, nb.Tensor) else a)
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def same_bits(a, b) -> bool:
    a = np.asarray(a.data if isinstance(a, nb.Tensor) else a)
    b = np.asarray(b.data if isinstance(b, nb.Tensor) else b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(bits(a), bits(b))


def same_state(model_a, opt_a, model_b, opt_b) -> list[str]:
    """Names of the parameters, buffers and optimizer state that differ in any bit."""
    diff = []
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        if not same_bits(a, b):
            diff.append(name)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    for key in sa["state"]:
        for buf in sa["state"][key]:
            if not same_bits(sa["state"][key][buf], sb["state"][key][buf]):
                diff.append(f"optimizer {key}.{buf}")
    return diff
