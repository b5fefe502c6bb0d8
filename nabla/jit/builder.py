"""From a recorded step to a plan: straight-line Python over preallocated buffers.

The builder walks the recorder's events in order and writes, for each, a few lines of code:

* an operation with a *lowering* (:mod:`nabla.jit.lowering`) becomes NumPy calls that write
  into buffers (``np.matmul(x0, p0.data.T, out=B1)``): no allocation;
* any other operation calls its own ``forward`` / ``backward`` on arrays (no Tensor, no graph),
  exactly the code eager mode runs, so every op works, at the price of its temporaries;
* ``backward`` becomes the engine's loop unrolled: each node's vector-Jacobian product in the
  recorded order, gradients summed per value, the first gradient of a parameter written into
  the optimizer's flat buffer (as :func:`nabla.autograd.engine.grad_slot` arranges in eager);
* an optimizer call is the same call (schedules are read at every replay).

Buffers are first *virtual*, one per array a lowering writes; once every line is written, each
virtual buffer's life runs from its first write to its last read (an array an operation's
``forward`` may view or save keeps the buffers it came from alive too), and buffers of the same
shape and dtype whose lives do not overlap share one real array.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .. import kernels
from ..autograd.broadcast import sum_to
from ..autograd.engine import _accumulate_leaf, grad_slot
from .recorder import BackwardEvent, CallEvent, OpEvent, Recorder, Value

TOKEN = re.compile(r"@(\d+)@")


@dataclass(eq=False)
class Instr:
    phase: str  # "forward", "backward", "call", "output"
    label: str
    lines: list
    reads: set = field(default_factory=set)  # virtual buffers read
    writes: set = field(default_factory=set)  # virtual buffers written
    lowered: bool = True  # False: runs an operation's own code, which allocates


def release(ctx) -> None:
    """Drop the arrays an operation's forward saved on ``ctx``, keeping what the plan set: the
    convolution's scratch arrays (nabla.ops.conv_buffers) return to their pool only when nothing
    else refers to them, as in eager mode, where a node is freed once backward has used it."""
    needs, inputs = ctx.needs_input_grad, ctx.inputs
    ctx.__dict__.clear()
    ctx.needs_input_grad, ctx.inputs = needs, inputs


class Builder:
    def __init__(self, recorder: Recorder, lowerings: dict):
        self.recorder = recorder
        self.lowerings = lowerings
        self.kernels = kernels.compiled()  # a guard of the plan: lowerings may choose by it
        self.instrs: list[Instr] = []
        self.namespace: dict = {
            "np": np,
            "asarray": np.asarray,
            "sum_to": sum_to,
            "leaf": _accumulate_leaf,
            "slot": grad_slot,
            "release": release,
        }
        self.virtual: list[tuple] = []  # (shape, dtype) per virtual buffer
        self.expr: dict = {}  # Value -> the expression that reads it
        self.aliases: dict = {}  # expression -> virtual buffers it may view
        self.lowered: dict = {}  # OpEvent -> its lowering, when it has one
        self.grad_of: dict = {}  # Value -> name of the local holding its pending gradient
        self.counts: dict = {}  # Value -> how many gradient contributions it receives
        self.scalars: set = set()  # values the program holds as Python floats (jit/scalars.py)
        for value in recorder.values:
            if value.kind == "input":
                self.expr[value] = value.name
            elif value.kind == "external":
                self.namespace[value.name] = value.tensor
                self.expr[value] = f"{value.name}.data"
            elif value.kind == "constant":
                self.namespace[value.name] = value.array
                self.expr[value] = value.name
            self.aliases.setdefault(self.expr.get(value, ""), set())

    # --- helpers for lowerings ---------------------------------------------------------------

    def buffer(self, shape, dtype) -> str:
        """A new virtual buffer; its token is replaced by a real buffer's name at the end."""
        self.virtual.append((tuple(shape), np.dtype(dtype)))
        return f"@{len(self.virtual) - 1}@"

    def bind(self, name: str, obj) -> str:
        self.namespace[name] = obj
        return name

    def reads_of(self, *exprs) -> set:
        out = set()
        for e in exprs:
            out |= self.aliases.get(e, set())
            out |= {int(m) for m in TOKEN.findall(e)}
        return out

    def emit(self, phase, label, lines, reads=(), writes=(), lowered=True) -> None:
        writes = {int(m) for w in writes if w for m in TOKEN.findall(w)}
        self.instrs.append(Instr(phase, label, list(lines), set(reads), writes, lowered))

    def op_name(self, cls) -> str:
        """The name the program calls an operation's class by (its own, unless taken)."""
        name = cls.__name__
        while self.namespace.setdefault(name, cls) is not cls:
            name += "_"
        return name

    def literal(self, obj) -> str:
        if obj is None or isinstance(obj, (bool, int, str)) or type(obj) is float:
            return repr(obj)
        return self.bind(f"k{len(self.namespace)}", obj)

    # --- the program --------------------------------------------------------------------------

    def build(self, outputs) -> tuple[str, dict]:
        self._count_contributions()
        for event in self.recorder.events:
            if isinstance(event, OpEvent):
                self._forward(event)
            elif isinstance(event, BackwardEvent):
                self._backward(event)
            elif isinstance(event, CallEvent):
                self._call(event)
        results = [self.expr[v] for v in outputs]
        self.emit(
            "output",
            "copies of the returned tensors",
            [f"return ({', '.join(results)},)"],
            reads=self.reads_of(*results),
        )
        return self._assign_buffers()

    def _count_contributions(self) -> None:
        for event in self.recorder.events:
            if isinstance(event, BackwardEvent):
                for op in event.order:
                    for value, need in zip(op.inputs, op.needs):
                        if need and isinstance(value, Value) and value.kind == "op":
                            self.counts[value] = self.counts.get(value, 0) + 1

    def _forward(self, event: OpEvent) -> None:
        lowering = self.lowerings.get(event.cls)
        lowered = lowering(self, event) if lowering is not None else None
        if lowered is not None:
            self.lowered[event] = lowered
            out = lowered.forward()
            self.expr[event.out] = out
            self.aliases[out] = self.reads_of(out)
            return
        # Any other operation: its own forward on arrays, with a context object of its own.
        i = event.index
        ctx = object.__new__(event.cls)
        ctx.needs_input_grad = list(event.needs)
        ctx.inputs = (None,) * len(event.inputs)  # no grad_slot: gradients go through leaf()
        self.bind(f"ctx{i}", ctx)
        op = self.op_name(event.cls)
        args = [self.expr[a] if isinstance(a, Value) else self.literal(a) for a in event.inputs]
        if event.options:
            args.append(f"**{self.bind(f'O{i}', event.options)}")
        name = f"v{i}"
        self.expr[event.out] = name
        reads = self.reads_of(*args)
        self.aliases[name] = reads  # the output may view any input (reshape, transpose, ...)
        lines = [f"{name} = asarray({op}.forward(ctx{i}, {', '.join(args)}))"]
        if True not in event.needs:  # no backward will read what forward saved: drop it now
            lines.append(f"release(ctx{i})")
        self.emit("forward", event.cls.__name__, lines, reads=reads, lowered=False)

    def _backward(self, event: BackwardEvent) -> None:
        root = event.root
        if event.grad is None and root in self.scalars:
            seed = "1.0"
        elif event.grad is None:
            ones = np.ones(root.shape, root.dtype)
            ones.flags.writeable = False  # a backward must never write into its gradient
            seed = self.bind(f"ONE{event.root.name}", ones)
        else:
            seed = self.expr[event.grad]
        if not event.order:  # backward on a leaf
            self.emit("backward", "leaf", [f"leaf({root.name}, {seed})"], self.reads_of(seed))
            return
        for op in event.order:
            self.grad_of[op.out] = f"g{op.index}"
        self.emit("backward", "pending gradients", [f"g{op.index} = None" for op in event.order])
        self.emit("backward", "d root / d root", [f"g{event.order[0].index} = {seed}"])
        self.aliases[f"g{event.order[0].index}"] = self.reads_of(seed)
        for op in event.order:
            g = f"g{op.index}"
            lowered = self.lowered.get(op)
            if lowered is not None:
                lowered.backward(g)
            else:
                self._generic_backward(op, g)

    def _generic_backward(self, op: OpEvent, g: str) -> None:
        i = op.index
        lines = [f"if {g} is not None:", f"    gs = {self.op_name(op.cls)}.backward(ctx{i}, {g})"]
        lines.append("    gs = gs if gs.__class__ is tuple else (gs,)")
        lines.append(f"release(ctx{i})")  # what forward saved, as eager frees a used node
        saved = [self.expr[a] for a in op.inputs if isinstance(a, Value)]
        reads = self.reads_of(g, self.expr[op.out], *saved)  # ctx may hold any of them
        self.emit("backward", f"{op.cls.__name__} backward", lines, reads, lowered=False)
        for k, (value, need) in enumerate(zip(op.inputs, op.needs)):
            if not need or not isinstance(value, Value):
                continue
            shape, dtype = self.bind(f"S{i}_{k}", value.shape), self.bind(f"D{i}_{k}", value.dtype)
            lines = [
                f"if {g} is not None and gs[{k}] is not None:",
                f"    t = gs[{k}]",
                f"    t = t if t.shape == {shape} else sum_to(t, {shape})",
                f"    t = t if t.dtype == {dtype} else t.astype({dtype})",
            ]
            self.aliases["t"] = reads
            self.contribute(value, "t", lines, indent="    ", lowered=False)

    def contribute(self, value: Value, expr: str, lines=(), indent="", lowered=True) -> None:
        """Add the array ``expr`` to the gradient of ``value`` (emitting ``lines`` first)."""
        lines = list(lines)
        reads = self.reads_of(expr)
        writes = set()
        if value.kind == "external":
            lines.append(f"{indent}leaf({value.name}, {expr})")
        else:
            g = self.grad_of[value]
            if self.counts.get(value, 0) > 1 and value in self.scalars:  # floats: g + t
                lines.append(f"{indent}{g} = {expr} if {g} is None else {g} + {expr}")
            elif self.counts.get(value, 0) > 1:  # summed: into an array of its own after the first
                # The sum's memory layout must be eager's (``g + t`` follows its operands'
                # layout, and later reductions sum in memory order): the first replay lets NumPy
                # allocate it, later replays write into that same array.
                store = self.bind("SUMS", self.namespace.get("SUMS", {}))
                key = len(self.namespace["SUMS"])
                self.namespace["SUMS"][key] = None
                lines += [
                    f"{indent}if {g} is None:",
                    f"{indent}    {g} = {expr}",
                    f"{indent}elif {store}[{key}] is None:",
                    f"{indent}    {g} = {store}[{key}] = asarray(np.add({g}, {expr}))",
                    f"{indent}else:",
                    f"{indent}    {g} = np.add({g}, {expr}, out={store}[{key}])",
                ]
                reads |= self.reads_of(g)
            else:
                lines.append(f"{indent}{g} = {expr}")
            self.aliases[g] = self.aliases.get(g, set()) | reads
        self.emit("backward", f"gradient of {value.name}", lines, reads, writes, lowered)

    def leaf_product(self, value: Value, fill, reads: set, label: str) -> None:
        """A parameter's gradient that a lowering computes with ``fill(out)``: written straight
        into the optimizer's flat buffer when that is where its first gradient goes (eager's
        ``grad_slot``); otherwise (gradients accumulating over calls, a tensor outside any
        optimizer) computed afresh and accumulated as eager does."""
        shape = self.bind(f"S{value.name}", value.shape)
        dtype = self.bind(f"D{value.name}", value.dtype)
        p = value.name
        lines = [
            f"s = slot({p}, {shape}, {dtype})",
            "if s is not None:",
            f"    {fill('s')}",
            f"    {p}.grad = s",
            "else:",
            f"    leaf({p}, {fill(None)})",
        ]
        self.emit("backward", label, lines, reads)

    def _call(self, event: CallEvent) -> None:
        owner = event.method.__self__
        names = self.namespace.setdefault("_owners", {})
        kind = "opt" if hasattr(owner, "param_groups") else "module"
        count = sum(n.startswith(kind) for n in names.values())
        name = names.setdefault(id(owner), f"{kind}{count}")
        self.bind(name, owner)
        args = ", ".join(self.literal(a) for a in event.args)
        method = event.method.__name__
        self.emit("call", f"{type(owner).__name__}.{method}", [f"{name}.{method}({args})"])

    # --- buffers ------------------------------------------------------------------------------

    def _assign_buffers(self) -> tuple[str, dict]:
        first, last = {}, {}
        for i, instr in enumerate(self.instrs):
            for b in instr.writes | instr.reads:
                first.setdefault(b, i)
                last[b] = i
        free: dict = {}  # (shape, dtype) -> [(free after instruction, real name)]
        real: dict = {}
        self.real_buffers: list = []
        self.reused = 0
        for b in sorted(first, key=first.get):
            key = self.virtual[b]
            candidates = [c for c in free.get(key, []) if c[0] < first[b]]
            if candidates:
                choice = candidates[0]
                free[key].remove(choice)
                real[b] = choice[1]
                self.reused += 1
            else:
                real[b] = f"buf{len(self.real_buffers)}"
                self.real_buffers.append(np.empty(key[0], key[1]))
                self.namespace[real[b]] = self.real_buffers[-1]
            free.setdefault(key, []).append((last[b], real[b]))
            free[key].sort()
        self.buffer_names = real
        for instr in self.instrs:
            instr.lines = [TOKEN.sub(lambda m: real[int(m.group(1))], line) for line in instr.lines]
        return self.source(), self.namespace

    def source(self) -> str:
        params = ", ".join(v.name for v in self.recorder.values if v.kind == "input")
        body = []
        phase = None
        for i, instr in enumerate(self.instrs):
            if instr.phase != phase:
                body.append(f"    # --- {instr.phase}")
                phase = instr.phase
            note = "" if instr.lowered else "  (the operation's own code: allocates)"
            body.append(f"    # [{i}] {instr.label}{note}")
            body += ["    " + line for line in instr.lines]
        return f"def replay({params}):\n" + "\n".join(body) + "\n"
