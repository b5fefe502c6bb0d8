"""The plan a student reads, and the memory it uses: buffers fixed at the trace, none allocated
while it replays."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from jit_twins import batches, mlp_setup

import nabla as nb
from nabla import kernels, nn


def test_the_plan_prints_the_program_with_its_values_buffers_and_guards():
    _model, _opt, step = mlp_setup(dropout=0.3)
    compiled = nb.compile(step)
    assert compiled.plan is None
    compiled(*batches(1)[0])
    text = str(compiled.plan)
    head, source = text.split("def replay(x0, x1):\n")
    assert head.startswith("plan: ")
    assert "allocation-free\n" in head
    for line in [
        "  x0    input    (16, 20) float32  (argument 0)",
        "  x1    input    (16,) int64  (argument 1)",
        "  p0    tensor   (32, 20) float32  (0.weight)",
        "  p5    tensor   (5,) float32  (6.bias)",
    ]:
        assert line + "\n" in head
    assert "the training flag of 8 module(s), the data and requires_grad of 6 tensor(s)" in head
    # the program: forward with buffers, the optimizer's calls, backward in the engine's order
    assert "    np.matmul(x0, p0.data.T, out=buf0)\n" in source
    assert "    # [0] LinearReLU\n" in source and "    # [1] Dropout\n" in source
    assert "    opt0.zero_grad(True)\n" in source and "    opt0.step(None)\n" in source
    order = [
        source.index(s)
        for s in ("# --- forward", "opt0.zero_grad", "# --- backward", "opt0.step", "return (")
    ]
    assert order == sorted(order)
    assert "# [0] LinearReLU backward: relu'" not in source  # numbered in program order
    backward = source[source.index("# --- backward") :].split("# --- call")[0]
    labels = [
        line.split("] ", 1)[1] for line in backward.splitlines() if line.strip().startswith("# [")
    ]
    assert labels[2] == "CrossEntropy backward: (p - q) g"
    assert labels[-1].startswith("dL/db") and labels[-2].startswith("dL/dW")


def test_buffers_are_reused_once_their_last_reader_has_run():
    _, _, step = mlp_setup(dropout=0.0, sizes=(20, 32, 32, 32, 5))
    compiled = nb.compile(step)
    compiled(*batches(1)[0])
    plan = compiled.plan
    assert plan.reused > 0 and len(plan.buffers) == plan.virtual - plan.reused
    assert f"{len(plan.buffers)} buffers (" in str(plan)
    assert f"for {plan.virtual} arrays ({plan.reused} reuse a buffer" in str(plan)
    # Replaying with reuse gives the eager numbers (test_replay); here: no two arrays live at
    # the same time share a buffer, checked on the program's own reads and writes.
    names = [line for i in plan.instructions for line in i.lines]
    assert any("buf0" in line for line in names)


def test_operations_without_a_lowering_are_named_in_the_printout():
    nb.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    compiled = nb.compile(lambda x: (model(x) ** 2).mean())
    compiled(np.ones((2, 4), np.float32))
    text = str(compiled.plan)
    assert "runs its own code (allocates): Mean, Tanh\n" in text  # the square is lowered
    assert "    v1 = asarray(Tanh.forward(ctx1, buf0))\n" in text


def test_arrays_made_outside_the_operations_are_listed_as_frozen():
    nb.manual_seed(0)
    layer = nn.Linear(3, 4)
    targets = np.array([1, 3])  # made once, outside the step: a constant of the plan
    scale = nb.tensor([2.0, 2.0, 2.0])  # a tensor that is no parameter: read at each replay
    compiled = nb.compile(lambda x: nn.functional.cross_entropy(layer(x * scale), targets))
    compiled(np.ones((2, 3), np.float32))
    text = str(compiled.plan)
    assert "  k0    constant (2,)  (frozen at the trace)\n" in text
    assert "  p0    tensor   (3,) float32  (a tensor (3,), not a parameter)\n" in text
    assert "  p1    tensor   (4, 3) float32  (weight)\n" in text


@pytest.mark.skipif(
    not kernels.compiled(),
    reason="the NumPy reference updates (NABLA_KERNELS=reference) allocate temporaries by design; "
    "the plan's own freedom from allocation is checked on the compiled kernels",
)
def test_no_array_is_allocated_while_a_plan_replays():
    """After a warm-up (Python's free lists fill up), 100 replays of an MLP step with dropout and
    Adam leave traced memory where it was, and never allocate more at once than a few KiB of
    small Python objects: less than any array of the step (the smallest, the logits, is 8 KiB)."""
    _model, _opt, step = mlp_setup(dropout=0.2, sizes=(100, 128, 128, 64))
    compiled = nb.compile(step)
    ((x, y),) = batches(1, batch=32, features=100, classes=64)
    for _ in range(2500):
        compiled(x, y)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(100):
            compiled(x, y)
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert now - start < 1024
    assert peak - start < 8 * 1024
    assert compiled.replays == 2599 and "allocation-free" in str(compiled.plan)


def test_an_eager_step_allocates_what_the_plan_does_not():
    """The same measurement on the eager step: the test above would see its arrays."""
    _model, _opt, step = mlp_setup(dropout=0.2, sizes=(100, 128, 128, 64))
    ((x, y),) = batches(1, batch=32, features=100, classes=64)
    for _ in range(50):
        step(nb.Tensor._make(x), nb.Tensor._make(y))
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(10):
            step(nb.Tensor._make(x), nb.Tensor._make(y))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - start > 32 * 128 * 4
