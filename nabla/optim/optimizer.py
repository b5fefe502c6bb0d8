"""The optimizer base class: every parameter group lives in one flat buffer.

When an optimizer is built, the trainable parameters of each group are copied into one
contiguous vector theta, and each parameter's ``.data`` and ``.grad`` become views into theta and
into a gradient vector g of the same layout. Backward then writes gradients straight into g,
``zero_grad`` is one ``fill``, and an update is a few in-place NumPy ufuncs over the whole group,
written exactly as the algorithm's math (see ``update`` in each subclass). The same code drives a
million-parameter network and a two-parameter Rosenbrock in the lab.

Hyperparameters (``lr``, ``momentum``, ``weight_decay``, ...) may be numbers or schedules: any
callable ``step -> value``, called with the number of updates already made (0 for the first).
``opt.lr`` is the learning rate the last step used.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor

BLOCK = 1 << 17  # elements per block of an update: 512 KiB of float32, a few fit in L2 (2 MiB)


def _default_threads() -> int:
    """$NABLA_NUM_THREADS if set, else the cores this process may use, capped at 4 (more threads
    than that only contend for memory bandwidth in an update)."""
    if "NABLA_NUM_THREADS" in os.environ:
        return max(1, int(os.environ["NABLA_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None


def set_num_threads(n: int) -> None:
    """Threads that share an optimizer update (default: the cores available, at most 4, or
    ``$NABLA_NUM_THREADS``). NumPy releases the GIL inside ufuncs, so blocks run in parallel;
    every element's update is independent, so the result does not depend on the count."""
    global _threads, _pool
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _threads, _pool = int(n), None


def get_num_threads() -> int:
    return _threads


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="nabla-optim")
    return _pool


class _Block:
    """One cache-sized block of a group's flat buffers, as one ``update`` call sees them."""

    __slots__ = ("pack", "window", "work")

    def __init__(self, pack: _Pack, window: slice, work: dict):
        self.pack, self.window, self.work = pack, window, work

    def buffer(self, name: str, fill: float) -> np.ndarray:
        return self.pack.buffer(name, fill)[self.window]

    def scratch(self, name: str, size: int) -> np.ndarray:
        buf = self.work.get(name)
        if buf is None:
            buf = self.work[name] = np.empty(BLOCK, self.pack.theta.dtype)
        return buf[:size]


