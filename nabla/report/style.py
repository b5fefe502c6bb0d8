"""The stylesheet of ``report.html`` and of the lab's pages: inline, so a page is one file."""

CSS = """
:root {
  --fg: #1f2328; --muted: #59636e; --bg: #f6f8fa; --card: #ffffff; --line: #d8dee4;
  --accent: #0969da; --good: #dafbe1; --stripe: #f6f8fa;
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", sans-serif;
}
main { max-width: 1120px; margin: 0 auto; padding: 32px 24px 40px; }
h1 { font-size: 28px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 0 0 12px; }
section { margin-top: 28px; }
.subtitle { color: var(--muted); margin: 0; }
.note { color: var(--muted); }
.card {
  background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px; box-shadow: 0 1px 2px rgba(31, 35, 40, 0.04);
}
.stats {
  display: grid; gap: 12px; margin-bottom: 12px;
  grid-template-columns: repeat(auto-fill, minmax(165px, 1fr));
}
.stat { padding: 12px 16px; border-top: 3px solid var(--line); }
.stat .label {
  font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em;
}
.stat .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat.test { border-top-color: var(--accent); }
.stat.test .value { color: var(--accent); }
.facts {
  display: grid; gap: 10px 24px; margin: 0;
  grid-template-columns: repeat(auto-fill, minmax(180px, 1fr));
}
.facts dt {
  font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em;
}
.facts dd { margin: 0; font-weight: 500; overflow-wrap: anywhere; }
.badge {
  display: inline-block; padding: 0 6px; border-radius: 999px; font-size: 11px; font-weight: 600;
  background: #fff1c2; color: #6b4f00; vertical-align: 1px;
}
.figures {
  display: grid; gap: 16px; align-items: start;
  grid-template-columns: repeat(auto-fill, minmax(min(440px, 100%), 1fr));
}
figure { margin: 0; }
figure img { display: block; width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 8px; }
.table { padding: 0; overflow-x: auto; }
table {
  border-collapse: collapse; width: 100%; font-size: 14px; font-variant-numeric: tabular-nums;
}
th, td {
  padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap;
}
th:first-child, td:first-child { text-align: left; }
thead th {
  position: sticky; top: 0; background: var(--card); color: var(--muted); font-size: 12px;
  font-weight: 600; text-transform: uppercase; letter-spacing: 0.03em;
}
tbody tr:nth-child(even) { background: var(--stripe); }
tbody tr.best { background: var(--good); }
tbody tr:last-child td { border-bottom: none; }
.config td { text-align: left; }
.config td:first-child {
  width: 30%; color: var(--muted);
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
footer { color: var(--muted); font-size: 12px; margin-top: 36px; text-align: center; }
"""
