"""Details of the learning-rate schedules that the formula tests leave open.

test_schedules.py checks each schedule's values against Keras, torch and a NumPy formula; this
file pins what those leave free: the values at the points where a branch changes (cycle, warmup
and restart boundaries) and the text forms (repr, configs).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from nabla.optim import schedules
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
    from_config,
)

# --- formulas at the points where a branch changes ------------------------------------------------


def test_polynomial_cycle_restarts_at_each_multiple():
    """cycle=True: the decay length is the next multiple of decay_steps (Keras), so the rate
    reaches end exactly at each multiple and jumps back up just after."""
    lr = PolynomialDecay(1.0, 10, end=0.0, power=1.0, cycle=True)
    assert lr(0) == 1.0
    assert lr(10) == 0.0
    assert lr(15) == pytest.approx(0.25)  # decay over 20 steps: 1 - 15 / 20
    assert lr(20) == 0.0
    assert lr(5) == pytest.approx(0.5)
    lr_once = PolynomialDecay(1.0, 10, end=0.0, power=1.0)
    assert lr_once(15) == 0.0  # without cycle it stays at end


def test_cosine_warmup_boundaries():
    lr = CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4)
    assert lr(0) == 0.0
    assert lr(2) == pytest.approx(0.5)
    assert lr(4) == 1.0  # the peak: the warmup has ended, the cosine starts at its top
    assert lr(9) == pytest.approx(0.5)
    assert lr(14) == pytest.approx(0.0, abs=1e-15)
    assert lr(100) == pytest.approx(0.0, abs=1e-15)
    # without warmup_target, warmup_steps does not count (Keras)
    assert CosineDecay(1.0, 10, warmup_steps=4)(0) == 1.0
    assert CosineDecay(1.0, 10, warmup_steps=4)(5) == pytest.approx(0.5)
    # alpha: the floor as a fraction of the peak
    assert CosineDecay(2.0, 10, alpha=0.25)(10) == pytest.approx(0.5)
    assert CosineDecay(2.0, 10, alpha=0.25)(5) == pytest.approx(2.0 * (0.75 * 0.5 + 0.25))


def test_restarts_with_t_mul_one_and_alpha():
    lr = CosineDecayRestarts(1.0, 4, t_mul=1.0, m_mul=0.5, alpha=0.2)
    expected = [
        0.2 + 0.8 * 0.5**i * 0.5 * (1 + math.cos(math.pi * t / 4))
        for i in range(3)
        for t in range(4)
    ]
    np.testing.assert_allclose([lr(s) for s in range(12)], expected, rtol=1e-12)
    # t_mul = 2: periods 4, 8, 16 starting at steps 0, 4, 12, 28
    lr = CosineDecayRestarts(1.0, 4, t_mul=2.0)
    for start, length in [(0, 4), (4, 8), (12, 16), (28, 32)]:
        assert lr(start) == 1.0
        assert lr(start + length / 2) == pytest.approx(0.5)


def test_restarts_where_the_logarithm_misjudges_the_period():
    """The period index comes from a logarithm, then is nudged to the period boundaries: with
    t_mul = 3 the logarithm lands one period short at steps 1, 4, 13, 40 and 121 (each the first
    step of a period: the rate restarts at its peak), and with t_mul = 1.3 one period long at
    step 23 (see the notes on that boundary; here only that it returns a rate in range)."""
    lr = CosineDecayRestarts(1.0, 1, t_mul=3.0)
    assert [lr(s) for s in (1, 4, 13, 40, 121)] == [1.0] * 5
    assert lr(2.5) == pytest.approx(0.5)  # the middle of period 1 (steps 1 to 4)
    assert 0.0 <= CosineDecayRestarts(1.0, 10, t_mul=1.3)(23) <= 1.0


def test_restarts_after_a_trillion_steps_still_end_each_period_on_its_last_step():
    """Periods 1000 * 10**i: period 10 ends after 1000 * (10**11 - 1) / 9 = 11111111111000 steps.
    Its last step is near the bottom of the cosine and the next one is a restart at the peak."""
    lr = CosineDecayRestarts(1.0, 1000, t_mul=10.0)
    end = 1000 * (10**11 - 1) // 9
    assert lr(end - 1) < 1e-6
    assert lr(end) == 1.0
    assert lr(end - 5 * 10**12) == pytest.approx(0.5, abs=1e-6)  # the middle of its 10**13 steps


def test_linear_warmup_at_its_end_and_in_the_middle():
    lr = LinearWarmup(ExponentialDecay(1.0, 1, 0.5), 4, start=0.2)
    target = 0.5**4
    assert lr(0) == 0.2
    assert lr(2) == pytest.approx(0.2 + (target - 0.2) / 2)
    assert lr(4) == target
    assert lr(5) == 0.5**5
    assert LinearWarmup(0.3, 0)(0) == 0.3  # no warmup


def test_one_cycle_after_the_end_and_at_the_peak():
    lr = OneCycle(2.0, 11, pct_start=0.5, div_factor=4.0, final_div_factor=10.0)
    assert lr(0) == 0.5
    assert lr(4.5) == 2.0  # up = 0.5 * 11 - 1
    assert lr(10) == pytest.approx(0.05)
    assert lr(1000) == lr(10)  # stays at the final value
    late = OneCycle(1.0, 10, pct_start=0.95)  # peak at step 8.5: one annealing step is enough
    assert late(8.5) == 1.0 and late(9) == pytest.approx(1.0 / 25 / 1e4)
    linear = OneCycle(
        2.0, 11, pct_start=0.5, div_factor=4.0, final_div_factor=10.0, anneal="linear"
    )
    assert linear(2.25) == pytest.approx(1.25)  # halfway up: (0.5 + 2) / 2
    assert linear(7.25) == pytest.approx((2.0 + 0.05) / 2)  # halfway down


def test_sequence_and_per_epoch_count_from_their_start():
    lr = Sequence([Constant(0.1), ExponentialDecay(1.0, 1, 0.5), 0.01], [3, 5])
    assert [lr(s) for s in range(7)] == [0.1, 0.1, 0.1, 1.0, 0.5, 0.01, 0.01]
    lr = PerEpoch(ExponentialDecay(1.0, 1, 0.5), 3)
    assert [lr(s) for s in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    assert schedules.per_epoch(0.1, 3).get_config() == PerEpoch(0.1, 3).get_config()
    assert schedules.join([0.1, 0.2], [3])(3) == 0.2


def test_inverse_time_staircase():
    lr = InverseTimeDecay(1.0, 10, 1.0, staircase=True)
    assert [lr(s) for s in (0, 9, 10, 19, 20)] == [1.0, 1.0, 0.5, 0.5, 1 / 3]
    assert InverseTimeDecay(1.0, 10, 1.0)(5) == pytest.approx(1 / 1.5)


# --- text forms: repr and configs -----------------------------------------------------------------


def test_repr_evaluates_back_to_the_same_schedule():
    namespace = {name: getattr(schedules, name) for name in schedules.__all__}
    for schedule in [
        ExponentialDecay(0.1, 10, 0.5, staircase=True),
        LinearWarmup(CosineDecay(0.1, 100, alpha=0.1), 5, start=0.01),
        PiecewiseConstant([10, 20], [0.3, 0.2, 0.1]),
        Sequence([Constant(0.1), OneCycle(1.0, 10, anneal="linear")], [4]),
    ]:
        text = repr(schedule)
        assert text.startswith(type(schedule).__name__ + "(")
        assert eval(text, namespace).get_config() == schedule.get_config()
    assert repr(Constant(0.5)) == "Constant(value=0.5)"
    assert repr(InverseSqrtDecay(0.5, 4)) == "InverseSqrtDecay(initial=0.5, warmup_steps=4)"


def test_config_holds_every_argument_under_its_name():
    config = CosineDecayRestarts(0.1, 10, t_mul=1.5, m_mul=0.5, alpha=0.1).get_config()
    assert config == {
        "class_name": "CosineDecayRestarts",
        "config": {
            "initial": 0.1,
            "first_decay_steps": 10.0,
            "t_mul": 1.5,
            "m_mul": 0.5,
            "alpha": 0.1,
        },
    }
    nested = Sequence([LinearWarmup(0.1, 2), 0.05], [2]).get_config()
    assert nested["config"]["schedules"][0] == {
        "class_name": "LinearWarmup",
        "config": {
            "schedule": {"class_name": "Constant", "config": {"value": 0.1}},
            "warmup_steps": 2,
            "start": 0.0,
        },
    }
    assert nested["config"]["boundaries"] == [2.0]
    rebuilt = from_config(nested)
    assert [rebuilt(s) for s in range(4)] == [0.0, 0.05, 0.05, 0.05]
    # tuples are stored as lists
    assert PiecewiseConstant((1,), (0.2, 0.1)).get_config()["config"]["boundaries"] == [1]


def test_from_config_on_a_class_checks_the_class():
    config = ExponentialDecay(0.1, 10, 0.5).get_config()
    assert isinstance(ExponentialDecay.from_config(config), ExponentialDecay)
    assert isinstance(Schedule.from_config(config), ExponentialDecay)
    with pytest.raises(ValueError, match=r"CosineDecay.from_config got a ExponentialDecay config"):
        CosineDecay.from_config(config)
    with pytest.raises(ValueError, match=r"from_config: unknown schedule 'Nope'; known: \["):
        from_config({"class_name": "Nope"})
    with pytest.raises(ValueError, match=r"from_config expects a dict with a 'class_name', got"):
        from_config({"config": {}})
    assert from_config({"class_name": "Constant", "config": {"value": 0.2}})(7) == 0.2


@pytest.mark.parametrize("t_mul", [1.05, 1.1, 1.3, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("first", [7, 10, 20])
def test_cosine_restarts_restart_exactly_where_the_periods_end(t_mul, first):
    """Period k lasts first * t_mul**k steps; the restarts are found with exact rational
    arithmetic and every step's rate compared (t_mul = 1.3 put the restart at step 23 one step
    late: 23 / 10 and the end of the second period differ by one ulp in floats)."""
    r = Fraction(t_mul).limit_denominator(1000)
    lr = schedules.CosineDecayRestarts(1.0, first, t_mul=t_mul)
    for step in range(1500):
        fraction, i = Fraction(step, first), 0
        while (r ** (i + 1) - 1) / (r - 1) <= fraction:
            i += 1
        t = (fraction - (r**i - 1) / (r - 1)) / r**i
        assert lr(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * float(t))), abs=1e-12)
