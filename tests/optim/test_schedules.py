"""Learning-rate schedules against formulas written here, live Keras 3 and
torch.optim.lr_scheduler."""

import json
import math
import os

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
    Warmup,
    epochs_to_steps,
    from_config,
    join,
    per_epoch,
)

# Reference formulas, written from the papers / Keras docs independently of nabla's code: a
# reference takes a NumPy array of steps and returns the learning rates.


def ref_exponential(s, initial, decay_steps, rate, staircase=False):
    p = np.floor(s / decay_steps) if staircase else s / decay_steps
    return initial * np.power(rate, p)


def ref_polynomial(s, initial, decay_steps, end=1e-4, power=1.0, cycle=False):
    if cycle:
        d = decay_steps * np.where(s == 0, 1.0, np.ceil(s / decay_steps))
    else:
        s, d = np.minimum(s, decay_steps), decay_steps
    return end + (initial - end) * (1 - s / d) ** power


def ref_inverse_time(s, initial, decay_steps, rate, staircase=False):
    p = np.floor(s / decay_steps) if staircase else s / decay_steps
    return initial / (1 + rate * p)


def ref_cosine(s, initial, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    if warmup_target is None:
        warmup_steps, warmup_target = 0, initial
    t = np.clip(s - warmup_steps, 0, decay_steps) / decay_steps
    decay = warmup_target * (alpha + (1 - alpha) * (1 + np.cos(np.pi * t)) / 2)
    if warmup_steps == 0:
        return decay
    ramp = initial + (warmup_target - initial) * s / warmup_steps
    return np.where(s < warmup_steps, ramp, decay)


def ref_restarts(s, initial, first, t_mul=2.0, m_mul=1.0, alpha=0.0):
    # Enumerate the periods explicitly: period i covers [start_i, start_i + first * t_mul**i).
    out = []
    for step in np.asarray(s, dtype=float):
        i, start, length = 0, 0.0, float(first)
        while step >= start + length:
            start, length, i = start + length, length * t_mul, i + 1
        t = (step - start) / length
        out.append(initial * (alpha + (1 - alpha) * m_mul**i * (1 + math.cos(math.pi * t)) / 2))
    return np.array(out)


def ref_piecewise(s, boundaries, values):
    # values[i] where boundaries[i-1] < step <= boundaries[i]
    return np.asarray(values)[np.searchsorted(boundaries, s, side="left")]


# (nabla schedule, Keras class name and kwargs, reference, steps worth checking)
CASES = {
    "exponential": (
        ExponentialDecay(0.1, 100, 0.5),
        ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=100, decay_rate=0.5)),
        lambda s: ref_exponential(s, 0.1, 100, 0.5),
        [0, 1, 50, 99, 100, 101, 250, 1000],
    ),
    "exponential_staircase": (
        ExponentialDecay(0.1, 100, 0.5, staircase=True),
        (
            "ExponentialDecay",
            dict(initial_learning_rate=0.1, decay_steps=100, decay_rate=0.5, staircase=True),
        ),
        lambda s: ref_exponential(s, 0.1, 100, 0.5, staircase=True),
        [0, 1, 99, 100, 101, 199, 200, 1000],
    ),
    "polynomial": (
        PolynomialDecay(0.1, 100, power=2.0),
        ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=100, power=2.0)),
        lambda s: ref_polynomial(s, 0.1, 100, power=2.0),
        [0, 1, 50, 99, 100, 101, 500],
    ),
    "polynomial_cycle": (
        PolynomialDecay(0.1, 100, end=0.01, power=0.5, cycle=True),
        (
            "PolynomialDecay",
            dict(
                initial_learning_rate=0.1,
                decay_steps=100,
                end_learning_rate=0.01,
                power=0.5,
                cycle=True,
            ),
        ),
        lambda s: ref_polynomial(s, 0.1, 100, end=0.01, power=0.5, cycle=True),
        [0, 1, 50, 100, 101, 150, 200, 201, 350],
    ),
    "inverse_time": (
        InverseTimeDecay(0.1, 10, 0.5),
        ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)),
        lambda s: ref_inverse_time(s, 0.1, 10, 0.5),
        [0, 1, 9, 10, 11, 100, 10_000],
    ),
    "inverse_time_staircase": (
        InverseTimeDecay(0.1, 10, 0.5, staircase=True),
        (
            "InverseTimeDecay",
            dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True),
        ),
        lambda s: ref_inverse_time(s, 0.1, 10, 0.5, staircase=True),
        [0, 9, 10, 11, 25, 100],
    ),
    "cosine": (
        CosineDecay(0.1, 100, alpha=0.1),
        ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=100, alpha=0.1)),
        lambda s: ref_cosine(s, 0.1, 100, alpha=0.1),
        [0, 1, 50, 99, 100, 101, 1000],
    ),
    "cosine_warmup": (
        CosineDecay(0.01, 100, alpha=0.05, warmup_target=0.1, warmup_steps=20),
        (
            "CosineDecay",
            dict(
                initial_learning_rate=0.01,
                decay_steps=100,
                alpha=0.05,
                warmup_target=0.1,
                warmup_steps=20,
            ),
        ),
        lambda s: ref_cosine(s, 0.01, 100, alpha=0.05, warmup_target=0.1, warmup_steps=20),
        [0, 1, 10, 19, 20, 21, 70, 119, 120, 121, 500],
    ),
    "cosine_warmup_target_no_steps": (
        CosineDecay(0.01, 100, warmup_target=0.1),
        ("CosineDecay", dict(initial_learning_rate=0.01, decay_steps=100, warmup_target=0.1)),
        lambda s: ref_cosine(s, 0.01, 100, warmup_target=0.1),
        [0, 50, 100, 200],
    ),
    "restarts": (
        CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5, alpha=0.1),
        (
            "CosineDecayRestarts",
            dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2.0, m_mul=0.5, alpha=0.1),
        ),
        lambda s: ref_restarts(s, 0.1, 10, 2.0, 0.5, 0.1),
        [0, 5, 9, 10, 11, 29, 30, 31, 69, 70, 71, 150, 310],
    ),
    "restarts_t_mul_1": (
        CosineDecayRestarts(0.1, 10, t_mul=1.0),
        ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=1.0)),
        lambda s: ref_restarts(s, 0.1, 10, 1.0),
        [0, 5, 9, 10, 11, 20, 35, 1000],
    ),
    "restarts_t_mul_1_5": (
        CosineDecayRestarts(0.1, 8, t_mul=1.5, m_mul=0.9),
        (
            "CosineDecayRestarts",
            dict(initial_learning_rate=0.1, first_decay_steps=8, t_mul=1.5, m_mul=0.9),
        ),
        lambda s: ref_restarts(s, 0.1, 8, 1.5, 0.9),
        [0, 7, 8, 19, 20, 37, 38, 100],
    ),
    "piecewise": (
        PiecewiseConstant([10, 20, 30], [0.1, 0.05, 0.01, 0.001]),
        ("PiecewiseConstantDecay", dict(boundaries=[10, 20, 30], values=[0.1, 0.05, 0.01, 0.001])),
        lambda s: ref_piecewise(s, [10, 20, 30], [0.1, 0.05, 0.01, 0.001]),
        [0, 9, 10, 11, 20, 21, 30, 31, 100],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_reference_formula(name):
    schedule, _, reference, steps = CASES[name]
    ours = [schedule(s) for s in steps]
    np.testing.assert_allclose(ours, reference(np.array(steps, dtype=float)), rtol=1e-12)
    assert all(type(v) is float for v in ours)


@pytest.fixture(scope="module")
def keras_schedules():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip(
        "keras", reason="keras 3 is not installed; live check skipped", exc_type=ImportError
    )
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()!r}, not torch")
    return keras.optimizers.schedules


