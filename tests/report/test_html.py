"""report.html: well-formed, self-contained, every figure embedded, the run's numbers shown."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest

from nabla.report import build, write_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Page(HTMLParser):
    """Checks that tags nest, and keeps the text, the tags and their attributes."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.open, self.problems, self.tags, self.text = [], [], [], []
        self.feed(text)
        self.close()
        self.problems += [f"<{tag}> never closed" for tag in self.open]
        self.text = " ".join(" ".join(self.text).split())

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            self.problems.append(f"</{tag}> closes a void element")
        elif not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.open[-1] if self.open else None}>")
        else:
            self.open.pop()

    def handle_data(self, data):
        if not (self.open and self.open[-1] in ("style", "script")):
            self.text.append(data)

    def find(self, tag):
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture(scope="module")
def built_run(tmp_path_factory, fabricate):
    """One classification run with its report, shared by the tests that only read it."""
    run = fabricate(tmp_path_factory.mktemp("runs") / "digits-mlp-adam")
    assert build(run) == run / "report.html"
    return run


@pytest.fixture
def report(built_run):
    path = built_run / "report.html"
    return path, Page(path.read_text(encoding="utf-8"))


def test_the_page_is_well_formed(report):
    path, page = report
    assert page.problems == []
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [name for name, _ in page.tags].count("html") == 1


def test_every_figure_is_embedded_as_a_png(report, built_run, read_png):
    _, page = report
    prefix = "data:image/png;base64,"
    sources = [img["src"] for img in page.find("img")]
    assert all(src.startswith(prefix) for src in sources)
    embedded = [base64.b64decode(src[len(prefix) :], validate=True) for src in sources]
    for data in embedded:
        read_png(data)
    files = sorted((built_run / "plots").glob("*.png"))
    assert len(files) == 6
    assert sorted(embedded) == sorted(f.read_bytes() for f in files)
    assert all(img.get("alt") for img in page.find("img"))


def test_nothing_is_loaded_from_outside_the_file(report):
    path, page = report
    assert not {"script", "link", "iframe", "object", "embed", "base"} & {n for n, _ in page.tags}
    for name, attrs in page.tags:
        for key, value in attrs.items():
            value = (value or "").strip().lower()
            if key in ("src", "href", "srcset", "action", "poster", "data", "background"):
                assert value.startswith(("data:", "#")), (name, key, value[:40])
            assert not value.startswith(("http:", "https:", "//", "file:", "/")), (name, key)
    text = path.read_text()
    assert "http://" not in text and "https://" not in text and "url(" not in text


def test_the_page_shows_the_results(report, built_run):
    _, page = report
    results = json.loads((built_run / "results.json").read_text())
    test, dev = results["evaluations"]["test"], results["evaluations"]["dev"]
    assert f"{100 * test['accuracy']:.2f}%" in page.text
    assert f"{100 * dev['accuracy']:.2f}%" in page.text
    assert f"{test['loss']:.4f}" in page.text
    assert f"best epoch {results['best']['epoch'] + 1}" in page.text.lower()
    assert f"<title>{built_run.name}</title>" in report[0].read_text()


def test_the_page_shows_the_config_and_every_epoch(report, built_run):
    _, page = report
    config = (built_run / "config.toml").read_text().splitlines()
    for line in config:  # as the fixture writes it: key = value, strings in double quotes
        key, value = line.split(" = ")
        shown = value.strip('"')
        assert f"{key} {shown}" in page.text
    assert "hidden [128]" in page.text and "lr 0.01" in page.text
    rows = page.find("tr")
    assert len(rows) == len(config) + 1 + 3  # the config, the epochs' header and 3 epochs
    assert sum(attrs.get("class") == "best" for attrs in rows) == 1


def test_text_from_the_run_folder_is_escaped(classification_run):
    config = classification_run / "config.toml"
    config.write_text(config.read_text().replace('"digits"', '"<b>digits</b> & co"'))
    path = write_report(classification_run)
    page = Page(path.read_text())
    assert page.problems == [] and not page.find("b")
    assert "<b>digits</b> & co" in page.text
    assert "&lt;b&gt;digits&lt;/b&gt; &amp; co" in path.read_text()


def test_a_regression_report(regression_run):
    page = Page(build(regression_run).read_text())
    assert page.problems == []
    assert "accuracy" not in page.text.lower()
    assert "test MSE 0.2345" in page.text
    assert len(page.find("img")) == 4


def test_a_run_without_figures_or_results(tmp_path):
    run = tmp_path / "early"
    run.mkdir()
    step = {"event": "step", "epoch": 0, "step": 1, "loss": 2.3, "lr": 0.1}
    (run / "metrics.jsonl").write_text(json.dumps(step) + "\n")
    page = Page(write_report(run).read_text())
    assert page.problems == [] and page.find("img") == []
    assert "not finished" in page.text


def test_a_distributed_run_shows_its_ranks_and_short_wall_times(classification_run):
    results_path = classification_run / "results.json"
    results = json.loads(results_path.read_text())
    before = Page(write_report(classification_run).read_text())
    assert "mpi ranks" not in before.text.lower()
    results.update(ranks=4, wall_time=0.042)
    results_path.write_text(json.dumps(results))
    page = Page(write_report(classification_run).read_text())
    assert "MPI ranks 4 of 8" in page.text  # the fixture's global batch 32 on 4 ranks
    assert "wall time 42 ms" in page.text.lower()
