"""``nabla lab capacity``: the sweep, its files, and a property of capacity that really holds."""

import csv

import numpy as np
import pytest

from nabla.cli import main
from nabla.lab import capacity


def test_training_error_falls_with_width_on_a_small_training_set():
    # 200 digits: a width-1 net cannot separate 10 classes, width 4 fits part, width 32 nearly all
    data = capacity.load("digits", 200)
    result = capacity.sweep(
        data, widths=(1, 4, 32), epochs=20, seeds=1, weight_decays=(), dropouts=(), verbose=False
    )
    widths, train_error, _ = result.curve("width", "train_error")
    assert widths.tolist() == [1, 4, 32]
    assert np.all(np.diff(train_error) < -0.05), train_error
    assert train_error[0] > 0.4 and train_error[-1] < 0.05


def test_the_training_subset_is_stratified_and_fixed():
    a, b = capacity.load("digits", 100), capacity.load("digits", 100)
    assert len(a.train) == 100 and np.array_equal(a.train.x, b.train.x)
    assert abs(len(a.dev) - 1437 / 2) < 10  # dev_fraction 0.5 of the 1,437 training digits
    pool = capacity.load("digits", 1437 - len(a.dev)).train.y  # the whole training part
    pool = np.bincount(pool, minlength=10)
    expected = 100 * pool / pool.sum()  # each class in proportion, within one sample
    assert np.all(np.abs(np.bincount(a.train.y, minlength=10) - expected) < 1)
    with pytest.raises(ValueError, match="--train-size"):
        capacity.load("digits", 5)


def test_the_one_standard_error_rule():
    errors = np.array([0.30, 0.12, 0.105, 0.10, 0.11])
    se = np.sqrt(0.1 * 0.9 / 400)  # 0.015: 0.105 and 0.11 are within it, 0.12 is not
    assert capacity.best_index(errors, n_dev=400) == (3, 2)
    assert capacity.best_index(errors, n_dev=40) == (3, 1)  # se 0.047: now 0.12 is too
    assert capacity.best_index(errors, n_dev=10**9) == (3, 3)
    assert 0.105 < 0.10 + se < 0.12


def test_the_curve_is_a_mean_and_std_over_seeds_and_the_best_is_the_smallest_tie():
    result = capacity.Sweep(
        [
            capacity.Point("width", w, s, tr, dv, 0.0, 0.0)
            for w, s, tr, dv in [
                (2, 0, 0.5, 0.6),
                (2, 1, 0.3, 0.4),
                (8, 0, 0.0, 0.1),
                (8, 1, 0.0, 0.1),
                (4, 0, 0.2, 0.1),
                (4, 1, 0.2, 0.1),
            ]
        ]
    )
    values, mean, std = result.curve("width", "dev_error")
    assert values.tolist() == [2, 4, 8]
    np.testing.assert_allclose(mean, [0.5, 0.1, 0.1])
    np.testing.assert_allclose(std, [np.std([0.6, 0.4], ddof=1), 0, 0], atol=1e-12)
    assert [a.tolist() for a in result.spread("width", "dev_error")] == [
        [0.4, 0.1, 0.1],
        [0.6, 0.1, 0.1],
    ]
    assert capacity.best_index(mean, n_dev=100) == (1, 1)


def test_the_command_writes_its_files(tmp_path, capsys):
    out = tmp_path / "cap"
    args = [
        "lab",
        "capacity",
        "--widths",
        "2,16",
        "--train-size",
        "100",
        "--epochs",
        "3",
        "--seeds",
        "2",
        "--weight-decays",
        "0,0.01",
        "--dropouts",
        "0,0.5",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "lowest mean dev error" in capsys.readouterr().out
    for name in ("capacity_width.png", "capacity_regularization.png", "report.html"):
        assert (out / name).exists(), name
    with open(out / "capacity.csv") as f:
        rows = list(csv.DictReader(f))
    # 2 widths + 2 strengths + 2 rates, 2 seeds each (λ = 0 and p = 0 reuse width 16's models)
    assert len(rows) == 12
    assert {r["sweep"] for r in rows} == {"width", "weight_decay", "dropout"}
    same = [r["dev_error"] for r in rows if r["value"] in ("16", "0") and r["seed"] == "0"]
    assert len(set(same)) == 1 and len(same) == 3
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 2


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--widths", "2,x", "--widths"),
        ("--dropouts", "0,1.5", "dropout"),
        ("--train-size", "3", "--train-size"),
    ],
)
def test_bad_options_are_refused(tmp_path, capsys, flag, value, message):
    assert main(["lab", "capacity", flag, value, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
