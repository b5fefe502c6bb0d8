"""Flat buffers: the parameters of one group packed into one contiguous vector.

When an optimizer is built, the trainable parameters of a group are copied into one vector theta,
and each parameter's ``.data`` and ``.grad`` become views into theta and into a gradient vector g
of the same layout. Backward then writes gradients straight into g, ``zero_grad`` is one
``fill``, and an update is one pass over a few vectors, whatever the number of tensors.
"""

from __future__ import annotations

import threading

import numpy as np


class FlatGroup:
    """The flat buffers of one parameter group: theta, g, and the algorithm's state vectors."""

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
        bounds = np.cumsum([0, *(p.data.size for p in self.params)])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.theta = np.empty(int(bounds[-1]), dtype=dtype)
        self.grad = np.zeros(int(bounds[-1]), dtype=dtype)
        self.data_views, self.grad_views = [], []
        for p, s in zip(self.params, self.slices):
            self.theta[s] = p.data.reshape(-1)
            if p.grad is not None:
                self.grad[s] = np.asarray(p.grad).reshape(-1)
            p.data = self.theta[s].reshape(p.data.shape)
            p.grad = p._grad_slot = self.grad[s].reshape(p.data.shape)
            self.data_views.append(p.data)
            self.grad_views.append(p.grad)
        self.state: dict[str, np.ndarray] = {}  # flat buffers of the algorithm (momentum, ...)
        self.steps = np.zeros(len(self.params), dtype=np.int64)  # updates made, per parameter
        self.same_steps = True  # every parameter took the same number of updates (the usual case)
        self.fills = {} if fills is None else dict(fills)  # each buffer's first value if not 0
        self._lock = threading.Lock()

    def buffer(self, name: str, fill: float = 0.0) -> np.ndarray:
        """The algorithm's flat buffer ``name``, created filled with ``fill`` on first use."""
        buf = self.state.get(name)
        if buf is None:
            with self._lock:
                buf = self.state.get(name)
                if buf is None:
                    self.fills[name] = fill
                    buf = self.state[name] = np.full_like(self.theta, fill)
        return buf

    def stretch(self, start: int, stop: int) -> Stretch:
        return Stretch(self, slice(start, stop))

    def in_sync(self, params: list) -> bool:
        """Whether every parameter still views this group's buffers (checked every step)."""
        if tuple(p.requires_grad for p in params) != self.flags:
            return False
        for p, data in zip(self.params, self.data_views):
            if p.data is not data:
                return False
        return True

    def clear_grads(self) -> None:
        """``zero_grad``: every .grad to None, the flat buffer untouched. Backward then writes
        each parameter's first gradient into its slot (engine.grad_slot), with no fill and no
        ``+=`` pass; :meth:`adopt_grads` zeroes the slots that received none."""
        for p, view in zip(self.params, self.grad_views):
            p.grad, p._grad_slot = None, view

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
        self.same_steps = bool(np.all(self.steps == self.steps[:1]))
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
        if self.same_steps and self.params:  # steps only change together after a (re)load
            return [(0, self.theta.size, int(self.steps[0]))]
        runs = []
        for s, t in zip(self.slices, self.steps.tolist()):
            if runs and runs[-1][2] == t and runs[-1][1] == s.start:
                runs[-1] = (runs[-1][0], s.stop, t)
            else:
                runs.append((s.start, s.stop, t))
        return runs


class Stretch:
    """The state buffers of one stretch of a group, as an update sees them:
    ``state.get("exp_avg")`` is that stretch of the flat buffer, created on first use."""

    __slots__ = ("group", "window")

    def __init__(self, group: FlatGroup, window: slice):
        self.group, self.window = group, window

    def get(self, name: str, fill: float = 0.0) -> np.ndarray:
        return self.group.buffer(name, fill)[self.window]

    def __contains__(self, name: str) -> bool:
        return name in self.group.state


def flush_subnormals(*buffers: np.ndarray) -> None:
    """Set every value of magnitude below the dtype's smallest normal number to 0, in place."""
    for buf in buffers:
        buf[np.abs(buf) < np.finfo(buf.dtype).tiny] = 0
