"""Learning-rate schedules: plain callables ``step -> float``.

``step`` is the number of optimizer updates already made (0 for the first update); ints, floats
and NumPy scalars are accepted. The decays follow the definitions of Keras 3
(``keras.optimizers.schedules``); ``OneCycle`` follows ``torch.optim.lr_scheduler.OneCycleLR``.
Every schedule serializes with ``get_config()`` to a JSON-ready dict
``{"class_name": ..., "config": {...}}`` and :func:`from_config` rebuilds it, nested schedules
included. Schedules compose: ``LinearWarmup(CosineDecay(0.1, 10_000), 500)``.

>>> lr = LinearWarmup(CosineDecay(0.1, decay_steps=1000), warmup_steps=100)
>>> [round(lr(s), 4) for s in (0, 50, 100, 1000, 5000)]
[0.0, 0.0488, 0.0976, 0.0, 0.0]
>>> from_config(lr.get_config())(50) == lr(50)
True

A schedule that ``nabla train --schedule NAME`` offers names itself and says how a run of given
length uses it (``for_run``); defining the class registers the name (:func:`for_run`,
:func:`names`), as the optimizers do (:mod:`nabla.optim.registry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Schedule",
    "Constant",
    "ExponentialDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "InverseSqrtDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "PiecewiseConstant",
    "LinearWarmup",
    "Warmup",
    "OneCycle",
    "Sequence",
    "join",
    "PerEpoch",
    "per_epoch",
    "epochs_to_steps",
    "from_config",
    "RunPlan",
    "for_run",
    "get",
    "names",
]

_REGISTRY: dict[str, type[Schedule]] = {}  # class name -> class, for from_config
_RUN_NAMES: dict[str, type[Schedule]] = {}  # --schedule name -> class, for nabla train


@dataclass(frozen=True)
class RunPlan:
    """What a training run tells its schedule: the peak rate, the updates in all, the warmup
    updates (ramped by :class:`LinearWarmup` unless the schedule warms up itself), the updates per
    epoch and the config's ``decay_rate`` (final rate / peak, for the decays that take one)."""

    lr: float
    total: int
    warmup: int = 0
    steps_per_epoch: int = 1
    decay_rate: float = 0.01

    @property
    def decay_steps(self) -> int:
        """The updates after the warmup, over which a decay runs."""
        return max(self.total - self.warmup, 1)


