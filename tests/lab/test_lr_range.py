"""The LR range test: its schedule, smoothing, stop rule, suggestion rule and command."""

import csv
import math

import numpy as np
import pytest

from nabla import nn, optim
from nabla.cli import main
from nabla.lab import lr_range
from nabla.train import config


@pytest.mark.parametrize("low, high, steps", [(1e-7, 10.0, 100), (1e-3, 2.0, 7), (0.5, 0.6, 2)])
def test_the_schedule_goes_from_min_to_max_lr_with_a_constant_ratio(low, high, steps):
    schedule = lr_range.ExponentialRange(low, high, steps)
    lrs = np.array([schedule(t) for t in range(steps)])
    assert lrs[0] == pytest.approx(low, rel=1e-12)
    assert lrs[-1] == pytest.approx(high, rel=1e-12)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, (high / low) ** (1 / (steps - 1)), rtol=1e-10)


def test_the_schedule_drives_the_real_optimizer():
    w = nn.Parameter(np.zeros(3, dtype=np.float32))
    schedule = lr_range.ExponentialRange(1e-4, 1e-1, 5)
    opt = optim.SGD([w], lr=schedule)
    used = []
    for _ in range(5):
        w.grad[...] = 1.0
        opt.step()
        used.append(opt.lr)
    np.testing.assert_allclose(used, [schedule(t) for t in range(5)])
    np.testing.assert_allclose(w.data, -sum(used), rtol=1e-5)  # each step moved by -lr_t * 1


@pytest.mark.parametrize("bad", [(0.0, 1.0, 10), (1.0, 0.5, 10), (1e-3, 1.0, 1), (1e-3, 1, 2.5)])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValueError, match="ExponentialRange"):
        lr_range.ExponentialRange(*bad)


def test_the_smoothed_loss_is_a_bias_corrected_ema():
    losses = np.random.default_rng(0).uniform(0.5, 3.0, size=60)
    beta = 0.98
    # the reference: an exponential average with weights beta^(t-u), normalized to sum to one
    reference = [
        np.sum(beta ** np.arange(t, -1, -1) * losses[: t + 1]) / np.sum(beta ** np.arange(t + 1))
        for t in range(len(losses))
    ]
    np.testing.assert_allclose(lr_range.smooth(losses, beta), reference, rtol=1e-12)
    assert lr_range.smooth([2.0], beta)[0] == pytest.approx(2.0)  # no bias towards 0 at the start


def test_the_stop_rule():
    assert not lr_range.should_stop([3.0, 2.0, 1.0, 3.9])
    assert lr_range.should_stop([3.0, 2.0, 1.0, 4.1])  # above 4x the minimum so far
    assert not lr_range.should_stop([3.0, 11.0])  # the minimum is 3: 11 < 12
    assert lr_range.should_stop([3.0, 2.0, math.nan])
    assert lr_range.should_stop([3.0, math.inf])
    assert lr_range.should_stop([1.0, 2.5], factor=2.0)


def test_the_suggestion_on_a_curve_whose_answer_is_known():
    lrs = np.logspace(-6, 1, 141)  # 20 points per decade
    x = np.log10(lrs)
    # a plateau, a descent centred at 1e-3 (steepest there), a minimum at 1e-1, then a blow-up
    loss = np.where(x < -1, 2.0 - np.tanh((x + 3) / 0.5), 2.0 - np.tanh(4) + 3 * (x + 1) ** 2)
    best = lrs[np.argmin(loss)]
    suggestion = lr_range.suggest(lrs, loss)
    assert suggestion.min_loss_lr == pytest.approx(best)
    assert suggestion.lr == pytest.approx(best / 10)
    assert 0.09 < best < 0.11
    assert suggestion.steepest_lr == pytest.approx(1e-3, rel=1e-9)  # a grid point


def test_the_suggestion_ignores_what_follows_a_nan():
    lrs = np.logspace(-4, 0, 9)
    loss = np.array([2.0, 1.9, 1.5, 1.0, 1.2, np.nan, 0.0, 0.0, 0.0])
    assert lr_range.suggest(lrs, loss).min_loss_lr == pytest.approx(lrs[3])


