import json

import numpy as np
import pytest

from nabla import sweep
from nabla.train.config import ConfigError


def test_parse_grid_values_lists_and_ranges():
    assert sweep.parse_grid("lr=0.1,0.01") == ("lr", [0.1, 0.01])
    assert sweep.parse_grid("hidden=64,256+128") == ("hidden", [[64], [256, 128]])
    assert sweep.parse_grid("augment=none,translate+rotate") == (
        "augment",
        [[], ["translate", "rotate"]],
    )
    key, r = sweep.parse_grid("lr=1e-4..1e-1")
    draws = [r.draw(np.random.default_rng(i)) for i in range(200)]
    assert key == "lr" and 1e-4 <= min(draws) and max(draws) <= 1e-1
    assert np.mean(np.array(draws) < 1e-2) > 0.5  # log-uniform: 2 of 3 decades below 1e-2
    with pytest.raises(ConfigError, match="not one of"):
        sweep.parse_grid("optimizer=sgd,adamm")
    with pytest.raises(ConfigError, match="did you mean"):
        sweep.parse_grid("learning_rate=0.1")


def test_configurations_grid_and_random():
    grid = [sweep.parse_grid("optimizer=sgd,adam"), sweep.parse_grid("lr=0.1,0.01,0.001")]
    assert len(sweep.configurations(grid, None)) == 6
    draws = sweep.configurations([*grid, sweep.parse_grid("dropout=0..0.5")], 5)
    assert len(draws) == 5 and all(0 <= d["dropout"] <= 0.5 for d in draws)
    with pytest.raises(ConfigError, match="need --random"):
        sweep.configurations([sweep.parse_grid("lr=0.001..0.1")], None)


def test_sweep_chooses_on_dev_and_tests_only_the_choice(tmp_path, capsys):
    grid = [sweep.parse_grid("optimizer=sgd,adam"), sweep.parse_grid("lr=0.5,0.01")]
    summary = sweep.run_sweep({"epochs": 2, "hidden": [32]}, grid, seeds=2, workers=2, out=tmp_path)
    rows = {r["label"]: r for r in summary["configurations"]}
    assert len(rows) == 4 and all(len(r["runs"]) == 2 for r in rows.values())
    best = max(rows.values(), key=lambda r: r["dev_accuracy"][0])
    assert summary["chosen"] == best["label"]
    for r in rows.values():
        devs = [
            json.loads((tmp_path / d.split(str(tmp_path) + "/")[1] / "results.json").read_text())[
                "evaluations"
            ]
            for d in r["runs"]
        ]
        accs = [d["dev"]["accuracy"] for d in devs]
        assert r["dev_accuracy"][0] == pytest.approx(np.mean(accs))
        assert r["dev_accuracy"][1] == pytest.approx(np.std(accs, ddof=1))
        assert all("test" not in d for d in devs)  # runs never look at the test split
    assert "test_accuracy" in rows[summary["chosen"]]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert "(chosen)" in (tmp_path / "summary.md").read_text()
