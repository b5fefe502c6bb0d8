"""The recorder: what one eager run of a step did, as a list of events over named values.

While ``nabla.compile`` traces, :class:`nabla.autograd.trace.Trace` points to a
:class:`Recorder`, and the framework reports to it:

* every operation (``Function.apply``): its class, its inputs, its options, its output;
* every ``backward``: the root, its gradient, and the nodes in the order the engine visits them;
* every optimizer ``zero_grad`` / ``step`` (replayed by calling them again);
* every module called (the plan guards on its ``training`` flag);
* anything a plan cannot replay (an in-place write outside the operations, a closure, ...).

Each array the step touches becomes a :class:`Value`: an *input* (an argument of the step), an
*op* output, an *external* tensor (a parameter or buffer, read afresh at every replay), or a
*constant* (an array made outside the operations: it is frozen into the plan, as in
``torch.jit.trace`` and ``jax.jit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autograd.engine import _topological_order
from ..autograd.tensor import Tensor


@dataclass(eq=False)
class Value:
    """One array of the step. ``name`` is what the plan calls it."""

    name: str
    kind: str  # "input", "op", "external" or "constant"
    shape: tuple
    dtype: np.dtype
    tensor: Tensor | None = None  # kind "external": the tensor whose .data a replay reads
    array: object = None  # kind "constant": the frozen array (or number)
    label: str = ""  # a readable name: a parameter's name, "input 0", ...
    contiguous: bool = True  # C-contiguous at the trace (lowerings that write C-order need it)

    def describe(self) -> str:
        return f"{self.name} {self.shape} {self.dtype}"


@dataclass(eq=False)
class OpEvent:
    index: int
    cls: type
    inputs: list  # a Value for each array argument, the object itself for any other argument
    options: dict
    out: Value
    needs: tuple  # which inputs want a gradient (all False when the graph was not recorded)


@dataclass(eq=False)
class BackwardEvent:
    root: Value
    grad: Value | None  # None: d root / d root = 1
    order: list  # OpEvents, in the order the engine runs their backward


@dataclass(eq=False)
class CallEvent:
    method: object  # a bound method: opt.zero_grad, opt.step
    args: tuple


@dataclass(eq=False)
class Recorder:
    events: list = field(default_factory=list)
    values: list = field(default_factory=list)
    modules: dict = field(default_factory=dict)  # id -> (module, training)
    optimizers: dict = field(default_factory=dict)  # id -> optimizer
    problems: list = field(default_factory=list)
    keep: list = field(default_factory=list)  # keeps every traced object alive: ids stay unique
    by_tensor: dict = field(default_factory=dict)
    by_array: dict = field(default_factory=dict)
    by_node: dict = field(default_factory=dict)

    # --- values ------------------------------------------------------------------------------

    def new_value(self, kind: str, data: np.ndarray, **extra) -> Value:
        prefix = {"input": "x", "op": "v", "external": "p", "constant": "k"}[kind]
        count = sum(v.kind == kind for v in self.values)
        value = Value(f"{prefix}{count}", kind, data.shape, data.dtype, **extra)
        value.contiguous = bool(data.flags.c_contiguous)
        self.values.append(value)
        self.by_array[id(data)] = value
        self.keep.append(data)
        return value

    def input(self, tensor: Tensor, position: int) -> None:
        value = self.new_value("input", tensor.data, label=f"argument {position}")
        self.by_tensor[id(tensor)] = value
        self.keep.append(tensor)

    def ref(self, obj):
        """The Value an operation's argument is, or the argument itself if it is no array."""
        if isinstance(obj, Tensor):
            value = self.by_tensor.get(id(obj)) or self.by_array.get(id(obj.data))
            if value is None:
                value = self.new_value("external", obj.data, tensor=obj)
            self.by_tensor[id(obj)] = value
            self.keep.append(obj)
            return value
        if isinstance(obj, np.ndarray):
            value = self.by_array.get(id(obj))
            return value if value is not None else self.new_value("constant", obj, array=obj)
        return obj

    # --- what the framework reports ----------------------------------------------------------

    def op(self, cls, ctx, args, options, out: Tensor) -> None:
        inputs = [self.ref(a) for a in args]
        value = self.new_value("op", out.data)
        self.by_tensor[id(out)] = value
        self.keep += [out, ctx]
        needs = tuple(ctx.needs_input_grad) if out._requires_grad else (False,) * len(args)
        event = OpEvent(len(self.events), cls, inputs, dict(options), value, needs)
        self.by_node[id(ctx)] = event
        self.events.append(event)

    def backward(self, root: Tensor, grad) -> None:
        order = []
        if root._node is not None:
            for node in reversed(_topological_order(root._node)):
                event = self.by_node.get(id(node))
                if event is None:
                    self.unsupported("backward reaches operations computed before the step")
                    return
                if node.retained is not None:
                    self.unsupported("it calls retain_grad() on an intermediate tensor")
                order.append(event)
        if grad is not None and not isinstance(grad, (Tensor, np.ndarray)):
            grad = np.asarray(grad, dtype=root.data.dtype)
        given = None if grad is None else self.ref(grad)
        self.events.append(BackwardEvent(self.ref(root), given, order))

    def call(self, method, *args) -> None:
        if method.__name__ == "step" and args and args[0] is not None:
            self.unsupported("optimizer.step(closure) re-evaluates the model inside the step")
        owner = method.__self__
        if hasattr(owner, "param_groups"):  # an optimizer: the plan guards on its groups
            self.optimizers[id(owner)] = owner
        self.keep.append(owner)
        self.events.append(CallEvent(method, args))

    def module(self, module) -> None:
        self.modules.setdefault(id(module), (module, module.training))

    def unsupported(self, reason: str) -> None:
        self.problems.append(reason)