class _Pack:
    """The flat buffers of one parameter group (internal)."""

    def __init__(self, params: list, names: list, fills: dict | None = None):
        trainable = [(n, p) for n, p in zip(names, params) if p.requires_grad]
        self.names = [n for n, _ in trainable]
        self.params = [p for _, p in trainable]
        self.flags = tuple(p.requires_grad for p in params)
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) > 1:
            raise TypeError(
                f"a parameter group mixes dtypes {sorted(map(str, dtypes))}; put parameters of "
                "different dtypes in different groups (or convert the model first)"
            )
        dtype = dtypes.pop() if dtypes else np.dtype("float32")
        sizes = [p.data.size for p in self.params]
        bounds = np.cumsum([0, *sizes])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.theta = np.empty(int(bounds[-1]), dtype=dtype)
        self.grad = np.zeros(int(bounds[-1]), dtype=dtype)
        self.data_views, self.grad_views = [], []
        for p, s in zip(self.params, self.slices):
            self.theta[s] = p.data.reshape(-1)
            if p.grad is not None:
                self.grad[s] = np.asarray(p.grad).reshape(-1)
            p.data = self.theta[s].reshape(p.data.shape)
            p.grad = self.grad[s].reshape(p.data.shape)
            self.data_views.append(p.data)
            self.grad_views.append(p.grad)
        self.state: dict[str, np.ndarray] = {}  # flat buffers of the algorithm (momentum, ...)
        self.steps = np.zeros(len(self.params), dtype=np.int64)  # updates made, per parameter
        self.fills = (
            {} if fills is None else fills
        )  # each buffer's initial value (AdaGrad's is not 0)
        self.work: list[dict] = [{} for _ in range(_threads)]  # scratch arrays, one set per thread
        self._lock = threading.Lock()

    def buffer(self, name: str, fill: float) -> np.ndarray:
        """The algorithm's flat buffer ``name``, created filled with ``fill`` on first use."""
        buf = self.state.get(name)
        if buf is None:
            with self._lock:  # update threads may ask for it at once on the first step
                buf = self.state.get(name)
                if buf is None:
                    self.fills[name] = fill
                    buf = self.state[name] = np.full_like(self.theta, fill)
        return buf

    def in_sync(self, params: list) -> bool:
        """Whether every parameter still views this pack (the fast check done every step)."""
        if tuple(p.requires_grad for p in params) != self.flags:
            return False
        for p, data in zip(self.params, self.data_views):
            if p.data is not data:
                return False
        return True

    def adopt_grads(self) -> None:
        """Bring back gradients that were replaced (e.g. set to None) into the flat buffer."""
        for p, s, view in zip(self.params, self.slices, self.grad_views):
            if p.grad is not view:
                if p.grad is None:
                    self.grad[s] = 0
                else:
                    self.grad[s] = np.asarray(p.grad).reshape(-1)
                p.grad = view

    def param_state(self) -> dict:
        """State sliced per parameter name: {name: {buffer: array, "step": count}} (copies)."""
        return {
            name: {
                "step": np.array(step),
                **{key: buf[s].reshape(p.shape).copy() for key, buf in self.state.items()},
            }
            for name, p, s, step in zip(self.names, self.params, self.slices, self.steps)
        }

    def load_param_state(self, per_param: dict) -> None:
        for i, name in enumerate(self.names):
            self.steps[i] = int(per_param.get(name, {}).get("step", 0))
        keys = {k for bufs in per_param.values() for k in bufs if k != "step"}
        for key in keys:
            buf = self.state.setdefault(key, np.full_like(self.theta, self.fills.get(key, 0.0)))
            for name, s in zip(self.names, self.slices):
                if key in per_param.get(name, {}):
                    buf[s] = np.asarray(per_param[name][key]).reshape(-1)

    def step_runs(self) -> list:
        """(start, stop, t): stretches of the flat buffer whose parameters took the same number
        of updates t. One stretch in the usual case; a parameter that was frozen for a while
        counts only the steps it took (Adam's bias correction, as in PyTorch)."""
        runs = []
        for s, t in zip(self.slices, self.steps.tolist()):
            if runs and runs[-1][2] == t and runs[-1][1] == s.start:
                runs[-1] = (runs[-1][0], s.stop, t)
            else:
                runs.append((s.start, s.stop, t))
        return runs


