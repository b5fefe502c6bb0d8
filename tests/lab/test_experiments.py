"""Every experiment runs at its tiny size, writes its report and says PASS or FAIL in one line.

The tiny size checks that the code runs end to end; whether the claim holds is only decided at
full size (docs/experiments.md), so the verdict itself is not asserted here.
"""

import html
import importlib
import json
import re

import pytest

from nabla.cli import main
from nabla.lab import experiments
from nabla.lab.cli import LAB_COMMANDS

LINE = re.compile(r"^claim: .+ \| ours: .+ \| (PASS|FAIL)$")


@pytest.mark.parametrize("name", experiments.names())
def test_experiment_runs_tiny_and_writes_its_report(name, tmp_path, capsys):
    assert main(["experiment", name, "--size", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and LINE.match(printed[-1]), printed  # --quiet: the verdict only
    record = json.loads((tmp_path / "outcome.json").read_text())
    assert record["name"] == name and record["size"] == "tiny"
    assert record["line"] == printed[-1]
    page = (tmp_path / "report.html").read_text()
    assert record["line"].split(" | ")[0][len("claim: ") :] in html.unescape(page)
    assert list(tmp_path.glob("*.png")), "an experiment shows at least one figure"
    assert "data:image/png;base64," in page


def test_every_experiment_has_a_name_title_reference_and_summary():
    for name in experiments.names():
        cls = experiments.get(name)
        assert issubclass(cls, experiments.Experiment) and cls.name == name
        for field in ("title", "reference", "summary"):
            assert isinstance(getattr(cls, field), str) and getattr(cls, field)


def test_the_list_names_every_experiment(capsys):
    assert main(["experiment", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == experiments.names()


def test_an_unknown_experiment_is_refused_with_the_names(capsys):
    assert main(["experiment", "no-such-thing"]) == 2
    assert "no experiment 'no-such-thing'" in capsys.readouterr().err


def test_a_lab_report_is_self_contained(tmp_path):
    from nabla.lab.report import LabReport, new_figure

    page = LabReport(tmp_path, "T <&>", subtitle="s")
    figure = new_figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    page.figure(figure, "line", "a line")
    page.table(["a", "b"], [[1, 0.123456]])
    page.outcome("claim: x | ours: y | PASS", True)
    text = page.write().read_text()
    assert "T &lt;&amp;&gt;" in text and "0.1235" in text and "outcome pass" in text
    assert 'src="http' not in text and "<script" not in text
    assert (tmp_path / "line.png").exists()


@pytest.mark.parametrize("command", sorted(LAB_COMMANDS))
def test_every_lab_tool_imports_and_has_its_parts(command):
    # the parser tolerates a broken tool (so `nabla train` survives it): this test does not
    module = importlib.import_module(f"nabla.lab.{LAB_COMMANDS[command][0]}")
    assert callable(module.add_arguments) and callable(module.main)
    assert "nabla lab " + command in module.EXAMPLES


def test_one_thread_restores_the_thread_settings():
    from threadpoolctl import threadpool_info

    from nabla import kernels
    from nabla.lab.experiments.common import one_thread

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before_kernels, before_blas = kernels.get_num_threads(), blas()
    with one_thread():
        assert kernels.get_num_threads() == 1 and set(blas()) <= {1}
    assert kernels.get_num_threads() == before_kernels and blas() == before_blas