# Steps where Keras (3.15) finds the restart cycle as floor(log(1 + f (t_mul - 1)) / log t_mul) in
# float32: at the first step of a cycle the quotient can round just below the integer, so Keras
# reports the end of the previous cycle (its rate: alpha times that cycle's peak, here 0). Ours
# follows the exact formula (test_matches_reference_formula checks the same steps).
KERAS_FLOAT32_CYCLE_START = {"restarts_t_mul_1_5": {20}}


@pytest.mark.parametrize("name", CASES)
def test_matches_keras_live(name, keras_schedules):
    schedule, (keras_name, kwargs), _, steps = CASES[name]
    theirs = getattr(keras_schedules, keras_name)(**kwargs)
    expected = [float(theirs(s)) for s in steps]
    ours = [schedule(s) for s in steps]
    for i, step in enumerate(steps):
        if step in KERAS_FLOAT32_CYCLE_START.get(name, ()) and expected[i] != pytest.approx(
            ours[i]
        ):
            assert expected[i] == pytest.approx(schedule(step - 1e-9), abs=1e-6)
            expected[i] = ours[i]
    # Keras computes in float32.
    np.testing.assert_allclose(ours, expected, rtol=2e-6, atol=1e-9)


# torch.optim.lr_scheduler, where its definition coincides with ours.


