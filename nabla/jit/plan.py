"""A plan: one traced step, its guards, and the straight-line program that replays it."""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd.grad_mode import _GradMode
from ..autograd.tensor import Tensor
from .builder import Builder
from .lowering import LOWERINGS
from .recorder import Recorder, Value


def describe_argument(a) -> tuple:
    """What a guard compares an argument by: shape and dtype for arrays, value for the rest."""
    if isinstance(a, Tensor):
        return ("array", a.data.shape, a.data.dtype)
    if isinstance(a, np.ndarray):
        return ("array", a.shape, a.dtype)
    return ("value", type(a), a)


class Plan:
    """The replayable form of one traced call: ``str(plan)`` prints it, ``plan(*arrays)`` runs
    it."""

    def __init__(self, recorder: Recorder, args: tuple, outputs: list, structure):
        self.arguments = [describe_argument(a) for a in args]
        self.grad_mode = _GradMode.enabled
        self.kernels = kernels.compiled()
        self.modules = _modules_and_children(recorder.modules.values())
        self.names = _parameter_names(self.modules, recorder.optimizers.values())
        self.externals = [
            (v.tensor, v.tensor.data, v.tensor._requires_grad, v)
            for v in recorder.values
            if v.kind == "external"
        ]
        self.optimizers = [(opt, _groups(opt)) for opt in recorder.optimizers.values()]
        self.structure = structure  # how to rebuild fn's return value from the flat outputs
        self.outputs = outputs
        builder = Builder(recorder, LOWERINGS)
        source, namespace = builder.build(outputs)
        self.source = source
        self.instructions = builder.instrs
        self.buffers = builder.real_buffers
        self.reused = builder.reused
        self.virtual = len(builder.virtual)
        self.values = recorder.values
        exec(compile(source, "<nabla.jit plan>", "exec"), namespace)
        self.replay = namespace["replay"]

    def mismatch(self, args: tuple) -> str | None:
        """Why this plan cannot replay a call with ``args`` (None if it can)."""
        if len(args) != len(self.arguments):
            traced = len(self.arguments)
            return f"the step got {len(args)} arguments, the plan was traced with {traced}"
        for i, (a, traced) in enumerate(zip(args, self.arguments)):
            now = describe_argument(a)
            if now[0] != traced[0]:
                return f"argument {i} is {type(a).__name__}, the plan was traced with {traced[1]}"
            if now[0] == "array":
                if now[1] != traced[1]:
                    return f"argument {i} has shape {now[1]}, the plan was traced for {traced[1]}"
                if now[2] != traced[2]:
                    return f"argument {i} has dtype {now[2]}, the plan was traced for {traced[2]}"
            elif now[1] is not traced[1] or now[2] != traced[2]:
                return f"argument {i} is {a!r}, the plan was traced with {traced[2]!r}"
        if _GradMode.enabled != self.grad_mode:
            now, then = ("on" if flag else "off" for flag in (_GradMode.enabled, self.grad_mode))
            return f"grad mode is {now}, the plan was traced with it {then}"
        if kernels.compiled() != self.kernels:
            return "the compiled kernels were switched " + ("on" if kernels.compiled() else "off")
        for module, training in self.modules:
            if module.training != training:
                mode = "training" if module.training else "eval"
                return (
                    f"{type(module).__name__} is in {mode} mode, the plan was traced in the other"
                )
        for tensor, data, requires_grad, value in self.externals:
            if tensor.data is not data:
                return f"{self.label(value)}: its data was replaced (load_state_dict, .data = ...)"
            if tensor._requires_grad != requires_grad:
                return f"{self.label(value)}: requires_grad changed to {tensor._requires_grad}"
        for opt, groups in self.optimizers:
            if _groups(opt) != groups:
                return f"{type(opt).__name__}'s parameter groups changed"
        return None

    def __call__(self, *args):
        arrays = [a.data if isinstance(a, Tensor) else a for a in args if not _is_value(a)]
        return self.replay(*arrays)

    def label(self, value: Value) -> str:
        name = self.names.get(id(value.tensor))
        return (
            f"{value.name} ({name})"
            if name
            else f"{value.name} (a tensor {value.shape}, not a parameter)"
        )

    # --- the printout -------------------------------------------------------------------------

    def __str__(self) -> str:
        allocating = sorted({i.label for i in self.instructions if not i.lowered})
        nbytes = sum(b.nbytes for b in self.buffers)
        lines = [
            f"plan: {len(self.instructions)} instructions; {len(self.buffers)} buffers "
            f"({_size(nbytes)}) for {self.virtual} arrays ({self.reused} reuse a buffer "
            "whose last reader has run)",
            "allocation-free"
            if not allocating
            else "runs its own code (allocates): " + ", ".join(allocating),
            "values:",
        ]
        for v in self.values:
            if v.kind == "input":
                lines.append(f"  {v.name:5} input    {v.shape} {v.dtype}  ({v.label})")
            elif v.kind == "external":
                lines.append(
                    f"  {v.name:5} tensor   {v.shape} {v.dtype}  {self.label(v).split(' ', 1)[1]}"
                )
            elif v.kind == "constant":
                lines.append(f"  {v.name:5} constant {np.shape(v.array)}  (frozen at the trace)")
        lines.append(
            "guards: argument shapes and dtypes, grad mode, kernels on/off, the training flag "
            f"of {len(self.modules)} module(s), the data and requires_grad of "
            f"{len(self.externals)} tensor(s), the parameter groups of {len(self.optimizers)} "
            "optimizer(s)"
        )
        return "\n".join(lines) + "\n" + self.source


def _modules_and_children(traced) -> list:
    """(module, training) for every traced module and every module inside one: a container may
    run a child's computation without calling it (Sequential fuses Linear + ReLU)."""
    seen, out = set(), []
    for module, _ in traced:
        for _, m in module.named_modules():
            if id(m) not in seen:
                seen.add(id(m))
                out.append((m, m.training))
    return out


def _is_value(a) -> bool:
    return not isinstance(a, (Tensor, np.ndarray))


def _groups(opt) -> tuple:
    return tuple(len(g["params"]) for g in opt.param_groups)


def _parameter_names(modules, optimizers) -> dict:
    """id(tensor) -> its name: in the outermost traced module ("0.weight"), as state_dict says,
    else in an optimizer ("optimizer parameter 0.0")."""
    names = {}
    if modules:
        root = modules[0][0]
        for name, p in root.named_parameters():
            names.setdefault(id(p), name)
        for name, buf in root.named_buffers():
            names.setdefault(id(buf), name)
    for opt in optimizers:
        for group, group_names in zip(opt.param_groups, opt._names):
            for p, name in zip(group["params"], group_names):
                names.setdefault(id(p), f"optimizer parameter {name}")
    return names


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"