class Optimizer:
    """Base class. Subclasses define ``defaults`` and ``update(theta, g, state, h, t)``.

    ``params`` is an iterable of tensors that require grad, of ``(name, tensor)`` pairs (e.g.
    ``model.named_parameters()``, which names the state_dict entries), or of dicts
    ``{"params": [...], **hyperparameters}`` for groups with their own settings.
    """

    defaults: dict = {}
    #: False for optimizers whose ``weight_decay`` is decoupled (AdamW) and applied in ``update``.
    coupled_weight_decay = True

    def __init__(self, params, **hyperparameters):
        unknown = set(hyperparameters) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)}")
        self.defaults = {**self.defaults, **hyperparameters}
        self.param_groups: list[dict] = []
        self._names: list[list[str]] = []
        self._packs: list[_Pack] = []
        self._stash: dict[str, dict] = {}  # state of frozen parameters, by name
        self._fills: dict[str, float] = {}  # initial value of each state buffer
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)
        self.iterations = 0  # updates made so far
        self.lr = self._value(self.param_groups[0]["lr"], 0)

    # --- parameter groups --------------------------------------------------------------------------

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], **hyperparameters}``; missing settings take the defaults."""
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
                    f"parameter {name} has dtype {p.data.dtype}; only float tensors can be optimized"
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
        settings = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)}")
        self.validate(settings)
        self.param_groups.append({"params": params, **settings})
        self._names.append(names)
        self._packs.append(_Pack(params, names, self._fills))

    def validate(self, h: dict) -> None:
        """Check a group's hyperparameters; subclasses extend it. Schedules are checked at step 0."""
        values = {k: self._value(v, 0) for k, v in h.items()}
        for key in ("lr", "weight_decay", "eps"):
            if key in values and not values[key] >= 0:
                raise ValueError(f"{type(self).__name__}: {key} must be >= 0, got {values[key]}")

    @staticmethod
    def _value(h, step: int):
        return h(step) if callable(h) else h

    def _pack(self, i: int) -> _Pack:
        """The group's pack, rebuilt if parameters were frozen, unfrozen or replaced."""
        pack, params = self._packs[i], self.param_groups[i]["params"]
        if not pack.in_sync(params):
            # Frozen parameters leave the flat buffer but keep their state (momentum, moments)
            # in a stash, so unfreezing one resumes where it stopped, as in PyTorch.
            self._stash.update(pack.param_state())
            pack = _Pack(params, self._names[i], self._fills)
            pack.load_param_state({n: self._stash.pop(n) for n in pack.names if n in self._stash})
            self._packs[i] = pack
        pack.adopt_grads()
        return pack

    # --- the update --------------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every gradient: one fill per group (``set_to_none`` is accepted for PyTorch
        compatibility and ignored: the gradient buffer is kept)."""
        for i in range(len(self._packs)):
            self._pack(i).grad.fill(0)

    def step(self, closure=None):
        """Apply one update to every group and advance the step counter.

        ``closure``, if given, re-evaluates the model and returns the loss (it is called with
        gradients enabled); its loss is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        t = self.iterations
        for i, group in enumerate(self.param_groups):
            pack = self._pack(i)
            h = {k: self._value(v, t) for k, v in group.items() if k != "params"}
            if i == 0:
                self.lr = h["lr"]
            if pack.theta.size == 0:
                continue
            wd = h.get("weight_decay", 0.0) if self.coupled_weight_decay else 0.0
            pack.steps += 1
            for start, stop, t_run in pack.step_runs():
                self._update_blocks(pack, h, t_run, wd, start, stop)
            for p in pack.params:  # written in place: a graph that saved them must not backprop
                p._vc[0] += 1
        self.iterations += 1
        return loss

    def _update_blocks(self, pack: _Pack, h: dict, t: int, wd: float, lo: int, hi: int) -> None:
        # The update runs block by block: every array of one block fits in the CPU cache, so the
        # dozen passes of an update over it cost one trip to memory instead of a dozen. Threads
        # take contiguous shares of the blocks (NumPy releases the GIL inside ufuncs).
        starts = range(lo, hi, BLOCK)
        shares = min(_threads, len(starts) // 2) or 1
        if len(pack.work) < shares:
            pack.work = [{} for _ in range(shares)]

        def run(share: int) -> None:
            work = pack.work[share]
            for start in starts[share::shares]:
                window = slice(start, min(start + BLOCK, hi))
                block = _Block(pack, window, work)
                theta, g = pack.theta[window], pack.grad[window]
                if wd:  # coupled L2: the gradient of loss + wd/2 ||theta||^2 is g + wd theta
                    g = np.multiply(theta, wd, out=block.scratch("decayed", theta.size))
                    g += pack.grad[window]
                self.update(theta, g, block, h, t)

        if shares == 1:
            run(0)
            return
        futures = [_executor().submit(run, share) for share in range(1, shares)]
        run(0)
        for future in futures:
            future.result()

    def update(self, theta: np.ndarray, g: np.ndarray, block: _Block, h: dict, t: int) -> None:
        """Update one block of theta in place from its gradient g; ``t`` counts this block's updates
        from 1 (Adam's t; every parameter in a block has taken the same number of steps).
        Buffers come from ``self._state(block, name)`` and ``self._scratch(block, name)``."""
        raise NotImplementedError

    @staticmethod
    def _state(block, name: str, fill: float = 0.0) -> np.ndarray:
        """This block of the persistent flat buffer ``name`` (saved in the state_dict)."""
        return block.buffer(name, fill)

    @staticmethod
    def _scratch(block: _Block, name: str) -> np.ndarray:
        """A work array the size of this block, reused every step: updates allocate nothing."""
        return block.scratch(name, len(range(*block.window.indices(block.pack.theta.size))))

    # --- statistics --------------------------------------------------------------------------------

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

    # --- gradient clipping -------------------------------------------------------------------------

    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0) -> float:
        """Scale all gradients so their joint norm is at most ``max_norm``; returns the norm before."""
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
        for i in range(len(self._packs)):
            g = self._pack(i).grad
            np.clip(g, -clip_value, clip_value, out=g)

    # --- saving and resuming -----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume: step count, hyperparameters (schedules as configs) and the
        algorithm's buffers per parameter name."""
        groups, state = [], {}
        for i, group in enumerate(self.param_groups):
            pack = self._pack(i)
            settings = {k: _to_config(v) for k, v in group.items() if k != "params"}
            groups.append({**settings, "params": list(self._names[i])})
            state.update(pack.param_state())
            state.update({n: bufs for n, bufs in self._stash.items() if n in self._names[i]})
        return {"iterations": self.iterations, "param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state_dict from an optimizer over the same parameters (names and shapes)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: {len(groups)} parameter groups saved, "
                f"{len(self.param_groups)} here"
            )
        for i, saved in enumerate(groups):
            unknown = sorted(set(saved) - {"params"} - set(self.defaults))
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: settings {unknown} are not "
                    f"{type(self).__name__}'s; this state_dict comes from another optimizer"
                )
            if list(saved["params"]) != self._names[i]:
                missing = sorted(set(self._names[i]) - set(saved["params"]))
                unexpected = sorted(set(saved["params"]) - set(self._names[i]))
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: group {i} has different parameters "
                    f"(missing {missing}, unexpected {unexpected}, or a different order)"
                )
            shapes = {n: p.shape for n, p in zip(self._names[i], self.param_groups[i]["params"])}
            for name in saved["params"]:
                for key, value in state_dict["state"].get(name, {}).items():
                    if key != "step" and np.shape(value) != shapes[name]:
                        raise ValueError(
                            f"{type(self).__name__}.load_state_dict: state {key!r} of {name} has "
                            f"shape {np.shape(value)}, the parameter {shapes[name]}"
                        )
        for i, saved in enumerate(groups):
            for key, value in saved.items():
                if key != "params":
                    self.param_groups[i][key] = _from_config(value)
            pack = self._pack(i)
            pack.state.clear()
            saved_state = {n: state_dict["state"].get(n, {}) for n in saved["params"]}
            pack.load_param_state({n: saved_state[n] for n in pack.names})
            for name in set(saved["params"]) - set(pack.names):  # frozen here: keep in the stash
                self._stash[name] = {k: np.array(v) for k, v in saved_state[name].items()}
        self.iterations = int(state_dict["iterations"])
        self.lr = self._value(self.param_groups[0]["lr"], max(self.iterations - 1, 0))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in group.items() if k != "params"]
        return "\n".join([*lines, ")"])


def _to_config(value):
    if callable(value) and hasattr(value, "get_config"):
        return {"schedule": value.get_config()}
    return value


def _from_config(value):
    if isinstance(value, dict) and "schedule" in value:
        from .schedules import from_config  # schedules import nothing from here

        return from_config(value["schedule"])
    return value
