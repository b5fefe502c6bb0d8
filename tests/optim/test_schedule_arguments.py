"""The schedules' arguments: the default arguments (Keras' and torch's documented ones, read
from their own signatures) and the exact boundaries of every argument check (the smallest valid
value passes, the next invalid one is refused, with a message naming the schedule, the argument
and the value).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from nabla.optim.schedules import (
    Constant,
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    LinearWarmup,
    OneCycle,
    PerEpoch,
    PiecewiseConstant,
    PolynomialDecay,
    Schedule,
    Sequence,
    epochs_to_steps,
)

# --- defaults: Keras' and torch's, read from their sources ----------------------------------------


def keras_defaults(class_name: str) -> dict:
    """The keyword defaults of a Keras 3 schedule's ``__init__``, read from its source file
    without importing Keras (which takes a minute to start)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("keras is not installed")
    path = Path(spec.submodule_search_locations[0], "src/optimizers/schedules")
    tree = ast.parse((path / "learning_rate_schedule.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = init.args.args[len(init.args.args) - len(init.args.defaults) :]
    return {a.arg: ast.literal_eval(d) for a, d in zip(args, init.args.defaults)}


def our_defaults(cls) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


# nabla class -> (Keras class, {our argument: Keras' name})
KERAS = {
    ExponentialDecay: ("ExponentialDecay", {"staircase": "staircase"}),
    InverseTimeDecay: ("InverseTimeDecay", {"staircase": "staircase"}),
    PolynomialDecay: (
        "PolynomialDecay",
        {"end": "end_learning_rate", "power": "power", "cycle": "cycle"},
    ),
    CosineDecay: (
        "CosineDecay",
        {"alpha": "alpha", "warmup_target": "warmup_target", "warmup_steps": "warmup_steps"},
    ),
    CosineDecayRestarts: (
        "CosineDecayRestarts",
        {"t_mul": "t_mul", "m_mul": "m_mul", "alpha": "alpha"},
    ),
}


@pytest.mark.parametrize("cls", KERAS, ids=lambda c: c.__name__)
def test_defaults_are_keras_defaults(cls):
    keras_name, names = KERAS[cls]
    theirs = keras_defaults(keras_name)
    ours = our_defaults(cls)
    assert set(ours) == set(names)
    for ours_name, their_name in names.items():
        assert ours[ours_name] == theirs[their_name], ours_name


def test_one_cycle_defaults_are_torch_one_cycle_lr_defaults():
    theirs = inspect.signature(lr_scheduler.OneCycleLR.__init__).parameters
    ours = our_defaults(OneCycle)
    assert ours["pct_start"] == theirs["pct_start"].default
    assert ours["div_factor"] == theirs["div_factor"].default
    assert ours["final_div_factor"] == theirs["final_div_factor"].default
    assert ours["anneal"] == theirs["anneal_strategy"].default


def test_default_arguments_give_the_default_curve():
    """Calling with the defaults left out gives the curve of the explicit defaults (so the
    defaults are not just declared but used)."""
    steps = [0, 3, 7, 10, 15, 31, 100]
    pairs = [
        (
            PolynomialDecay(0.1, 10),
            PolynomialDecay(0.1, 10, end=1e-4, power=1.0, cycle=False),
        ),
        (CosineDecay(0.1, 10), CosineDecay(0.1, 10, alpha=0.0)),
        (
            CosineDecayRestarts(0.1, 5),
            CosineDecayRestarts(0.1, 5, t_mul=2.0, m_mul=1.0, alpha=0.0),
        ),
        (ExponentialDecay(0.1, 3, 0.5), ExponentialDecay(0.1, 3, 0.5, staircase=False)),
        (InverseTimeDecay(0.1, 3, 0.5), InverseTimeDecay(0.1, 3, 0.5, staircase=False)),
        (OneCycle(1.0, 20), OneCycle(1.0, 20, 0.3, 25.0, 1e4, "cos")),
        (LinearWarmup(0.1, 4), LinearWarmup(0.1, 4, start=0.0)),
    ]
    for implicit, explicit in pairs:
        assert [implicit(s) for s in steps] == [explicit(s) for s in steps]
    # and the torch curve for OneCycleLR's defaults, up to its last step
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=20, cycle_momentum=False)
    theirs = []
    for _ in range(20):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose([OneCycle(1.0, 20)(s) for s in range(20)], theirs, rtol=1e-12)


# --- argument checks: each boundary on both sides -----------------------------------------------

# (a schedule built with a valid boundary value, the same with the first invalid one, match)
# fmt: off
BOUNDARIES = {
    "rate_zero_ok_negative_not": (lambda: Constant(0.0), lambda: Constant(-1e-12),
        r"Constant: value must be a finite number >= 0, got -1e-12"),
    "rate_infinite": (lambda: ExponentialDecay(1e300, 1, 0.5),
        lambda: ExponentialDecay(math.inf, 1, 0.5),
        r"ExponentialDecay: initial must be a finite number >= 0, got inf"),
    "positive_decay_steps": (lambda: ExponentialDecay(0.1, 1e-12, 0.5),
        lambda: ExponentialDecay(0.1, 0.0, 0.5),
        r"ExponentialDecay: decay_steps must be a finite number > 0, got 0.0"),
    "positive_infinite": (lambda: ExponentialDecay(0.1, 1.0, 1e300),
        lambda: ExponentialDecay(0.1, 1.0, math.inf),
        r"ExponentialDecay: decay_rate must be a finite number > 0, got inf"),
    "polynomial_end": (lambda: PolynomialDecay(0.1, 10, end=0.0),
        lambda: PolynomialDecay(0.1, 10, end=-0.5),
        r"PolynomialDecay: end must be a finite number >= 0, got -0.5"),
    "polynomial_power": (lambda: PolynomialDecay(0.1, 10, power=1e-9),
        lambda: PolynomialDecay(0.1, 10, power=0.0),
        r"PolynomialDecay: power must be a finite number > 0, got 0.0"),
    "polynomial_decay_steps": (lambda: PolynomialDecay(0.1, 1e-9), lambda: PolynomialDecay(0.1, 0),
        r"PolynomialDecay: decay_steps must be a finite number > 0, got 0"),
    "polynomial_initial": (lambda: PolynomialDecay(0.0, 10), lambda: PolynomialDecay(-0.1, 10),
        r"PolynomialDecay: initial must be a finite number >= 0, got -0.1"),
    "inverse_time_rate": (lambda: InverseTimeDecay(0.1, 10, 0.0),
        lambda: InverseTimeDecay(0.1, 10, -0.5),
        r"InverseTimeDecay: decay_rate must be a finite number >= 0, got -0.5"),
    "inverse_time_initial": (lambda: InverseTimeDecay(0.0, 10, 1.0),
        lambda: InverseTimeDecay(-0.5, 10, 1.0),
        r"InverseTimeDecay: initial must be a finite number >= 0, got -0.5"),
    "inverse_time_steps": (lambda: InverseTimeDecay(0.1, 1e-9, 1.0),
        lambda: InverseTimeDecay(0.1, -1.0, 1.0),
        r"InverseTimeDecay: decay_steps must be a finite number > 0, got -1.0"),
    "inverse_sqrt_warmup": (lambda: InverseSqrtDecay(0.1, 1), lambda: InverseSqrtDecay(0.1, 0),
        r"InverseSqrtDecay: warmup_steps must be an integer >= 1, got 0"),
    "inverse_sqrt_initial": (lambda: InverseSqrtDecay(0.0, 1), lambda: InverseSqrtDecay(-0.5, 1),
        r"InverseSqrtDecay: initial must be a finite number >= 0, got -0.5"),
    "steps_whole": (lambda: InverseSqrtDecay(0.1, 2.0), lambda: InverseSqrtDecay(0.1, 2.5),
        r"InverseSqrtDecay: warmup_steps must be an integer >= 1, got 2.5"),
    "steps_not_bool": (lambda: InverseSqrtDecay(0.1, 1), lambda: InverseSqrtDecay(0.1, True),
        r"InverseSqrtDecay: warmup_steps must be an integer >= 1, got True"),
    "cosine_alpha_zero": (lambda: CosineDecay(0.1, 10, alpha=0.0),
        lambda: CosineDecay(0.1, 10, alpha=-1e-9),
        r"CosineDecay: alpha must be in \[0, 1\], got -1e-09"),
    "cosine_alpha_one": (lambda: CosineDecay(0.1, 10, alpha=1.0),
        lambda: CosineDecay(0.1, 10, alpha=1.0 + 1e-9),
        r"CosineDecay: alpha must be in \[0, 1\], got 1.000000001"),
    "cosine_warmup_steps": (lambda: CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=0),
        lambda: CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1),
        r"CosineDecay: warmup_steps must be an integer >= 0, got -1"),
    "cosine_warmup_target": (lambda: CosineDecay(0.1, 10, warmup_target=0.0, warmup_steps=2),
        lambda: CosineDecay(0.1, 10, warmup_target=-0.5, warmup_steps=2),
        r"CosineDecay: warmup_target must be a finite number >= 0, got -0.5"),
    "cosine_initial_and_steps": (lambda: CosineDecay(0.0, 1e-9), lambda: CosineDecay(0.1, 0.0),
        r"CosineDecay: decay_steps must be a finite number > 0, got 0.0"),
    "cosine_initial": (lambda: CosineDecay(0.0, 1), lambda: CosineDecay(-0.5, 1),
        r"CosineDecay: initial must be a finite number >= 0, got -0.5"),
    "restarts_t_mul": (lambda: CosineDecayRestarts(0.1, 10, t_mul=1.0),
        lambda: CosineDecayRestarts(0.1, 10, t_mul=1.0 - 1e-9),
        r"CosineDecayRestarts: t_mul must be >= 1 \(periods never shrink\), got 0.999999999"),
    "restarts_t_mul_infinite": (lambda: CosineDecayRestarts(0.1, 10, t_mul=1e300),
        lambda: CosineDecayRestarts(0.1, 10, t_mul=math.inf),
        r"CosineDecayRestarts: t_mul must be >= 1 \(periods never shrink\), got inf"),
    "restarts_m_mul": (lambda: CosineDecayRestarts(0.1, 10, m_mul=0.0),
        lambda: CosineDecayRestarts(0.1, 10, m_mul=-0.5),
        r"CosineDecayRestarts: m_mul must be a finite number >= 0, got -0.5"),
    "restarts_alpha_low": (lambda: CosineDecayRestarts(0.1, 10, alpha=0.0),
        lambda: CosineDecayRestarts(0.1, 10, alpha=-1e-9),
        r"CosineDecayRestarts: alpha must be in \[0, 1\], got -1e-09"),
    "restarts_alpha_high": (lambda: CosineDecayRestarts(0.1, 10, alpha=1.0),
        lambda: CosineDecayRestarts(0.1, 10, alpha=1.5),
        r"CosineDecayRestarts: alpha must be in \[0, 1\], got 1.5"),
    "restarts_first_steps": (lambda: CosineDecayRestarts(0.1, 1e-9),
        lambda: CosineDecayRestarts(0.1, 0),
        r"CosineDecayRestarts: first_decay_steps must be a finite number > 0, got 0"),
    "restarts_initial": (lambda: CosineDecayRestarts(0.0, 1), lambda: CosineDecayRestarts(-0.5, 1),
        r"CosineDecayRestarts: initial must be a finite number >= 0, got -0.5"),
    "piecewise_lengths": (lambda: PiecewiseConstant([], [0.1]),
        lambda: PiecewiseConstant([], [0.1, 0.2]),
        r"PiecewiseConstant: need one more value than boundaries, got 0 boundaries and 2 values"),
    "piecewise_equal_boundaries": (lambda: PiecewiseConstant([1, 2], [0.3, 0.2, 0.1]),
        lambda: PiecewiseConstant([1, 1], [0.3, 0.2, 0.1]),
        r"PiecewiseConstant: boundaries must increase, got \[1, 1\]"),
    "piecewise_values": (lambda: PiecewiseConstant([1], [0.0, 0.1]),
        lambda: PiecewiseConstant([1], [0.1, -0.5]),
        r"PiecewiseConstant: values\[\] must be a finite number >= 0, got -0.5"),
    "warmup_steps": (lambda: LinearWarmup(0.1, 0), lambda: LinearWarmup(0.1, -1),
        r"LinearWarmup: warmup_steps must be an integer >= 0, got -1"),
    "warmup_start": (lambda: LinearWarmup(0.1, 2, start=0.0),
        lambda: LinearWarmup(0.1, 2, start=-0.5),
        r"LinearWarmup: start must be a finite number >= 0, got -0.5"),
    "warmup_schedule": (lambda: LinearWarmup(1, 2), lambda: LinearWarmup(True, 2),
        r"LinearWarmup: expected a Schedule or a number, got True"),
    "one_cycle_total": (lambda: OneCycle(1.0, 4, pct_start=0.5),
        lambda: OneCycle(1.0, 1, pct_start=0.5),
        r"OneCycle: total_steps must be an integer >= 2, got 1"),
    "one_cycle_max": (lambda: OneCycle(0.0, 10), lambda: OneCycle(-1.0, 10),
        r"OneCycle: max_value must be a finite number >= 0, got -1.0"),
    "one_cycle_warmup_of_one_step": (lambda: OneCycle(1.0, 10, pct_start=0.2 + 1e-9),
        lambda: OneCycle(1.0, 10, pct_start=0.1),
        r"OneCycle: need 0 < pct_start < 1 and pct_start \* total_steps > 1 .*" r"got"
        r" pct_start=0.1, total_steps=10"),
    "one_cycle_pct_one": (lambda: OneCycle(1.0, 1000, pct_start=0.99),
        lambda: OneCycle(1.0, 1000, pct_start=1.0),
        r"OneCycle: need 0 < pct_start < 1"),
    "one_cycle_pct_zero": (lambda: OneCycle(1.0, 10, pct_start=0.5),
        lambda: OneCycle(1.0, 10, pct_start=0.0),
        r"OneCycle: need 0 < pct_start < 1"),
    "one_cycle_div": (lambda: OneCycle(1.0, 10, div_factor=1e-9),
        lambda: OneCycle(1.0, 10, div_factor=0.0),
        r"OneCycle: div_factor must be a finite number > 0, got 0.0"),
    "one_cycle_final_div": (lambda: OneCycle(1.0, 10, final_div_factor=1e-9),
        lambda: OneCycle(1.0, 10, final_div_factor=0.0),
        r"OneCycle: final_div_factor must be a finite number > 0, got 0.0"),
    "one_cycle_anneal": (lambda: OneCycle(1.0, 10, anneal="linear"),
        lambda: OneCycle(1.0, 10, anneal="cosine"),
        r"OneCycle: anneal must be 'cos' or 'linear', got 'cosine'"),
    "sequence_lengths": (lambda: Sequence([0.1, 0.2], [5]), lambda: Sequence([0.1, 0.2], []),
        r"Sequence: need one boundary between each pair of schedules, got 2 schedules and 0 "
        r"boundaries"),
    "sequence_first_boundary": (lambda: Sequence([0.1, 0.2], [1e-9]),
        lambda: Sequence([0.1, 0.2], [0]),
        r"Sequence: boundaries must be > 0 and increasing, got \[0.0\]"),
    "sequence_equal_boundaries": (lambda: Sequence([0.1, 0.2, 0.3], [2, 3]),
        lambda: Sequence([0.1, 0.2, 0.3], [2, 2]),
        r"Sequence: boundaries must be > 0 and increasing, got \[2.0, 2.0\]"),
    "sequence_member": (lambda: Sequence([0.1, Constant(0.2)], [2]),
        lambda: Sequence([0.1, "0.2"], [2]),
        r"Sequence: expected a Schedule or a number, got '0.2'"),
    "per_epoch_steps": (lambda: PerEpoch(0.1, 1), lambda: PerEpoch(0.1, 0),
        r"PerEpoch: steps_per_epoch must be an integer >= 1, got 0"),
    "per_epoch_schedule": (lambda: PerEpoch(Constant(0.1), 1), lambda: PerEpoch(None, 1),
        r"PerEpoch: expected a Schedule or a number, got None"),
}
# fmt: on