def test_the_range_test_stops_when_training_diverges():
    cfg = config.resolve({"hidden": [16], "batch_size": 64})
    result = lr_range.range_test(cfg, 1e-3, 1e3, steps=60)
    assert result.stopped_early and len(result.lrs) < 60
    assert lr_range.should_stop(result.smoothed) and not lr_range.should_stop(result.smoothed[:-1])
    np.testing.assert_allclose(
        result.smoothed, lr_range.smooth(result.losses, result.beta), rtol=1e-9
    )
    np.testing.assert_allclose(result.lrs, np.logspace(-3, 3, 60)[: len(result.lrs)], rtol=1e-9)


def test_the_command_writes_its_files_and_prints_the_suggestion(tmp_path, capsys):
    out = tmp_path / "lr"
    args = [
        "lab",
        "lr-range",
        "--steps",
        "30",
        "--min-lr",
        "1e-5",
        "--max-lr",
        "1",
        "--hidden",
        "32",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    suggested = float(printed.split("suggested lr: ")[1].split()[0])
    with open(out / "lr_range.csv") as f:
        rows = list(csv.DictReader(f))
    assert 3 <= len(rows) <= 30 and float(rows[0]["lr"]) == pytest.approx(1e-5)
    smoothed = np.array([float(r["smoothed_loss"]) for r in rows])
    lrs = np.array([float(r["lr"]) for r in rows])
    assert suggested == pytest.approx(lrs[np.argmin(smoothed)] / 10, rel=1e-2)
    assert (out / "lr_range.png").exists()
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_a_config_file_is_read_and_bad_options_are_refused(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('optimizer = "sgd"\nmomentum = 0.9\nhidden = [8]\n')
    assert (
        main(
            ["lab", "lr-range", str(toml), "--steps", "5", "--out", str(tmp_path / "o"), "--quiet"]
        )
        == 0
    )
    assert "suggested lr" in capsys.readouterr().out
    assert main(["lab", "lr-range", "--max-lr", "1e-8", "--out", str(tmp_path / "o")]) == 2
    assert "max_lr must exceed min_lr" in capsys.readouterr().err
    assert main(["lab", "lr-range", "--optimizer", "sgdd", "--out", str(tmp_path / "o")]) == 2
    assert "sgdd" in capsys.readouterr().err


def test_a_test_that_diverges_at_once_says_to_lower_the_first_lr(tmp_path, capsys):
    args = ["lab", "lr-range", "--min-lr", "1e4", "--max-lr", "1e6", "--steps", "10"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "lower --min-lr" in capsys.readouterr().err
    assert main(["lab", "lr-range", "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "--steps must be at least 3" in capsys.readouterr().err


def _v_shaped(lrs, best_lr: float, rng) -> np.ndarray:
    """A batch loss falling and rising linearly in log lr around ``best_lr``, with noise."""
    return 1.0 + np.abs(np.log10(lrs / best_lr)) + 0.05 * rng.standard_normal(len(lrs))


@pytest.mark.parametrize("steps", [100, 400])
def test_the_smoothed_minimum_does_not_lag_the_batch_loss_by_decades(steps):
    schedule = lr_range.ExponentialRange(1e-7, 10.0, steps)
    lrs = np.array([schedule(t) for t in range(steps)])
    beta = lr_range.smoothing_beta(1e-7, 10.0, steps)
    # the EMA's mean delay beta / (1 - beta) steps, in decades of lr
    delay = beta / (1 - beta) * np.log10(1e8) / (steps - 1)
    assert delay <= lr_range.LAG_DECADES + 1e-9
    for seed in range(5):
        loss = _v_shaped(lrs, 1e-2, np.random.default_rng(seed))
        found = lr_range.suggest(lrs, lr_range.smooth(loss, beta)).min_loss_lr
        assert abs(np.log10(found / 1e-2)) < 0.3, (seed, found)


def test_the_range_test_smooths_with_the_beta_of_its_lr_grid():
    cfg = config.resolve({"hidden": [16], "batch_size": 64})
    result = lr_range.range_test(cfg, 1e-4, 10.0, steps=40)
    assert result.beta == pytest.approx(lr_range.smoothing_beta(1e-4, 10.0, 40))
    np.testing.assert_allclose(result.smoothed, lr_range.smooth(result.losses, result.beta))
    # the suggestion comes from the bias-corrected smoothed curve
    assert result.suggestion.min_loss_lr == result.lrs[np.argmin(result.smoothed)]
