"""The report shows a snapshot ensemble's scores next to the last snapshot's, when the run's
results hold them, and nothing about snapshots otherwise."""

from __future__ import annotations

import json
import re

from nabla.report import write_report

SNAPSHOTS = {
    "split": "test",
    "size": 3,
    "members": [
        {"cycle": 1, "step": 50, "epoch": 4, "accuracy": 0.9312, "nll": 0.2511},
        {"cycle": 2, "step": 150, "epoch": 14, "accuracy": 0.9478, "nll": 0.1934},
        {"cycle": 3, "step": 350, "epoch": 34, "accuracy": 0.9521, "nll": 0.1702},
    ],
    "last_snapshot": {"cycle": 3, "step": 350, "epoch": 34, "accuracy": 0.9521, "nll": 0.1702},
    "ensemble": {"accuracy": 0.9633, "nll": 0.1288},
}


def _rows(page: str) -> list[list[str]]:
    table = page.split('<table class="snapshots">')[1].split("</table>")[0]
    body = table.split("<tbody>")[1]
    return [re.findall(r"<td>([^<]*)</td>", row) for row in body.split("</tr>") if "<td>" in row]


def test_the_ensemble_is_shown_beside_the_last_snapshot(classification_run):
    path = classification_run / "results.json"
    results = json.loads(path.read_text())
    path.write_text(json.dumps({**results, "snapshot_ensemble": SNAPSHOTS}))
    page = write_report(classification_run).read_text()
    assert "Snapshot ensemble (test split)" in page
    rows = _rows(page)
    assert [r[0] for r in rows] == [
        "snapshot 1",
        "snapshot 2",
        "snapshot 3",
        "last snapshot",
        "ensemble of 3",
    ]
    assert rows[0][1:] == ["1", "5", "50", "93.12%", "0.2511"]  # epochs shown from 1
    assert rows[3][1:] == ["3", "35", "350", "95.21%", "0.1702"]
    assert rows[4][-2:] == ["96.33%", "0.1288"]


def test_no_snapshot_table_without_snapshots(classification_run):
    assert "snapshot" not in write_report(classification_run).read_text().lower()