@pytest.mark.parametrize("case", BOUNDARIES)
def test_argument_boundaries(case):
    valid, invalid, match = BOUNDARIES[case]
    assert isinstance(valid(), Schedule)
    with pytest.raises(ValueError, match=match):
        invalid()


def test_epochs_to_steps_boundaries():
    assert epochs_to_steps(0, 10) == 0
    assert epochs_to_steps(0.26, 10) == 3  # rounds to the nearest step
    assert epochs_to_steps(3, 1) == 3
    with pytest.raises(ValueError, match=r"epochs_to_steps: epochs must be >= 0, got -0.1"):
        epochs_to_steps(-0.1, 10)
    with pytest.raises(ValueError, match=r"epochs_to_steps: epochs must be >= 0, got inf"):
        epochs_to_steps(math.inf, 10)
    with pytest.raises(ValueError, match=r"epochs_to_steps: steps_per_epoch must be an integer"):
        epochs_to_steps(1, 0)


def test_step_zero_is_valid_and_the_message_names_the_schedule():
    assert Constant(0.5)(0) == 0.5
    assert Constant(0.5)(-0.0) == 0.5
    with pytest.raises(ValueError, match=r"Constant: step must be >= 0, got -1e-09"):
        Constant(0.5)(-1e-9)
    with pytest.raises(ValueError, match=r"Constant: step must be >= 0, got nan"):
        Constant(0.5)(math.nan)
    with pytest.raises(NotImplementedError):
        Schedule()(0)
