"""``nabla lab compile``: the page that compares define-by-run with define-and-run."""

from __future__ import annotations

import re

from nabla.cli import main
from nabla.lab import compile as lab_compile


def test_the_page_compares_both_modes_on_three_problems(tmp_path, capsys):
    assert main(["lab", "compile", "--steps", "10", "--out", str(tmp_path), "--quiet"]) == 0
    summary = capsys.readouterr().out.strip()
    assert re.fullmatch(
        r"MLP [\d.]+x faster, bookkeeping -?\d+% of eager; LeNet-5 [\d.]+x faster, bookkeeping "
        r"-?\d+% of eager; Rosenbrock [\d.]+x faster, bookkeeping -?\d+% of eager",
        summary,
    )
    page = (tmp_path / "report.html").read_text()
    assert (tmp_path / "compile.png").stat().st_size > 10_000
    for text in (
        "Define-by-run and define-and-run",
        "Bookkeeping share: (eager - compiled)",
        "784-256-256-10 ReLU, Adam, batch 64",
        "The recorded program: Rosenbrock",
        "s8 = s3 + s7",
        "opt0.step(None)",
    ):
        assert text in page, text
    assert page.count("<tr>") == 4  # header + three problems
    assert "bookkeeping" in page and "784-256-256-10 ReLU, Adam, batch 64" in page


def test_each_measurement_checks_that_both_modes_compute_the_same_loss():
    problem = lab_compile.problems()[2]  # Rosenbrock: quick
    measured = lab_compile.measure(problem, steps=10)
    assert measured.eager_seconds > 0 and measured.compiled_seconds > 0
    assert measured.bookkeeping == 1 - measured.compiled_seconds / measured.eager_seconds
    assert measured.plan.startswith("plan: ") and measured.plan_bytes == 16  # one 2-float buffer


def test_too_few_steps_is_refused_clearly(capsys):
    import pytest

    with pytest.raises(
        SystemExit, match=r"^nabla lab compile: --steps must be at least 10, got 3$"
    ):
        main(["lab", "compile", "--steps", "3"])
