"""Define-and-run: ``nabla.compile`` traces a step once and replays it as a static program.

nabla is *define-by-run* (Chainer, PyTorch): every call of a step builds its graph anew, as the
Python code runs, so the graph may differ at every step and a bug shows on the line that made
it. *Define-and-run* (Theano, TensorFlow 1) builds the graph once and executes it many times:
the graph is then a program that can be planned, with every array's memory fixed in advance.
``nabla.compile`` gives both on the same model::

    step = nb.compile(train_step)      # train_step(x, y): forward, zero_grad, backward, step
    loss = step(x, y)                  # first call: eager, recorded
    loss = step(x, y)                  # later calls: the plan, no Tensor or graph objects
    print(step.plan)                   # the recorded program

The first call with arguments of a given shape and dtype runs eagerly while a recorder
(:mod:`nabla.jit.recorder`) notes every operation, backward and optimizer call; the builder
(:mod:`nabla.jit.builder`) turns that into a straight-line Python function over preallocated
buffers (:mod:`nabla.jit.lowering` for the operations that write into buffers). A later call
checks the plan's guards and runs it:

* **arguments**: the same number, the same shapes and dtypes (arrays or Tensors), the same other
  values; **state**: grad mode, kernels on or off, every traced module's ``training`` flag, every
  tensor's data (not replaced) and ``requires_grad``, every optimizer's parameter groups.
  A call that fails a guard traces a new plan (a few are kept, e.g. for the smaller last batch);
  past ``max_plans`` the step runs eagerly, with a one-time warning naming the guard.
* **randomness**: dropout draws its mask inside its operation, so a replay draws fresh numbers
  from the same generator in the same order as eager: compiled and eager runs are bit-identical.
* **schedules** keep working: the replay calls ``opt.step()``, which reads the learning rate.

What a plan cannot see, it cannot replay: Python that runs between operations is frozen at the
trace (an array computed with NumPy inside the step becomes a constant of the plan, as in
``torch.jit.trace`` and ``jax.jit``; pass it as an argument instead). Where the trace sees
something it cannot replay (an in-place write to a tensor, ``opt.step(closure)``, a returned
Python number), the step runs eagerly, with a warning naming it. A replay returns fresh
tensors holding copies of the returned values, without a graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from ..autograd.trace import Trace
from .plan import Plan
from .recorder import Recorder, Value

__all__ = ["CompiledStep", "compile"]


def compile(fn: Callable[..., Any], max_plans: int = 4) -> CompiledStep:
    """Trace ``fn`` at its first call and replay the recorded plan at the next ones."""
    if not callable(fn):
        raise TypeError(f"nb.compile needs a callable step, got {type(fn).__name__}")
    if int(max_plans) < 1:
        raise ValueError(f"nb.compile: max_plans must be at least 1, got {max_plans}")
    return CompiledStep(fn, int(max_plans))


class CompiledStep:
    """A step function with its plans; calling it replays the plan its arguments match."""

    def __init__(self, fn, max_plans: int = 4):
        self.fn = fn
        self.max_plans = max_plans
        self.plans: list[Plan] = []  # most recently used first
        self.retraces: list[str] = []  # why each plan after the first was traced
        self.eager_reason: str | None = None  # set: every call runs fn eagerly
        self.replays = 0

    @property
    def plan(self) -> Plan | None:
        """The plan the last call used (None before the first call, or when running eagerly)."""
        return self.plans[0] if self.plans and self.eager_reason is None else None

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError("a compiled step takes positional arguments only")
        if self.eager_reason is not None:
            return self.fn(*_as_tensors(args))
        reason = None
        for i, plan in enumerate(self.plans):
            why = plan.mismatch(args)
            if why is None:
                if i:
                    self.plans.insert(0, self.plans.pop(i))
                self.replays += 1
                return _rebuild(plan.structure, plan(*args))
            reason = reason or why
        if reason is not None and len(self.plans) >= self.max_plans:
            self._run_eagerly(f"{reason}, and {self.max_plans} plans are kept already")
            return self.fn(*_as_tensors(args))
        if reason is not None:
            self.retraces.append(reason)
        return self._trace(args)

    def _trace(self, args):
        recorder = Recorder()
        tensors = _as_tensors(args)
        for i, t in enumerate(tensors):
            if isinstance(t, Tensor):
                if t._requires_grad:
                    recorder.unsupported(f"argument {i} requires grad (make it a parameter)")
                recorder.input(t, i)
        if Trace.recorder is not None:
            raise RuntimeError("nb.compile: a compiled step cannot be traced inside another trace")
        Trace.recorder = recorder
        try:
            result = self.fn(*tensors)
        finally:
            Trace.recorder = None
        outputs: list[Value] = []
        structure = _flatten(result, recorder, outputs)
        if recorder.problems:
            self._run_eagerly(recorder.problems[0])
            return result
        self.plans.insert(0, Plan(recorder, args, outputs, structure))
        return result

    def _run_eagerly(self, reason: str) -> None:
        self.eager_reason = reason
        self.plans.clear()
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        warnings.warn(f"nb.compile: {name} runs eagerly: {reason}", RuntimeWarning, stacklevel=3)


def _as_tensors(args) -> list:
    """Arrays become Tensors (sharing memory, not requiring grad), as the step sees them."""
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(Tensor._make(a))
        elif isinstance(a, Tensor):
            t = Tensor._make(a.data)
            t._requires_grad = a._requires_grad
            out.append(t)
        else:
            out.append(a)
    return out


def _flatten(result, recorder: Recorder, outputs: list):
    """The returned structure with each Tensor replaced by its position in ``outputs``."""
    if result is None:
        return None
    if isinstance(result, Tensor):
        value = recorder.by_tensor.get(id(result)) or recorder.by_array.get(id(result.data))
        if value is None:
            value = recorder.ref(result)
        outputs.append(value)
        return len(outputs) - 1
    if isinstance(result, (tuple, list)):
        return type(result)(_flatten(r, recorder, outputs) for r in result)
    recorder.unsupported(
        f"it returns a {type(result).__name__}, which a replay could not recompute "
        "(return tensors: e.g. the loss, not loss.item())"
    )
    return None


def _rebuild(structure, arrays):
    if structure is None:
        return None
    if isinstance(structure, int):
        return Tensor._make(np.array(arrays[structure]))
    return type(structure)(_rebuild(s, arrays) for s in structure)