class Schedule:
    """Base class: ``schedule(step)`` checks the step and returns ``float(self._lr(step))``.

    A subclass stores its constructor arguments under the same names, lists them in ``_fields``
    and implements ``_lr(step)`` for a float ``step >= 0``.
    """

    _fields: tuple[str, ...] = ()
    name: str = ""  # the --schedule name, for the schedules nabla train offers
    own_warmup: bool = False  # it ramps up itself: the run's warmup_epochs do not apply
    uses_decay_rate: bool = False  # it reads the config's decay_rate

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls
        if "name" in cls.__dict__:
            _RUN_NAMES[cls.name] = cls

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        """This schedule over a training run of ``plan`` (the warmup is added by
        :func:`for_run`)."""
        raise NotImplementedError(f"{cls.__name__} has no recipe for a training run")

    def __call__(self, step: float) -> float:
        step = float(step)  # ints, floats, NumPy scalars, 0-d arrays
        if not step >= 0.0:  # also rejects NaN
            raise ValueError(f"{type(self).__name__}: step must be >= 0, got {step}")
        return float(self._lr(step))

    def _lr(self, step: float) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """``{"class_name": ..., "config": {argument: value}}``; nested schedules as configs."""
        config = {name: _to_config(getattr(self, name)) for name in self._fields}
        return {"class_name": type(self).__name__, "config": config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Schedule:
        """Rebuild a schedule from :meth:`get_config`'s dict (any subclass, from any class)."""
        schedule = from_config(config)
        if not isinstance(schedule, cls):
            raise ValueError(f"{cls.__name__}.from_config got a {type(schedule).__name__} config")
        return schedule

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({args})"


def from_config(config: dict[str, Any]) -> Schedule:
    """Rebuild any schedule from the dict its ``get_config()`` returned."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"from_config expects a dict with a 'class_name', got {config!r}")
    name = config["class_name"]
    if name not in _REGISTRY:
        raise ValueError(f"from_config: unknown schedule {name!r}; known: {sorted(_REGISTRY)}")
    kwargs = {k: _from_config(v) for k, v in config.get("config", {}).items()}
    return _REGISTRY[name](**kwargs)


def _to_config(x: Any) -> Any:
    if isinstance(x, Schedule):
        return x.get_config()
    if isinstance(x, (list, tuple)):
        return [_to_config(v) for v in x]
    return x


def _from_config(x: Any) -> Any:
    if isinstance(x, dict) and "class_name" in x:
        return from_config(x)
    if isinstance(x, list):
        return [_from_config(v) for v in x]
    return x


def _rate(name: str, x: float, owner: str) -> float:
    """A learning rate: finite and >= 0."""
    x = float(x)
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {x}")
    return x


def _positive(name: str, x: float, owner: str) -> float:
    x = float(x)
    if not (math.isfinite(x) and x > 0.0):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {x}")
    return x


def _steps(name: str, x: float, owner: str, minimum: int = 1) -> int:
    """A whole number of steps >= minimum (2.0 is accepted as 2)."""
    if isinstance(x, bool) or float(x) != int(float(x)) or int(x) < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {x!r}")
    return int(x)


def _schedule(x: Schedule | float, owner: str) -> Schedule:
    """A schedule, or a number promoted to ``Constant``."""
    if isinstance(x, Schedule):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Constant(x)
    raise ValueError(f"{owner}: expected a Schedule or a number, got {x!r}")


class Constant(Schedule):
    """``lr = value`` at every step.

    >>> Constant(0.01)(1000)
    0.01
    """

    _fields = ("value",)
    name = "constant"

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        return cls(plan.lr)

    def __init__(self, value: float):
        self.value = _rate("value", value, "Constant")

    def _lr(self, step: float) -> float:
        return self.value


class ExponentialDecay(Schedule):
    """Keras ``ExponentialDecay``; torch ``ExponentialLR`` (decay_steps=1) and ``StepLR``
    (staircase).

        p = step / decay_steps            # math.floor(step / decay_steps) if staircase
        lr = initial * decay_rate ** p

    >>> lr = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    >>> lr(9), lr(10), lr(25)
    (0.1, 0.05, 0.025)
    """

    _fields = ("initial", "decay_steps", "decay_rate", "staircase")
    name, uses_decay_rate = "exponential", True

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        return cls(plan.lr, plan.decay_steps, plan.decay_rate)

    def __init__(
        self, initial: float, decay_steps: float, decay_rate: float, staircase: bool = False
    ):
        self.initial = _rate("initial", initial, "ExponentialDecay")
        self.decay_steps = _positive("decay_steps", decay_steps, "ExponentialDecay")
        self.decay_rate = _positive("decay_rate", decay_rate, "ExponentialDecay")
        self.staircase = bool(staircase)

    def _lr(self, step: float) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial * self.decay_rate**p


class PolynomialDecay(Schedule):
    """Keras ``PolynomialDecay``; torch ``PolynomialLR`` is the case ``end=0``, ``cycle=False``.

        if cycle:   # each cycle is a whole multiple of decay_steps long; step 0 is in the first
            decay_steps = decay_steps * max(1, math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        lr = (initial - end) * (1 - step / decay_steps) ** power + end

    >>> lr = PolynomialDecay(0.1, decay_steps=100, end=0.0, power=2.0)
    >>> lr(0), lr(50), lr(100), lr(500)
    (0.1, 0.025, 0.0, 0.0)
    """

    _fields = ("initial", "decay_steps", "end", "power", "cycle")
    name, uses_decay_rate = "polynomial", True

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        return cls(plan.lr, plan.decay_steps, end=plan.lr * plan.decay_rate)

    def __init__(
        self,
        initial: float,
        decay_steps: float,
        end: float = 1e-4,
        power: float = 1.0,
        cycle: bool = False,
    ) -> None:
        self.initial = _rate("initial", initial, "PolynomialDecay")
        self.decay_steps = _positive("decay_steps", decay_steps, "PolynomialDecay")
        self.end = _rate("end", end, "PolynomialDecay")
        self.power = _positive("power", power, "PolynomialDecay")
        self.cycle = bool(cycle)

    def _lr(self, step: float) -> float:
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        return (self.initial - self.end) * (1.0 - step / decay_steps) ** self.power + self.end


class InverseTimeDecay(Schedule):
    """Keras ``InverseTimeDecay``.

        p = step / decay_steps            # math.floor(step / decay_steps) if staircase
        lr = initial / (1 + decay_rate * p)

    >>> lr = InverseTimeDecay(0.1, decay_steps=10, decay_rate=1.0)
    >>> lr(0), lr(10), lr(30)
    (0.1, 0.05, 0.025)
    """

    _fields = ("initial", "decay_steps", "decay_rate", "staircase")
    name, uses_decay_rate = "inverse-time", True

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        # lr / (1 + k) at the end is decay_rate times the peak: k = 1 / decay_rate - 1
        return cls(plan.lr, plan.decay_steps, 1.0 / plan.decay_rate - 1.0)

    def __init__(
        self, initial: float, decay_steps: float, decay_rate: float, staircase: bool = False
    ):
        self.initial = _rate("initial", initial, "InverseTimeDecay")
        self.decay_steps = _positive("decay_steps", decay_steps, "InverseTimeDecay")
        self.decay_rate = _rate("decay_rate", decay_rate, "InverseTimeDecay")
        self.staircase = bool(staircase)

    def _lr(self, step: float) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial / (1.0 + self.decay_rate * p)


class InverseSqrtDecay(Schedule):
    """The Transformer rule (Vaswani et al. 2017, eq. 3), rescaled so its peak is ``initial``.

        n = step + 1                      # the paper counts updates from 1
        lr = initial * min(n / warmup_steps, math.sqrt(warmup_steps / n))

    Linear warmup up to ``initial`` at ``step = warmup_steps - 1``, then decay as ``1/sqrt(step)``;
    the two pieces meet there, so the curve is continuous. ``warmup_steps=1`` means no warmup:
    ``initial / sqrt(step + 1)``. (Keras has no such class; Fairseq's ``inverse_sqrt`` is the same
    shape.) The paper's ``d_model ** -0.5`` factor is ``initial * warmup_steps ** -0.5``.

    >>> lr = InverseSqrtDecay(0.01, warmup_steps=4)
    >>> lr(0), lr(3), lr(15)
    (0.0025, 0.01, 0.005)
    """

    _fields = ("initial", "warmup_steps")
    name = "inverse-sqrt"

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        return cls(plan.lr, max(plan.warmup, plan.steps_per_epoch))

    def __init__(self, initial: float, warmup_steps: int):
        self.initial = _rate("initial", initial, "InverseSqrtDecay")
        self.warmup_steps = _steps("warmup_steps", warmup_steps, "InverseSqrtDecay")

    def _lr(self, step: float) -> float:
        n, w = step + 1.0, self.warmup_steps
        return self.initial * min(n / w, math.sqrt(w / n))


class CosineDecay(Schedule):
    """Keras ``CosineDecay`` (with its optional linear warmup); torch ``CosineAnnealingLR``.

        peak = initial if warmup_target is None else warmup_target
        if step < warmup_steps:           # linear from initial to warmup_target
            lr = initial + (warmup_target - initial) * step / warmup_steps
        else:                             # half a cosine from peak down to alpha * peak
            t = min(step - warmup_steps, decay_steps) / decay_steps
            lr = peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t)) + alpha)

    As in Keras, ``warmup_steps`` only counts when ``warmup_target`` is given.
    torch ``CosineAnnealingLR(T_max, eta_min)`` is ``CosineDecay(lr, T_max, alpha=eta_min / lr)``
    up to ``T_max`` (torch then rises again; this stays at ``alpha * peak``).

    >>> lr = CosineDecay(0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10)
    >>> lr(0), lr(5), lr(10), lr(60), lr(110), lr(999)
    (0.0, 0.05, 0.1, 0.05, 0.0, 0.0)
    """

    _fields = ("initial", "decay_steps", "alpha", "warmup_target", "warmup_steps")
    name = "cosine"

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        return cls(plan.lr, plan.decay_steps)

    def __init__(
        self,
        initial: float,
        decay_steps: float,
        alpha: float = 0.0,
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.initial = _rate("initial", initial, "CosineDecay")
        self.decay_steps = _positive("decay_steps", decay_steps, "CosineDecay")
        self.alpha = float(alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"CosineDecay: alpha must be in [0, 1], got {alpha}")
        self.warmup_target = None
        if warmup_target is not None:
            self.warmup_target = _rate("warmup_target", warmup_target, "CosineDecay")
        self.warmup_steps = _steps("warmup_steps", warmup_steps, "CosineDecay", minimum=0)

    def _lr(self, step: float) -> float:
        peak, warmup = self.initial, 0
        if self.warmup_target is not None:
            peak, warmup = self.warmup_target, self.warmup_steps
            if step < warmup:
                return self.initial + (peak - self.initial) * step / warmup
        t = min(step - warmup, self.decay_steps) / self.decay_steps
        return peak * ((1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * t)) + self.alpha)


class CosineDecayRestarts(Schedule):
    """Keras ``CosineDecayRestarts`` (SGDR, Loshchilov & Hutter 2017); torch
    ``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)`` for integer ``t_mul`` and ``m_mul=1``.

        # period i lasts first_decay_steps * t_mul ** i steps and peaks at initial * m_mul ** i
        i, t = 0, step / first_decay_steps   # t: position in periods of the first length
        while t >= t_mul ** i:
            t, i = t - t_mul ** i, i + 1
        t = t / t_mul ** i                    # fraction of period i completed, in [0, 1)
        lr = initial * ((1 - alpha) * m_mul ** i * 0.5 * (1 + math.cos(math.pi * t)) + alpha)

    (Keras computes ``i`` in closed form with a logarithm; so does this, then checks it against
    the period boundaries so rounding cannot misplace a restart.)

    >>> lr = CosineDecayRestarts(0.1, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    >>> lr(0), lr(5), lr(10), lr(20), lr(30)
    (0.1, 0.05, 0.05, 0.025, 0.025)
    """

    _fields = ("initial", "first_decay_steps", "t_mul", "m_mul", "alpha")
    name = "cosine-restarts"

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        # cycles of 1, 2 and 4 sevenths of the run: the last one ends with it
        return cls(plan.lr, max(plan.decay_steps / 7, 1))

    def __init__(
        self,
        initial: float,
        first_decay_steps: float,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
    ) -> None:
        owner = "CosineDecayRestarts"
        self.initial = _rate("initial", initial, owner)
        self.first_decay_steps = _positive("first_decay_steps", first_decay_steps, owner)
        self.t_mul = float(t_mul)
        if not (math.isfinite(self.t_mul) and self.t_mul >= 1.0):
            raise ValueError(f"{owner}: t_mul must be >= 1 (periods never shrink), got {t_mul}")
        self.m_mul = _rate("m_mul", m_mul, owner)
        self.alpha = float(alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"{owner}: alpha must be in [0, 1], got {alpha}")

    def _lr(self, step: float) -> float:
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            i = math.floor(fraction)
            start = float(i)
        else:
            # Periods 0..i-1 end at (t_mul**i - 1) / (t_mul - 1) first-periods; the log gives i,
            # then one nudge each way fixes the floor where rounding lands it next to an integer.
            # A period end computed a few ulps above the step is reached (t_mul = 1.3: the second
            # period ends at step 23, computed as 2.3000000000000003 first-periods). The slack
            # stays below a thousandth of a step, or after 10**12 steps it would take the last
            # step of a period for the next one's first.
            r = self.t_mul
            slack = min(1e-12 * max(1.0, fraction), 1e-3 / self.first_decay_steps)
            i = math.floor(math.log1p(fraction * (r - 1.0)) / math.log(r))
            while (r ** (i + 1) - 1.0) / (r - 1.0) <= fraction + slack:
                i += 1
            while i > 0 and (r**i - 1.0) / (r - 1.0) > fraction + slack:
                i -= 1
            start = (r**i - 1.0) / (r - 1.0)
        t = (fraction - start) / self.t_mul**i
        cosine = 0.5 * self.m_mul**i * (1.0 + math.cos(math.pi * t))
        return self.initial * ((1.0 - self.alpha) * cosine + self.alpha)


class PiecewiseConstant(Schedule):
    """Keras ``PiecewiseConstantDecay``; torch ``MultiStepLR`` with ``boundaries = milestones - 1``.

        # values[0] while step <= boundaries[0], values[i] while
        # boundaries[i-1] < step <= boundaries[i], values[-1] once step > boundaries[-1]
        lr = values[sum(step > b for b in boundaries)]

    Note the convention: a boundary step still uses the earlier value (Keras); torch's
    ``MultiStepLR`` switches *at* a milestone.

    >>> lr = PiecewiseConstant(boundaries=[100, 200], values=[0.1, 0.01, 0.001])
    >>> lr(100), lr(101), lr(200), lr(201)
    (0.1, 0.01, 0.01, 0.001)
    """

    _fields = ("boundaries", "values")
    name = "step"

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        # x0.1 at 50% and 75% of training, as in the ResNet papers
        rest, lr = plan.decay_steps, plan.lr
        return cls([rest // 2, 3 * rest // 4], [lr, lr / 10, lr / 100])

    def __init__(self, boundaries: list[float], values: list[float]):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstant: need one more value than boundaries, got "
                f"{len(boundaries)} boundaries and {len(values)} values"
            )
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstant: boundaries must increase, got {boundaries}")
        self.boundaries = boundaries
        self.values = [_rate("values[]", v, "PiecewiseConstant") for v in values]

    def _lr(self, step: float) -> float:
        return self.values[sum(step > b for b in self.boundaries)]


class LinearWarmup(Schedule):
    """Gradual warmup (Goyal et al. 2017): ramp linearly into ``schedule``, then follow it.

        if step < warmup_steps:           # from start to where the schedule is at warmup_steps
            lr = start + (schedule(warmup_steps) - start) * step / warmup_steps
        else:
            lr = schedule(step)           # unshifted: the warmup overlays the schedule's start

    ``schedule`` may be a number (a constant). To *delay* a schedule until after the warmup
    instead, use ``Sequence([LinearWarmup(peak, w), schedule], [w])``. Also exported as ``Warmup``.

    >>> lr = LinearWarmup(0.1, warmup_steps=10)
    >>> lr(0), lr(5), lr(10), lr(500)
    (0.0, 0.05, 0.1, 0.1)
    """

    _fields = ("schedule", "warmup_steps", "start")

    def __init__(self, schedule: Schedule | float, warmup_steps: int, start: float = 0.0):
        self.schedule = _schedule(schedule, "LinearWarmup")
        self.warmup_steps = _steps("warmup_steps", warmup_steps, "LinearWarmup", minimum=0)
        self.start = _rate("start", start, "LinearWarmup")

    def _lr(self, step: float) -> float:
        if step < self.warmup_steps:
            target = self.schedule(self.warmup_steps)
            return self.start + (target - self.start) * step / self.warmup_steps
        return self.schedule(step)


Warmup = LinearWarmup


class OneCycle(Schedule):
    """The 1cycle policy (Smith & Topin 2018): torch ``OneCycleLR``'s learning rate,
    ``three_phase=False``.

        low, high = max_value / div_factor, max_value
        final = low / final_div_factor
        up = pct_start * total_steps - 1           # the step where lr peaks
        step = min(step, total_steps - 1)          # stays at final afterwards (torch raises)
        if step <= up:  lr = anneal(low, high, step / up)
        else:           lr = anneal(high, final, (step - up) / (total_steps - 1 - up))
        # anneal="cos":    anneal(a, b, t) = b + (a - b) * 0.5 * (1 + math.cos(math.pi * t))
        # anneal="linear": anneal(a, b, t) = a + (b - a) * t

    >>> lr = OneCycle(1.0, total_steps=11, pct_start=0.5, div_factor=10.0, anneal="linear")
    >>> [round(lr(s), 8) for s in (0, 4.5, 10)]  # low, high, final = low / 1e4
    [0.1, 1.0, 1e-05]
    """

    _fields = ("max_value", "total_steps", "pct_start", "div_factor", "final_div_factor", "anneal")
    name, own_warmup = "onecycle", True

    @classmethod
    def for_run(cls, plan: RunPlan) -> Schedule:
        return cls(plan.lr, plan.total)

    def __init__(
        self,
        max_value: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal: str = "cos",
    ) -> None:
        self.max_value = _rate("max_value", max_value, "OneCycle")
        self.total_steps = _steps("total_steps", total_steps, "OneCycle", minimum=2)
        self.pct_start = float(pct_start)
        if not (0.0 < self.pct_start < 1.0 and self.pct_start * self.total_steps > 1.0):
            raise ValueError(
                "OneCycle: need 0 < pct_start < 1 and pct_start * total_steps > 1 (a warmup "
                f"of at least one step), got pct_start={pct_start}, total_steps={total_steps}"
            )
        self.div_factor = _positive("div_factor", div_factor, "OneCycle")
        self.final_div_factor = _positive("final_div_factor", final_div_factor, "OneCycle")
        if anneal not in ("cos", "linear"):
            raise ValueError(f"OneCycle: anneal must be 'cos' or 'linear', got {anneal!r}")
        self.anneal = anneal

    def _anneal(self, a: float, b: float, t: float) -> float:
        if self.anneal == "cos":
            return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))
        return a + (b - a) * t

    def _lr(self, step: float) -> float:
        low = self.max_value / self.div_factor
        final = low / self.final_div_factor
        up, last = self.pct_start * self.total_steps - 1.0, self.total_steps - 1.0
        step = min(step, last)
        if step <= up:
            return self._anneal(low, self.max_value, step / up)
        return self._anneal(self.max_value, final, (step - up) / (last - up))


class Sequence(Schedule):
    """Schedules one after another (Optax ``join_schedules``; torch ``SequentialLR``).

        i = sum(step >= b for b in boundaries)     # a boundary starts the next segment
        start = 0 if i == 0 else boundaries[i - 1]
        lr = schedules[i](step - start)            # each schedule sees its own step count

    Numbers among ``schedules`` are constants. Also exported as ``join``.

    >>> lr = Sequence([LinearWarmup(0.1, 10), ExponentialDecay(0.1, 10, 0.5)], boundaries=[10])
    >>> lr(5), lr(10), lr(20)
    (0.05, 0.1, 0.05)
    """

    _fields = ("schedules", "boundaries")

    def __init__(self, schedules: list[Schedule | float], boundaries: list[float]):
        self.schedules = [_schedule(s, "Sequence") for s in schedules]
        self.boundaries = [float(b) for b in boundaries]
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                "Sequence: need one boundary between each pair of schedules, got "
                f"{len(self.schedules)} schedules and {len(self.boundaries)} boundaries"
            )
        if any(b <= a for a, b in zip([0.0, *self.boundaries], self.boundaries)):
            raise ValueError(
                f"Sequence: boundaries must be > 0 and increasing, got {self.boundaries}"
            )

    def _lr(self, step: float) -> float:
        i = sum(step >= b for b in self.boundaries)
        start = self.boundaries[i - 1] if i else 0.0
        return self.schedules[i](step - start)


def join(schedules: list[Schedule | float], boundaries: list[float]) -> Sequence:
    """Alias of :class:`Sequence` (Optax's name)."""
    return Sequence(schedules, boundaries)


class PerEpoch(Schedule):
    """A schedule written in epochs, applied per step: ``lr = schedule(step // steps_per_epoch)``.

    The learning rate changes only at epoch starts, like a torch scheduler stepped once per epoch.

    >>> lr = per_epoch(ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5), steps_per_epoch=100)
    >>> lr(0), lr(99), lr(100), lr(250)
    (0.1, 0.1, 0.05, 0.025)
    """

    _fields = ("schedule", "steps_per_epoch")

    def __init__(self, schedule: Schedule | float, steps_per_epoch: int):
        self.schedule = _schedule(schedule, "PerEpoch")
        self.steps_per_epoch = _steps("steps_per_epoch", steps_per_epoch, "PerEpoch")

    def _lr(self, step: float) -> float:
        return self.schedule(step // self.steps_per_epoch)


def per_epoch(schedule: Schedule | float, steps_per_epoch: int) -> PerEpoch:
    """Evaluate ``schedule`` (whose step is an epoch index) at ``step // steps_per_epoch``."""
    return PerEpoch(schedule, steps_per_epoch)


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    """Number of optimizer steps in ``epochs`` epochs (rounded to the nearest step).

    >>> epochs_to_steps(2.5, steps_per_epoch=100)
    250
    """
    steps_per_epoch = _steps("steps_per_epoch", steps_per_epoch, "epochs_to_steps")
    if not (math.isfinite(epochs) and epochs >= 0):
        raise ValueError(f"epochs_to_steps: epochs must be >= 0, got {epochs}")
    return round(epochs * steps_per_epoch)


def names() -> list[str]:
    """The schedules ``nabla train --schedule`` offers, in the order they were defined."""
    return list(_RUN_NAMES)


def get(name: str) -> type[Schedule]:
    """The schedule class offered as ``--schedule name``; a ``KeyError`` naming them all."""
    if name not in _RUN_NAMES:
        raise KeyError(f"unknown schedule {name!r}; the schedules are: {', '.join(_RUN_NAMES)}")
    return _RUN_NAMES[name]


def for_run(name: str, plan: RunPlan) -> Schedule:
    """Schedule ``name`` over a run of ``plan``, after a linear warmup of ``plan.warmup`` updates
    where it has no warmup of its own.

    >>> for_run("step", RunPlan(0.1, total=100)).values
    [0.1, 0.01, 0.001]
    """
    cls = get(name)
    schedule = cls.for_run(plan)
    if plan.warmup and not cls.own_warmup:
        return LinearWarmup(schedule, plan.warmup)
    return schedule
