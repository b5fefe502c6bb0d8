"""The run folder's metrics and figures: resumed runs, every figure drawn or skipped, sweeps."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nabla.report import make_plots, plot_sweep, read_metrics
from nabla.report.plots import _step_positions

CLASSIFICATION_PLOTS = ["loss", "accuracy", "lr", "grad_norm", "confusion", "misclassified"]


def _write_lines(run_dir, *lines):
    run_dir.mkdir(exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (run_dir / "metrics.jsonl").write_text(text, encoding="utf-8")


def _step(step, epoch=0, **fields):
    return {"event": "step", "epoch": epoch, "step": step, "loss": 1.0, "lr": 0.1, **fields}


# --- read_metrics -----------------------------------------------------------------------------


def test_a_resumed_run_reads_as_one_run_with_the_later_lines(classification_run):
    lines = (classification_run / "metrics.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events.count("step") == 20 and events.count("epoch") == 4  # epoch 1 written twice

    steps, epochs = read_metrics(classification_run)
    assert [s["step"] for s in steps] == list(range(1, 16))
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert not [r for r in steps + epochs if r.get("stale")]


def test_the_last_of_several_lines_wins_and_records_are_sorted(tmp_path):
    _write_lines(
        tmp_path,
        _step(2, loss=2.0),
        _step(1, loss=1.0),
        {"event": "resume", "epoch": 0, "step": 0},
        _step(1, loss=1.5),
        {"event": "epoch", "epoch": 0, "step": 2, "train": {"loss": 9.0}},
        _step(1, loss=1.25),
        {"event": "epoch", "epoch": 0, "step": 2, "train": {"loss": 0.5}},
    )
    steps, epochs = read_metrics(tmp_path)
    assert [(s["step"], s["loss"]) for s in steps] == [(1, 1.25), (2, 2.0)]
    assert [e["train"]["loss"] for e in epochs] == [0.5]


def test_an_unfinished_last_line_is_ignored(tmp_path):
    _write_lines(tmp_path, _step(1), _step(2), '{"event": "step", "epoch": 0, "st')
    steps, _ = read_metrics(tmp_path)
    assert [s["step"] for s in steps] == [1, 2]


def test_a_corrupt_line_in_the_middle_names_the_file_and_line(tmp_path):
    _write_lines(tmp_path, _step(1), "{not json", _step(2))
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        read_metrics(tmp_path)


def test_a_run_without_metrics_has_no_records(tmp_path):
    assert read_metrics(tmp_path) == ([], [])


def test_updates_are_placed_within_their_epoch():
    """Epoch e's updates lie in (e, e + 1], its last at e + 1, also when only some are logged."""
    epochs = [{"epoch": e, "step": 10 * (e + 1)} for e in range(3)]
    steps = [{"epoch": (k - 1) // 10, "step": k} for k in range(2, 31, 2)]  # every other update
    x = _step_positions(steps, epochs)
    np.testing.assert_allclose(x, [k / 10 for k in range(2, 31, 2)])
    # an epoch still running is measured with the length of the finished ones
    running = [{"epoch": 3, "step": 35}]
    np.testing.assert_allclose(_step_positions(steps + running, epochs), [*x, 3.5])


# --- make_plots -------------------------------------------------------------------------------


def test_every_figure_of_a_classification_run(classification_run, read_png):
    written = make_plots(classification_run)
    assert [p.stem for p in written] == CLASSIFICATION_PLOTS
    assert sorted(p.name for p in (classification_run / "plots").iterdir()) == sorted(
        f"{name}.png" for name in CLASSIFICATION_PLOTS
    )
    for path in written:
        pixels = read_png(path.read_bytes())
        height, width, _ = pixels.shape
        assert width >= 400 and height >= 300, path.name
        assert pixels.std() > 0.05, f"{path.name} is blank"
        assert path.stat().st_size > 10_000, path.name


def test_a_regression_run_skips_what_it_did_not_record(regression_run):
    written = make_plots(regression_run)
    assert [p.stem for p in written] == ["loss", "mse", "mae", "lr"]
    assert {p.name for p in (regression_run / "plots").iterdir()} == {p.name for p in written}


def test_a_figure_whose_data_is_gone_is_removed(classification_run):
    make_plots(classification_run)
    (classification_run / "misclassified.safetensors").unlink()
    assert "misclassified" not in [p.stem for p in make_plots(classification_run)]
    assert not (classification_run / "plots" / "misclassified.png").exists()


def test_a_run_in_its_first_epoch(tmp_path):
    """No epoch line, no results yet: the per-update figures only."""
    _write_lines(tmp_path, *(_step(k, grad_norm=None) for k in range(1, 6)))
    assert [p.stem for p in make_plots(tmp_path)] == ["loss", "lr"]


def test_colour_images_are_shown_in_colour(tmp_path, fabricate, read_png):
    red = np.zeros((4, 3, 16, 16), dtype=np.float32)
    red[:, 0] = 1.0
    run = fabricate(tmp_path / "cifar", images=red)
    make_plots(run)
    pixels = read_png((run / "plots" / "misclassified.png").read_bytes())
    reds = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert reds.sum() > 4 * 20 * 20  # four red squares of at least 20 x 20 pixels


def test_a_class_without_examples_in_the_confusion_matrix(classification_run, read_png):
    results = json.loads((classification_run / "results.json").read_text())
    results["confusion"]["matrix"][3] = [0] * 10
    (classification_run / "results.json").write_text(json.dumps(results))
    with np.errstate(all="raise"):
        make_plots(classification_run)
    read_png((classification_run / "plots" / "confusion.png").read_bytes())


def test_importing_nabla_does_not_import_the_report():
    code = "import sys, nabla; print('matplotlib' in sys.modules, 'nabla.report' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- plot_sweep -------------------------------------------------------------------------------


def _sweep(fabricate, tmp_path, task="classification"):
    return {
        f"lr={lr}": [
            fabricate(tmp_path / f"lr{lr}-s{seed}", task=task, resume_at=None, seed=10 * i + seed)
            for seed in range(3)
        ]
        for i, lr in enumerate((0.01, 0.1))
    }


def _has_curves_in_both_panels(pixels) -> bool:
    """Whether the left and the right half both hold C0 (the first label's curve)."""
    c0 = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=-1) < 0.03
    half = pixels.shape[1] // 2
    return c0[:, :half].sum() > 200 and c0[:, half:].sum() > 200


def test_plot_sweep_draws_both_panels(tmp_path, fabricate, read_png):
    out = plot_sweep(_sweep(fabricate, tmp_path), tmp_path / "sweeps" / "lr.png")
    assert out == tmp_path / "sweeps" / "lr.png"
    pixels = read_png(out.read_bytes())
    assert pixels.shape[1] > pixels.shape[0]
    assert _has_curves_in_both_panels(pixels)


def test_plot_sweep_falls_back_to_the_loss_without_the_metric(tmp_path, fabricate, read_png):
    runs = _sweep(fabricate, tmp_path, task="regression")
    out = plot_sweep(runs, tmp_path / "lr.png", metric="accuracy")
    assert _has_curves_in_both_panels(read_png(out.read_bytes()))