def torch_lrs(make_scheduler, lr, steps):
    """The learning rates a torch optimizer uses for its updates 0 .. steps-1."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(lrs)


def values(schedule, steps):
    return np.array([schedule(k) for k in range(steps)])


def test_exponential_decay_is_torch_exponential_lr():
    expected = torch_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 0.1, 60)
    np.testing.assert_allclose(values(ExponentialDecay(0.1, 1, 0.9), 60), expected, rtol=1e-12)


def test_staircase_exponential_decay_is_torch_step_lr():
    expected = torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 0.1, 60)
    ours = ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5, staircase=True)
    np.testing.assert_allclose(values(ours, 60), expected, rtol=1e-12)


def test_cosine_decay_is_torch_cosine_annealing_lr():
    # torch updates recursively; on [0, T_max] that equals the closed form up to rounding.
    expected = torch_lrs(
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.002), 0.1, 51
    )
    ours = CosineDecay(0.1, decay_steps=50, alpha=0.002 / 0.1)
    np.testing.assert_allclose(values(ours, 51), expected, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_cosine_decay_restarts_is_torch_warm_restarts(t_mult):
    def make(o):
        return lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=t_mult, eta_min=0.01)

    expected = torch_lrs(make, 0.1, 200)
    ours = CosineDecayRestarts(0.1, first_decay_steps=5, t_mul=t_mult, alpha=0.01 / 0.1)
    np.testing.assert_allclose(values(ours, 200), expected, rtol=1e-9)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("total, pct", [(100, 0.3), (37, 0.25), (1000, 0.1)])
def test_one_cycle_is_torch_one_cycle_lr(anneal, total, pct):
    def make(o):
        return lr_scheduler.OneCycleLR(
            o,
            max_lr=0.5,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=anneal,
            div_factor=20.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        )

    expected = torch_lrs(make, 0.5, total)
    ours = OneCycle(
        0.5, total, pct_start=pct, div_factor=20.0, final_div_factor=100.0, anneal=anneal
    )
    np.testing.assert_allclose(values(ours, total), expected, rtol=1e-12)
    assert ours(total + 10) == ours(total - 1) == pytest.approx(0.5 / 20 / 100)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_decay_is_torch_polynomial_lr(power):
    def make(o):
        return lr_scheduler.PolynomialLR(o, total_iters=40, power=power)

    expected = torch_lrs(make, 0.1, 60)
    ours = PolynomialDecay(0.1, decay_steps=40, end=0.0, power=power)
    np.testing.assert_allclose(values(ours, 60), expected, rtol=1e-9, atol=1e-15)


def test_piecewise_constant_is_torch_multi_step_lr_shifted_by_one():
    # torch switches *at* a milestone, Keras just *after* a boundary.
    milestones = [10, 25, 40]
    expected = torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, milestones, gamma=0.1), 1.0, 60)
    ours = PiecewiseConstant([m - 1 for m in milestones], [1.0, 0.1, 0.01, 0.001])
    np.testing.assert_allclose(values(ours, 60), expected, rtol=1e-12)


# Schedules Keras does not have.


def test_inverse_sqrt_decay():
    lr = InverseSqrtDecay(0.01, warmup_steps=100)
    n = np.arange(1000) + 1.0
    expected = 0.01 * np.minimum(n / 100, np.sqrt(100 / n))
    np.testing.assert_allclose(values(lr, 1000), expected, rtol=1e-12)
    assert lr(99) == pytest.approx(0.01)  # the peak, where the two pieces meet
    assert max(values(lr, 1000)) == lr(99)
    # Vaswani et al.: d_model**-0.5 * min(n**-0.5, n * warmup**-1.5),
    # with initial = (d_model * warmup)**-0.5
    d_model, warmup = 512, 4000
    vaswani = InverseSqrtDecay((d_model * warmup) ** -0.5, warmup)
    for n in (1, 2000, 4000, 10_000):
        paper = d_model**-0.5 * min(n**-0.5, n * warmup**-1.5)
        assert vaswani(n - 1) == pytest.approx(paper, rel=1e-12)
    assert InverseSqrtDecay(1.0, 1)(15) == pytest.approx(0.25)  # no warmup: 1/sqrt(step+1)


def test_linear_warmup_ramps_into_the_unshifted_schedule():
    inner = CosineDecay(0.1, decay_steps=1000, alpha=0.1)
    lr = LinearWarmup(inner, warmup_steps=100, start=0.001)
    s = np.arange(100.0)
    np.testing.assert_allclose(values(lr, 100), 0.001 + (inner(100) - 0.001) * s / 100, rtol=1e-12)
    for k in (100, 101, 500, 1100, 5000):
        assert lr(k) == inner(k)
    assert LinearWarmup(inner, 0)(0) == inner(0)
    assert Warmup is LinearWarmup
    assert LinearWarmup(0.5, 10)(3) == pytest.approx(0.15)


def test_sequence_calls_each_schedule_from_its_own_start():
    a, b, c = LinearWarmup(0.1, 10), CosineDecay(0.1, 100), Constant(0.001)
    lr = Sequence([a, b, c], boundaries=[10, 110])
    for k in (0, 5, 9):
        assert lr(k) == a(k)
    for k in (10, 11, 60, 109):
        assert lr(k) == b(k - 10)
    for k in (110, 10_000):
        assert lr(k) == 0.001
    assert join([a, 0.01], [10])(10) == 0.01
    assert isinstance(join([a, b], [10]), Sequence)


def test_per_epoch_is_an_epoch_staircase():
    epochs = CosineDecay(0.1, decay_steps=10)
    lr = per_epoch(epochs, steps_per_epoch=50)
    assert isinstance(lr, PerEpoch)
    for k in (0, 49, 50, 99, 100, 123, 499, 500, 10_000):
        assert lr(k) == epochs(k // 50)
    assert epochs_to_steps(3, 50) == 150
    assert epochs_to_steps(0.3, 10) == 3  # rounded, not truncated (0.3 * 10 = 2.999...)
    cosine = CosineDecay(0.1, epochs_to_steps(10, 50))
    warm = LinearWarmup(cosine, warmup_steps=epochs_to_steps(0.5, 50))  # half an epoch
    assert warm(0) == 0.0 and warm(25) == cosine(25) and warm(24) < cosine(25)


def test_steps_may_be_floats_and_numpy_scalars():
    lr = CosineDecay(0.1, 100)
    assert lr(np.int64(30)) == lr(30.0) == lr(np.float32(30)) == lr(30)
    assert type(lr(np.int64(30))) is float


# Serialization.

ALL = {name: case[0] for name, case in CASES.items()} | {
    "constant": Constant(0.3),
    "inverse_sqrt": InverseSqrtDecay(0.01, 50),
    "one_cycle": OneCycle(0.5, 100, pct_start=0.25, anneal="linear"),
    "warmup": LinearWarmup(CosineDecayRestarts(0.1, 10), 20, start=0.01),
    "warmup_number": LinearWarmup(0.1, 20),
    "sequence": Sequence(
        [LinearWarmup(0.1, 10), PiecewiseConstant([5], [0.1, 0.01]), 0.001], [10, 30]
    ),
    "per_epoch": per_epoch(Sequence([ExponentialDecay(0.1, 2, 0.5), 0.0], [8]), 30),
}


@pytest.mark.parametrize("name", ALL)
def test_config_round_trip(name):
    schedule = ALL[name]
    config = schedule.get_config()
    assert config["class_name"] == type(schedule).__name__
    config = json.loads(json.dumps(config))  # JSON-ready
    for rebuilt in (
        from_config(config),
        Schedule.from_config(config),
        type(schedule).from_config(config),
    ):
        assert type(rebuilt) is type(schedule)
        assert rebuilt.get_config() == schedule.get_config()
        for k in (0, 1, 7, 10, 20, 31, 99, 100, 250, 1000):
            assert rebuilt(k) == schedule(k)
    assert repr(schedule).startswith(type(schedule).__name__ + "(")


def test_nested_config_is_nested_dicts():
    config = LinearWarmup(CosineDecay(0.1, 100), 10).get_config()
    assert config == {
        "class_name": "LinearWarmup",
        "config": {
            "schedule": {
                "class_name": "CosineDecay",
                "config": {
                    "initial": 0.1,
                    "decay_steps": 100.0,
                    "alpha": 0.0,
                    "warmup_target": None,
                    "warmup_steps": 0,
                },
            },
            "warmup_steps": 10,
            "start": 0.0,
        },
    }


def test_from_config_errors():
    with pytest.raises(ValueError, match="unknown schedule 'Nope'"):
        from_config({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        from_config({"initial": 0.1})
    with pytest.raises(ValueError, match=r"CosineDecay\.from_config got a Constant"):
        CosineDecay.from_config(Constant(0.1).get_config())


# Errors.


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Constant(-0.1), "Constant: value must be a finite number >= 0"),
        (lambda: Constant(float("nan")), "Constant: value"),
        (lambda: ExponentialDecay(0.1, 0, 0.5), "ExponentialDecay: decay_steps must be"),
        (lambda: ExponentialDecay(0.1, 10, -0.5), "ExponentialDecay: decay_rate must be"),
        (lambda: PolynomialDecay(0.1, -5), "PolynomialDecay: decay_steps"),
        (lambda: PolynomialDecay(0.1, 5, power=0), "PolynomialDecay: power"),
        (lambda: InverseTimeDecay(0.1, 10, -1), "InverseTimeDecay: decay_rate"),
        (
            lambda: InverseSqrtDecay(0.1, 0),
            "InverseSqrtDecay: warmup_steps must be an integer >= 1",
        ),
        (lambda: InverseSqrtDecay(0.1, 2.5), "InverseSqrtDecay: warmup_steps"),
        (lambda: CosineDecay(0.1, 0), "CosineDecay: decay_steps must be"),
        (lambda: CosineDecay(0.1, 10, alpha=1.5), r"CosineDecay: alpha must be in \[0, 1\]"),
        (lambda: CosineDecay(0.1, 10, warmup_steps=-1), "CosineDecay: warmup_steps"),
        (
            lambda: CosineDecayRestarts(0.1, 10, t_mul=0.5),
            "CosineDecayRestarts: t_mul must be >= 1",
        ),
        (lambda: CosineDecayRestarts(0.1, 0), "CosineDecayRestarts: first_decay_steps"),
        (lambda: PiecewiseConstant([1, 2], [0.1, 0.2]), "one more value than boundaries"),
        (lambda: PiecewiseConstant([2, 1], [0.1, 0.2, 0.3]), "boundaries must increase"),
        (lambda: LinearWarmup("cosine", 10), "LinearWarmup: expected a Schedule or a number"),
        (lambda: LinearWarmup(0.1, -1), "LinearWarmup: warmup_steps"),
        (lambda: OneCycle(0.1, 100, pct_start=1.0), "OneCycle: need 0 < pct_start < 1"),
        (lambda: OneCycle(0.1, 3, pct_start=0.3), "pct_start \\* total_steps > 1"),
        (lambda: OneCycle(0.1, 100, anneal="cosine"), "anneal must be 'cos' or 'linear'"),
        (lambda: OneCycle(0.1, 100, div_factor=0), "OneCycle: div_factor"),
        (lambda: Sequence([0.1, 0.2], []), "one boundary between each pair"),
        (lambda: Sequence([0.1, 0.2, 0.3], [10, 5]), "boundaries must be > 0 and increasing"),
        (lambda: Sequence([0.1, 0.2], [0]), "boundaries must be > 0"),
        (lambda: per_epoch(Constant(0.1), 0), "PerEpoch: steps_per_epoch"),
        (lambda: epochs_to_steps(-1, 10), "epochs_to_steps: epochs must be >= 0"),
    ],
)
def test_invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("step", [-1, -0.5, float("nan")])
def test_negative_or_nan_step_raises(step):
    with pytest.raises(ValueError, match="CosineDecay: step must be >= 0"):
        CosineDecay(0.1, 10)(step)
