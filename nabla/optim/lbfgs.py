"""L-BFGS: a quasi-Newton method that models the inverse Hessian from the last m steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, NoReturn, SupportsFloat, TypeVar

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..autograd.trace import Trace
from .flat import FlatGroup, Stretch
from .optimizer import Optimizer
from .saving import ENTRIES, problems, value_at

LINE_SEARCHES = (None, "strong_wolfe")
CURVATURE_EPS = 1e-10  # a pair (s, y) enters the history only if y^T s exceeds this

_Loss = TypeVar("_Loss", bound=SupportsFloat)


class LBFGS(Optimizer):
    r"""Limited-memory BFGS (Nocedal 1980; Liu and Nocedal 1989; Nocedal and Wright ch. 7).

    ``step(closure)`` runs up to ``max_iter`` iterations from the current theta; the closure
    zeroes the gradients, computes the loss, calls ``backward`` and returns the loss. The last m
    (``history_size``) steps s_i = theta_{i+1} - theta_i and gradient changes y_i = g_{i+1} - g_i,
    with rho_i = 1 / y_i^T s_i, stand in for the inverse Hessian H:

    .. code-block:: text

        first iteration ever:  d = -g;   t = min(1, 1 / ||g||_1) lr
        later:                 d = -H g by the two-loop recursion;   t = lr
            q <- g
            for i = k-1, ..., k-m:  a_i <- rho_i s_i^T q;   q <- q - a_i y_i
            r <- gamma q,           gamma = s^T y / y^T y of the newest accepted pair
            for i = k-m, ..., k-1:  b <- rho_i y_i^T r;     r <- r + (a_i - b) s_i
            d = -r
        stop if g^T d > -tolerance_change                  (d is no descent direction)
        line_search="strong_wolfe": refine t until (c1 = 1e-4, c2 = 0.9)
            f(theta + t d) <= f(theta) + c1 t g^T d   and   |grad f(theta + t d)^T d| <= c2 |g^T d|
        theta <- theta + t d;  evaluate f and g there
        s = t d, y = g_new - g:  remember (s, y) if y^T s > 1e-10 (forget the oldest past m)
        stop after max_iter iterations or max_eval closure calls, or if max|g| <= tolerance_grad,
             max|t d| <= tolerance_change or |f_new - f| < tolerance_change (in this order)

    A step also stops at once, calling the closure only once, if max|g| <= tolerance_grad at the
    start.

    This is torch.optim.LBFGS step for step: the same tests in the same order, the same count
    of closure calls, and no weight decay. Without a line search the last iteration of a step
    does not re-evaluate the closure (the next step starts with a call at the new theta).
    The line search is Nocedal and Wright's Algorithms 3.5 (bracket) and 3.6 (zoom), each new
    trial point the minimizer of the cubic through two points' values and slopes (eq. 3.59),
    safeguarded to stay inside the bracket; it may use the closure calls left of ``max_eval``,
    and, as in PyTorch, stops zooming once the bracket is narrower than 1e-9 / max|d| whatever
    ``tolerance_change`` is. ``max_eval`` defaults to ``max_iter * 5 // 4``.

    Only one parameter group is supported. The history (s_i, y_i), d, the previous gradient and
    the scalars (t, gamma, rho_i, counters, previous loss) are part of the state_dict, so a run
    resumes exactly. The scalars (t, rho_i, gamma and the line search's arithmetic) are Python
    floats, so float64 even for float32 parameters, where PyTorch keeps them in the parameters'
    dtype. ``line_search_fn`` is accepted as PyTorch's name for ``line_search``.

    >>> import nabla as nb
    >>> w = nb.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    >>> opt = LBFGS([w], line_search="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = ((w - 1.0) ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> _ = opt.step(closure)
    >>> w.data
    array([1., 1.])
    """

    defaults = {
        "lr": 1.0,
        "max_iter": 20,
        "max_eval": None,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "history_size": 100,
        "line_search": None,
    }

    def __init__(
        self,
        params: Iterable[Tensor | tuple[str, Tensor] | dict[str, Any]],
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search: str | None = None,
        *,
        line_search_fn: str | None = None,
    ):
        if line_search_fn is not None:  # PyTorch's name for the same setting
            if line_search is not None and line_search != line_search_fn:
                raise ValueError("LBFGS: give line_search or line_search_fn, not both")
            line_search = line_search_fn
        super().__init__(
            params,
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search=line_search,
        )
        self._reset_memory()
        self._work: dict[str, np.ndarray] = {}  # work arrays reused by every step

    def _reset_memory(self) -> None:
        # the scalars of the state; the vectors live in the pack's flat buffers
        self._memory = {
            "n_iter": 0,  # iterations over all steps (the first one ever is a gradient step)
            "func_evals": 0,  # closure calls over all steps
            "t": None,  # the last step length
            "gamma": 1.0,  # H_0 = gamma I (PyTorch's H_diag)
            "rho": [],  # 1 / y_i^T s_i, oldest first; len(rho) pairs are stored
            "prev_loss": None,
        }

    def add_param_group(self, group: dict) -> None:
        if self.param_groups:
            raise ValueError(
                "LBFGS supports exactly one parameter group (its history spans all parameters); "
                "put every parameter in one group"
            )
        super().add_param_group(group)

    @classmethod
    def validate(cls, h: dict) -> None:
        super().validate(h)
        for key in ("max_iter", "history_size"):
            if not (isinstance(h[key], (int, np.integer)) and h[key] >= 1):
                raise ValueError(f"LBFGS: {key} must be an integer >= 1, got {h[key]!r}")
        if h["max_eval"] is not None and not (
            isinstance(h["max_eval"], (int, np.integer)) and h["max_eval"] >= 1
        ):
            raise ValueError(
                f"LBFGS: max_eval must be None or an integer >= 1, got {h['max_eval']!r}"
            )
        for key in ("tolerance_grad", "tolerance_change"):
            if not h[key] >= 0:
                raise ValueError(f"LBFGS: {key} must be >= 0, got {h[key]}")
        if h["line_search"] not in LINE_SEARCHES:
            raise ValueError(
                f"LBFGS: line_search must be one of {LINE_SEARCHES}, got {h['line_search']!r}"
            )

    def reference(
        self, theta: np.ndarray, g: np.ndarray, state: Stretch, h: dict, t: int
    ) -> NoReturn:
        raise TypeError("LBFGS updates only through step(closure)")

    def kernel(
        self,
        theta: np.ndarray,
        g: np.ndarray,
        state: Stretch,
        h: dict,
        t: int,
        weight_decay: float,
        decay: float,
    ) -> NoReturn:
        raise TypeError("LBFGS updates only through step(closure)")

    # --- the step ---------------------------------------------------------------------------------

    def _evaluate(self, closure: Callable[[], _Loss]) -> tuple[_Loss, np.ndarray]:
        """Call the closure at the current theta: (its loss, a copy of the flat gradient)."""
        with enable_grad():
            loss = closure()
        return loss, self._pack(0).grad.copy()  # the next call overwrites the buffer

    def step(self, closure: Callable[[], _Loss] | None = None) -> _Loss:
        """Run up to ``max_iter`` L-BFGS iterations; returns the loss at the starting theta."""
        if closure is None:
            raise TypeError(
                "LBFGS.step needs a closure that zeroes the gradients, computes the loss, calls "
                "backward and returns the loss: opt.step(closure)"
            )
        if Trace.recorder is not None:  # a closure's data-dependent loop: nothing to replay
            Trace.recorder.unsupported("LBFGS.step runs a data-dependent line search")
        group = self.param_groups[0]
        h = {k: value_at(v, self.iterations) for k, v in group.items() if k != "params"}
        self.lr = lr = h["lr"]
        max_iter, tol_grad, tol_change = h["max_iter"], h["tolerance_grad"], h["tolerance_change"]
        max_eval = h["max_eval"] if h["max_eval"] is not None else max_iter * 5 // 4
        self.iterations += 1
        memory = self._memory

        orig_loss, g = self._evaluate(closure)
        f = float(orig_loss)
        evals = 1
        memory["func_evals"] += 1
        pack = self._pack(0)
        if g.size == 0 or np.abs(g).max() <= tol_grad:
            return orig_loss
        theta = pack.theta
        d, g_prev = _flat(pack.state, "d", pack), _flat(pack.state, "prev_flat_grad", pack)
        step = _flat(self._work, "step", pack)
        t = memory["t"]
        converged = False
        k = 0
        while k < max_iter:
            k += 1
            memory["n_iter"] += 1
            if memory["n_iter"] == 1:
                np.negative(g, out=d)
                self._forget(pack)
                memory["gamma"] = 1.0
            else:
                self._remember(pack, g, g_prev, d, t, h["history_size"])
                self._two_loop(pack, g, d)
            g_prev[...] = g
            memory["prev_loss"] = prev_loss = f

            if memory["n_iter"] == 1:
                t = min(1.0, 1.0 / float(np.abs(g).sum())) * lr
            else:
                t = lr
            gtd = float(g @ d)
            if gtd > -tol_change:
                break

            if h["line_search"] == "strong_wolfe":
                t, f, g, new_evals = self._search(closure, pack, d, t, f, g, gtd, max_eval - evals)
                theta += np.multiply(d, t, out=step)
                converged = np.abs(g).max() <= tol_grad
            else:
                theta += np.multiply(d, t, out=step)
                new_evals = 0
                if k != max_iter:  # the next step's first call evaluates the last theta
                    loss, g = self._evaluate(closure)
                    f = float(loss)
                    converged = np.abs(g).max() <= tol_grad
                    new_evals = 1
            evals += new_evals
            memory["func_evals"] += new_evals

            if k == max_iter or evals >= max_eval or converged:
                break
            if abs(t) * np.abs(d).max() <= tol_change:  # = max|t d|: the step is negligible
                break
            if abs(f - prev_loss) < tol_change:
                break
        memory["t"] = t
        return orig_loss

    def _search(self, closure, pack, d, t, f, g, gtd, max_evals):
        """The strong Wolfe line search along d from theta (which it leaves unchanged)."""
        theta, step = pack.theta, _flat(self._work, "step", pack)
        start = _flat(self._work, "theta0", pack)
        start[...] = theta

        def phi(t_trial):
            np.add(start, np.multiply(d, t_trial, out=step), out=theta)
            loss, g_trial = self._evaluate(closure)
            theta[...] = start
            return float(loss), g_trial

        return strong_wolfe(phi, t, d, f, g, gtd, max_evals=max_evals)

    # --- the history ------------------------------------------------------------------------------

    def _pairs(self, pack) -> tuple[list, list]:
        n = len(self._memory["rho"])
        return [pack.state[f"s.{i}"] for i in range(n)], [pack.state[f"y.{i}"] for i in range(n)]

    def _forget(self, pack) -> None:
        for i in range(len(self._memory["rho"])):
            del pack.state[f"s.{i}"], pack.state[f"y.{i}"]
        self._memory["rho"] = []

    def _remember(self, pack, g, g_prev, d, t, m) -> None:
        """Add the pair s = t d, y = g - g_prev if it has positive curvature y^T s."""
        s = np.multiply(d, t, out=_flat(self._work, "s_new", pack))
        y = np.subtract(g, g_prev, out=_flat(self._work, "y_new", pack))
        ys = float(y @ s)
        if not ys > CURVATURE_EPS:
            return  # skipping keeps H positive definite
        s_hist, y_hist = self._pairs(pack)
        rho = self._memory["rho"]
        while len(rho) >= m:  # forget the oldest pair and reuse its arrays as scratch
            self._work["s_new"], self._work["y_new"] = s_hist.pop(0), y_hist.pop(0)
            del pack.state[f"s.{len(rho) - 1}"], pack.state[f"y.{len(rho) - 1}"]
            rho.pop(0)
        s_hist.append(s)
        y_hist.append(y)
        rho.append(1.0 / ys)
        for i, (s_i, y_i) in enumerate(zip(s_hist, y_hist)):
            pack.state[f"s.{i}"], pack.state[f"y.{i}"] = s_i, y_i
        if self._work["s_new"] is s:  # the history took the work arrays
            del self._work["s_new"], self._work["y_new"]
        self._memory["gamma"] = ys / float(y @ y)

    def _two_loop(self, pack, g, d) -> None:
        """d <- -H g, H the L-BFGS inverse Hessian (Nocedal and Wright, Algorithm 7.4)."""
        s_hist, y_hist = self._pairs(pack)
        rho = self._memory["rho"]
        tmp = _flat(self._work, "tmp", pack)
        a = [0.0] * len(rho)
        np.negative(g, out=d)  # the recursion run on q = -g yields -H g directly
        for i in reversed(range(len(rho))):
            a[i] = float(s_hist[i] @ d) * rho[i]
            d -= np.multiply(y_hist[i], a[i], out=tmp)
        d *= self._memory["gamma"]
        for i in range(len(rho)):
            b = float(y_hist[i] @ d) * rho[i]
            d += np.multiply(s_hist[i], a[i] - b, out=tmp)

    # --- saving and resuming ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The base state_dict (the history and d as per-parameter buffers) plus the scalars."""
        state = super().state_dict()
        state["lbfgs"] = {**self._memory, "rho": list(self._memory["rho"])}
        return state

    def load_state_dict(self, saved: dict) -> None:
        super().load_state_dict(saved)  # checks the "lbfgs" entry too (_state_problems)
        saved = saved["lbfgs"]
        self._reset_memory()
        self._memory.update({**saved, "rho": [float(r) for r in saved["rho"]]})

    def buffers(self, h: dict, saved: dict | None = None) -> dict[str, bool]:
        """d and the previous gradient from the first iteration on, and the history pairs
        s.i, y.i for i < len(rho), as many as the saved memory (or this one) has."""
        memory = self._memory if saved is None else saved.get("lbfgs")
        rho = memory.get("rho") if isinstance(memory, dict) else None
        pairs = len(rho) if isinstance(rho, list) else 0
        history = {f"{v}.{i}": True for i in range(pairs) for v in "sy"}
        return {"d": True, "prev_flat_grad": True, **history}

    def _state_problems(self, saved: Any) -> list[str]:
        """The base checks, with the "lbfgs" entry: the scalars of ``_memory``, no others."""
        found = problems(self, saved, entries=(*ENTRIES, "lbfgs"))
        memory = saved.get("lbfgs") if isinstance(saved, dict) else None
        if memory is None:
            return found  # reported as a missing entry
        if not isinstance(memory, dict):
            return [*found, f"lbfgs must be a dict of {sorted(self._memory)}"]
        missing = sorted(set(self._memory) - set(memory))
        unknown = sorted(set(memory) - set(self._memory))
        if missing or unknown:
            found.append(
                f"lbfgs: missing {missing}, unknown {unknown} (it holds {list(self._memory)})"
            )
        rho = memory.get("rho", [])
        if not isinstance(rho, list) or not all(isinstance(r, (int, float)) for r in rho):
            found.append(f"lbfgs: rho must be a list of numbers (1 / y_i^T s_i), got {rho!r}")
        return found


def _flat(buffers: dict, name: str, pack: FlatGroup) -> np.ndarray:
    """The flat array ``name`` of ``buffers`` laid out like the pack's theta (zeros when new)."""
    buf = buffers.get(name)
    if buf is None or buf.shape != pack.theta.shape or buf.dtype != pack.theta.dtype:
        buf = buffers[name] = np.zeros_like(pack.theta)
    return buf


class _Point(NamedTuple):
    """A trial step length t with f, the gradient g and the slope g^T d there."""

    t: float
    f: float
    g: np.ndarray
    gtd: float


def cubic_minimizer(a: _Point, b: _Point, bounds: tuple | None = None) -> float:
    """The minimizer of the cubic matching f and the slope at a.t and b.t (Nocedal and Wright
    eq. 3.59), clipped to ``bounds`` (default: the interval between them); the midpoint of the
    bounds when the cubic has no minimizer."""
    lo, hi = bounds if bounds is not None else (min(a.t, b.t), max(a.t, b.t))
    d1 = a.gtd + b.gtd - 3 * (a.f - b.f) / (a.t - b.t)
    d2_squared = d1**2 - a.gtd * b.gtd
    if not d2_squared >= 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(d2_squared)
    left, right = (a, b) if a.t <= b.t else (b, a)
    denominator = right.gtd - left.gtd + 2 * d2
    if denominator == 0:  # f is a concave quadratic along the line: the cubic has no minimizer
        return (lo + hi) / 2.0
    t = right.t - (right.t - left.t) * ((right.gtd + d2 - d1) / denominator)
    return min(max(t, lo), hi)


def strong_wolfe(
    phi: Callable[[float], tuple[float, np.ndarray]],
    t: float,
    d: np.ndarray,
    f: float,
    g: np.ndarray,
    gtd: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance: float = 1e-9,
    max_evals: int = 25,
) -> tuple[float, float, np.ndarray, int]:
    """A step length t along d satisfying the strong Wolfe conditions (Nocedal and Wright,
    Algorithms 3.5 and 3.6), starting from the trial ``t``.

    ``phi(t)`` returns (f, gradient) at theta + t d; ``f``, ``g`` and ``gtd`` = g^T d are at t = 0.
    At most ``max_evals`` calls to phi after the first. Returns (t, f, g, calls to phi).
    """
    zero = _Point(0.0, f, g, gtd)

    def sufficient_decrease(p: _Point) -> bool:
        return not p.f > f + c1 * p.t * gtd

    def curvature(p: _Point) -> bool:
        return abs(p.gtd) <= -c2 * gtd

    def probe(t: float) -> _Point:
        f_t, g_t = phi(t)
        return _Point(t, f_t, g_t, float(g_t @ d))

    # bracketing (Alg. 3.5): extrapolate until an interval must contain an acceptable t
    prev, new = zero, probe(t)
    calls, tries = 1, 0
    bracket = None
    while tries < max_evals:
        if not sufficient_decrease(new) or (tries > 1 and new.f >= prev.f):
            bracket = [prev, new]
            break
        if curvature(new):
            return new.t, new.f, new.g, calls
        if new.gtd >= 0:  # the slope turned: the minimum is behind us
            bracket = [prev, new]
            break
        t = cubic_minimizer(prev, new, bounds=(new.t + 0.01 * (new.t - prev.t), 10 * new.t))
        prev, new = new, probe(t)
        calls += 1
        tries += 1
    if bracket is None:  # out of calls: take t = 0 unless the last trial is strictly lower
        best = zero if zero.f <= new.f else new
        return best.t, best.f, best.g, calls

    # zoom (Alg. 3.6): shrink the bracket; `low` is its end with the lower f
    low = 0 if bracket[0].f <= bracket[1].f else 1
    d_max = float(np.abs(d).max())
    stalled = False  # the last trial also fell next to the bracket's ends
    while tries < max_evals:
        t_min, t_max = min(p.t for p in bracket), max(p.t for p in bracket)
        if (t_max - t_min) * d_max < tolerance:
            break
        t = cubic_minimizer(*bracket)
        # a trial within 10% of an end makes little progress; move it inwards if that repeats
        margin = 0.1 * (t_max - t_min)
        if min(t_max - t, t - t_min) < margin:
            if stalled or t >= t_max or t <= t_min:
                t = t_max - margin if abs(t - t_max) < abs(t - t_min) else t_min + margin
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        new = probe(t)
        calls += 1
        tries += 1
        if not sufficient_decrease(new) or new.f >= bracket[low].f:
            bracket[1 - low] = new
            low = 0 if bracket[0].f <= bracket[1].f else 1
            continue
        if curvature(new):
            bracket[low] = new
            break
        if new.gtd * (bracket[1 - low].t - bracket[low].t) >= 0:
            bracket[1 - low] = bracket[low]
        bracket[low] = new
    best = bracket[low]
    return best.t, best.f, best.g, calls
