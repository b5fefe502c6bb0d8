"""The optimizer base class: parameter groups in flat buffers, one pass per update.

Each group's trainable parameters live in one contiguous vector (:mod:`.flat`). A step computes
the group's hyperparameters (numbers, or schedules: any callable ``step -> value``, called with
the number of updates already made, 0 for the first) and updates the whole group in one call:

* ``kernel``: the compiled kernel (:mod:`nabla.kernels.updates`), one multithreaded pass over
  the buffers; the default.
* ``reference``: the same update written as the algorithm's math in NumPy, in place. It is what
  the kernel is tested against, and what runs under ``nabla.kernels.use_reference()``.

``opt.lr`` is the learning rate the last step used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from .. import kernels, memory
from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..autograd.trace import Trace
from .flat import FlatGroup, Stretch
from .registry import Preset, register
from .saving import load_state_dict, problems, state_dict, value_at

# the help of hyperparameters that several optimizers share
DECAY = {
    "weight_decay": "weight decay λ: g + λθ (L2), or θ(1 - αλ) with decoupled_weight_decay",
    "decoupled_weight_decay": "decay the weights directly (AdamW's weight decay) instead of L2",
}
EPS = {
    "eps": "ε added to the denominator's square root, against division by zero",
    "eps_inside_sqrt": "add ε under the square root, sqrt(r + ε) (Keras), not after it",
}

_Loss = TypeVar("_Loss")


class Optimizer:
    """Base class. Subclasses define ``defaults``, ``reference`` and ``kernel`` (see the module
    docstring); every hyperparameter a subclass reads must be in ``defaults``.

    ``params`` is an iterable of tensors that require grad, of ``(name, tensor)`` pairs (e.g.
    ``model.named_parameters()``, which names the state_dict entries), or of dicts
    ``{"params": [...], **hyperparameters}`` for groups with their own settings.

    Weight decay, for every optimizer that has ``weight_decay``: coupled L2 by default (g is
    replaced by g + weight_decay theta before the algorithm runs: PyTorch's meaning), or decoupled
    with ``decoupled_weight_decay=True`` (theta <- (1 - lr weight_decay) theta first, then the
    algorithm on the loss gradient alone: AdamW's, and Keras' meaning for every optimizer).
    """

    defaults: dict = {}
    # PyTorch's names for hyperparameters that nabla names otherwise, e.g. {"alpha": "beta"}
    pytorch_aliases: dict = {}
    # By name (nabla/optim/registry.py): ``nabla train --optimizer NAME``, its config table and
    # flags (one help line per hyperparameter but lr), the lab's presets. A class without a name
    # (a base, an alias such as RMSprop) is not registered.
    name: str = ""
    descriptions: dict[str, str] = {}
    presets: dict[str, Preset]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            register(cls)

    def __init__(
        self,
        params: Iterable[Tensor | tuple[str, Tensor] | dict[str, Any]],
        lr: float | Callable[[int], float] | None = None,
        **hyperparameters: Any,
    ):
        if lr is not None:  # the learning rate may come second by position, as in PyTorch
            hyperparameters["lr"] = lr
        hyperparameters = self._own_names(hyperparameters)
        unknown = set(hyperparameters) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)}")
        self.defaults = {**self.defaults, **hyperparameters}
        memory.keep_freed_memory()  # a training loop: reuse large temporaries (nabla/memory.py)
        self.param_groups: list[dict] = []
        self._names: list[list[str]] = []
        self._packs: list[FlatGroup] = []
        self._stash: dict[str, dict] = {}  # state of frozen parameters, by name
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:  # group dicts, when the first entry is one
            self.add_param_group(group)  # type: ignore[arg-type]
        self.iterations = 0  # updates made so far
        self.lr = value_at(self.param_groups[0]["lr"], 0)

    # --- parameter groups -------------------------------------------------------------------------

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], **hyperparameters}``; missing settings take the
        defaults."""
        if "params" not in group:
            raise ValueError("a parameter group needs a 'params' entry")
        entries = (
            list(group["params"]) if not isinstance(group["params"], Tensor) else [group["params"]]
        )
        index = len(self.param_groups)
        names, params = [], []
        for i, entry in enumerate(entries):
            name, p = entry if isinstance(entry, tuple) else (f"{index}.{i}", entry)
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer parameters must be Tensors, got {type(p).__name__}")
            if p.data.dtype.kind != "f":
                raise TypeError(
                    f"parameter {name} has dtype {p.data.dtype}; only float tensors can be "
                    "optimized"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"parameter {name} is not a leaf tensor (it was computed); pass the leaf"
                )
            names.append(name)
            params.append(p)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears more than once across the optimizer's groups")
        given = self._own_names({k: v for k, v in group.items() if k != "params"})
        settings = {**self.defaults, **given}
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)}")
        self.validate(settings)
        self.param_groups.append({"params": params, **settings})
        self._names.append(names)
        self._packs.append(FlatGroup(params, names, self.initial_state(settings)))

    def _own_names(self, settings: dict) -> dict:
        """``settings`` with PyTorch's names of hyperparameters (``pytorch_aliases``) replaced by
        ours; a value given under both names must agree."""
        settings = dict(settings)
        for theirs, ours in self.pytorch_aliases.items():
            if theirs in settings:
                value = settings.pop(theirs)
                if ours in settings and settings[ours] != value:
                    raise TypeError(
                        f"{type(self).__name__}: {theirs}={value!r} (PyTorch's name for {ours}) "
                        f"and {ours}={settings[ours]!r} disagree; give one of them"
                    )
                settings[ours] = value
        return settings

    @classmethod
    def validate(cls, h: dict) -> None:
        """Check a group's hyperparameters (subclasses extend it); schedules are checked at
        step 0."""
        values = {k: value_at(v, 0) for k, v in h.items()}
        for key in ("lr", "weight_decay", "eps"):
            if key in values and not values[key] >= 0:
                raise ValueError(f"{cls.__name__}: {key} must be >= 0, got {values[key]}")
        for key in ("decoupled_weight_decay", "eps_inside_sqrt"):
            if key in h and not isinstance(h[key], (bool, np.bool_)):
                raise ValueError(f"{cls.__name__}: {key} must be True or False, got {h[key]!r}")

    def _pack(self, i: int) -> FlatGroup:
        """The group's pack, rebuilt if parameters were frozen, unfrozen or replaced."""
        pack, params = self._packs[i], self.param_groups[i]["params"]
        if not pack.in_sync(params):
            # Frozen parameters leave the flat buffer but keep their state (momentum, moments)
            # in a stash, so unfreezing one resumes where it stopped, as in PyTorch.
            self._stash.update(pack.param_state())
            pack = FlatGroup(params, self._names[i], self.initial_state(self.param_groups[i]))
            pack.load_param_state({n: self._stash.pop(n) for n in pack.names if n in self._stash})
            self._packs[i] = pack
        pack.adopt_grads()
        return pack

    # --- the update -------------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every gradient. As in PyTorch, ``.grad`` becomes None; the next backward writes
        each first gradient straight into the flat gradient buffer (no fill, no ``+=`` pass).
        ``set_to_none=False`` fills the buffer with zeros instead (``.grad`` stays a view)."""
        if Trace.recorder is not None:  # nabla.compile replays this call
            Trace.recorder.call(self.zero_grad, set_to_none)
        for i in range(len(self._packs)):
            if set_to_none:
                self._pack(i).clear_grads()
            else:
                self._pack(i).grad.fill(0)

    def step(self, closure: Callable[[], _Loss] | None = None) -> _Loss | None:
        """Apply one update to every group and advance the step counter.

        ``closure``, if given, re-evaluates the model and returns the loss (it is called with
        gradients enabled); its loss is returned.
        """
        if Trace.recorder is not None:  # nabla.compile replays this call (a closure it cannot)
            Trace.recorder.call(self.step, closure)
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        t = self.iterations
        compiled = kernels.compiled()
        for i, group in enumerate(self.param_groups):
            pack = self._pack(i)
            h = {k: value_at(v, t) for k, v in group.items() if k != "params"}
            if i == 0:
                self.lr = h["lr"]
            if pack.theta.size == 0:
                continue
            weight_decay = h.get("weight_decay", 0.0)
            if h.get("decoupled_weight_decay"):
                weight_decay, decay = 0.0, 1.0 - h["lr"] * weight_decay
            else:
                decay = 1.0
            pack.steps += 1
            for start, stop, t_run in pack.step_runs():
                theta, g = pack.theta[start:stop], pack.grad[start:stop]
                state = pack.stretch(start, stop)
                if compiled:
                    self.kernel(theta, g, state, h, t_run, weight_decay, decay)
                else:
                    self.reference_step(theta, g, state, h, t_run, weight_decay, decay)
            for p in pack.params:  # written in place: a graph that saved them must not backprop
                p._vc[0] += 1
        self.iterations += 1
        return loss

    def reference_step(
        self,
        theta: np.ndarray,
        g: np.ndarray,
        state: Stretch,
        h: dict,
        t: int,
        weight_decay: float,
        decay: float,
    ) -> None:
        """The NumPy update: weight decay, then the algorithm (``reference``) on the gradient."""
        if decay != 1.0:  # decoupled: theta <- (1 - lr wd) theta
            theta *= decay
        if weight_decay:  # coupled L2: the gradient of loss + wd/2 ||theta||^2 is g + wd theta
            g = theta * weight_decay + g
        self.reference(theta, g, state, h, t)

    def reference(self, theta: np.ndarray, g: np.ndarray, state: Stretch, h: dict, t: int) -> None:
        """Update ``theta`` in place from its gradient ``g``, in NumPy, as the algorithm's math.
        ``t`` counts this stretch's updates from 1; ``state.get(name, fill)`` is a state buffer."""
        raise NotImplementedError

    def kernel(
        self,
        theta: np.ndarray,
        g: np.ndarray,
        state: Stretch,
        h: dict,
        t: int,
        weight_decay: float,
        decay: float,
    ) -> None:
        """The same update as ``reference_step``, in one compiled pass. Until a subclass writes
        its kernel (:mod:`nabla.kernels.updates`), the NumPy reference runs on both paths."""
        self.reference_step(theta, g, state, h, t, weight_decay, decay)

    # --- statistics -------------------------------------------------------------------------------

    def grad_norm(self) -> float:
        """The L2 norm of all gradients together: one dot product per flat gradient buffer."""
        total = 0.0
        for i in range(len(self._packs)):
            g = self._pack(i).grad
            total += float(np.dot(g, g))
        return math.sqrt(total)

    def parameter_vectors(self) -> list:
        """The flat parameter buffer of each group (views: ``step`` updates them in place)."""
        return [self._pack(i).theta for i in range(len(self._packs))]

    def gradient_vectors(self) -> list:
        """The flat gradient buffer of each group (views: every parameter's ``.grad`` lives in
        one of them, so one collective per group reaches every gradient)."""
        return [self._pack(i).grad for i in range(len(self._packs))]

    # --- gradient clipping ------------------------------------------------------------------------

    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0) -> float:
        """Scale all gradients so that their joint norm is at most ``max_norm``; returns the norm
        before."""
        if Trace.recorder is not None:  # nabla.compile replays this call
            Trace.recorder.call(self.clip_grad_norm_, max_norm, norm_type)
        if not norm_type > 0:
            raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type}")
        grads = [self._pack(i).grad for i in range(len(self._packs))]
        if norm_type == math.inf:
            total = max((float(np.abs(g).max()) for g in grads if g.size), default=0.0)
        else:
            total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
        if total > max_norm:
            scale = max_norm / (total + 1e-6)  # PyTorch's guard against division by zero
            for g in grads:
                g *= scale
        return total

    def clip_grad_value_(self, clip_value: float) -> None:
        """Clip every gradient element to [-clip_value, clip_value]."""
        if Trace.recorder is not None:  # nabla.compile replays this call
            Trace.recorder.call(self.clip_grad_value_, clip_value)
        for i in range(len(self._packs)):
            g = self._pack(i).grad
            np.clip(g, -clip_value, clip_value, out=g)

    # --- saving and resuming ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume: step count, hyperparameters (schedules as configs) and the
        algorithm's buffers per parameter name."""
        return state_dict(self)

    def load_state_dict(self, saved: dict) -> None:
        """Restore a state_dict from an optimizer over the same parameters (names and shapes).

        Strict: a state_dict that does not fit (another optimizer's, a misspelt buffer, state
        for a parameter not here, a wrong shape or dtype, other groups) is refused with one
        ValueError naming every problem, and nothing is loaded (see :mod:`.saving`)."""
        load_state_dict(self, saved)

    def buffers(self, h: dict, saved: dict | None = None) -> dict[str, bool]:
        """The state buffers this algorithm keeps per parameter under group settings ``h``
        (numbers or schedules), by name: True for one that every parameter has from its first
        step on, False for one that may be absent. ``load_state_dict`` refuses other names.
        ``saved``: the state_dict being loaded, for algorithms whose buffers depend on it."""
        return {}

    def initial_state(self, h: dict) -> dict[str, float]:
        """The first value of each state buffer under group settings ``h``, where it is not 0
        (AdaGrad's accumulator): a parameter loaded without saved state starts from it."""
        return {}

    def _state_problems(self, saved: Any) -> list[str]:
        """Every way ``saved`` does not fit this optimizer, one line each (empty: it loads)."""
        return problems(self, saved)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in group.items() if k != "params"]
        return "\n".join([*lines, ")"])
