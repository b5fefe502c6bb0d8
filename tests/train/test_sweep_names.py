"""A sweep's run folders are named without '=' and ',' (shells, URLs and file managers choke on
them), still readable, and distinct for distinct configurations."""

from pathlib import Path

import pytest

from nabla import sweep


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"lr": 0.1, "optimizer": "adam"}, "lr-0.1_optimizer-adam"),
        ({"hidden": [256, 128], "augment": []}, "hidden-256+128_augment-none"),
        ({"weight_decay": 1e-05}, "weight_decay-1e-05"),
        (
            {"schedule": "cosine-restarts", "nesterov": True},
            "schedule-cosine-restarts_nesterov-True",
        ),
        ({}, "base"),
    ],
)
def test_folder_names_have_no_equals_sign_or_comma(settings, name):
    assert sweep.folder_name(settings) == name


def test_the_sweep_writes_its_runs_into_such_folders(tmp_path):
    grid = [sweep.parse_grid("hidden=8,16+8"), sweep.parse_grid("lr=0.1")]
    summary = sweep.run_sweep({"epochs": 1}, grid, out=tmp_path, verbose=False)
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["hidden-16+8_lr-0.1", "hidden-8_lr-0.1"]
    for row in summary["configurations"]:
        (run,) = row["runs"]
        assert (Path(run) / "results.json").exists()
        assert not set("=,") & set(Path(run).relative_to(tmp_path).as_posix())
    # the summary still shows the settings as key=value
    assert {r["label"] for r in summary["configurations"]} == {
        "hidden=8,lr=0.1",
        "hidden=16+8,lr=0.1",
    }
