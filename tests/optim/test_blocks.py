"""The blocked, threaded update gives bit-identical results for any thread count."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import models, nn, optim
from nabla.optim import optimizer as base


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.Adam(p, lr=1e-3, weight_decay=1e-4, amsgrad=True),
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        lambda p: optim.RMSProp(p, lr=1e-3, centered=True, momentum=0.5),
        lambda p: optim.AdaGrad(p, lr=1e-2),
        lambda p: optim.AdamW(p, lr=1e-3),
    ],
)
def test_thread_count_does_not_change_the_result(make, monkeypatch):
    monkeypatch.setattr(base, "BLOCK", 1 << 12)  # 78 blocks: every thread gets several
    used = []
    monkeypatch.setattr(base, "_executor", lambda real=base._executor: used.append(1) or real())
    results, previous = [], base.get_num_threads()
    try:
        for threads in (1, 2, 3):
            base.set_num_threads(threads)
            nb.manual_seed(0)
            model = models.mlp([784, 400, 10])  # 318k parameters
            opt = make(model.parameters())
            for _ in range(3):
                opt.zero_grad()
                nn.functional.cross_entropy(
                    model(nb.randn(16, 784)), nb.randint(0, 10, 16)
                ).backward()
                opt.step()
            results.append(np.concatenate([p.data.ravel() for p in model.parameters()]))
    finally:
        base.set_num_threads(previous)
    assert used, "the thread pool was never used"
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="at least 1"):
        base.set_num_threads(0)
