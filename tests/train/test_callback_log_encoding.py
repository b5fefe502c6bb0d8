"""The log files are UTF-8 whatever the locale, and a CSV log's columns survive a resume exactly.

JSON text is UTF-8 (RFC 8259) and the CSV log is read back on resume, so neither may depend on the
locale's encoding: these tests switch the locale to "C", whose encoding is ASCII, write metric
names outside ASCII and check the bytes on disk against Python's own ``json`` and ``csv`` modules
reading them as UTF-8. A column name holding a line break must also come back unchanged (the
reason the CSV file is opened with ``newline=""``).
"""

from __future__ import annotations

import csv
import json
import locale

import pytest
from test_callback_details import FakeTrainer

from nabla.train.callbacks import CSVLogger, JSONLLogger


@pytest.fixture
def ascii_locale(tmp_path):
    """The "C" locale for the test, in which open() without an encoding is ASCII."""
    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        with open(tmp_path / "probe", "w") as f:
            encoding = f.encoding
        if encoding.lower().replace("-", "") in ("utf8", "utf8mode"):
            pytest.skip(f"open() defaults to {encoding} in the C locale here (UTF-8 mode)")
        yield encoding
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)


def utf8_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_jsonl_resume_keeps_utf8_lines_in_an_ascii_locale(tmp_path, ascii_locale):
    """A metrics file rewritten by another tool (jq writes raw UTF-8) resumes intact."""
    path = tmp_path / "metrics.jsonl"
    lines = [{"event": "step", "step": 1, "δ": 0.5}, {"event": "step", "step": 2, "δ": 0.25}]
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in lines))
    log = JSONLLogger(path)
    log.on_train_begin(FakeTrainer(step=1, epoch=0))
    log.on_train_end(None)
    raw = path.read_bytes()
    assert raw.startswith(json.dumps(lines[0], ensure_ascii=False).encode() + b"\n")
    assert [json.loads(line) for line in raw.decode("utf-8").splitlines()] == [
        lines[0],
        {"event": "resume", "epoch": 0, "step": 1},
    ]


def test_csv_log_is_utf8_and_resumes_in_an_ascii_locale(tmp_path, ascii_locale):
    path = tmp_path / "log.csv"
    log, trainer = CSVLogger(path), FakeTrainer()
    log.on_train_begin(trainer)
    for epoch in range(3):
        log.on_epoch_end(trainer, epoch, {"δ-loss": epoch / 4, "two\r\nlines": epoch})
    header = ["epoch", "δ-loss", "two\r\nlines"]
    assert utf8_rows(path) == [header, ["0", "0.0", "0"], ["1", "0.25", "1"], ["2", "0.5", "2"]]
    resumed = CSVLogger(path)
    resumed.on_train_begin(FakeTrainer(epoch=2))
    assert resumed.columns == header  # the line break inside the quoted name is kept as it is
    resumed.on_epoch_end(None, 2, {"δ-loss": 9.0, "two\r\nlines": 7})
    assert utf8_rows(path) == [header, ["0", "0.0", "0"], ["1", "0.25", "1"], ["2", "9.0", "7"]]
    assert path.read_bytes().startswith('epoch,δ-loss,"two\r\nlines"\r\n'.encode())
