"""A lab page: figures, tables and text gathered while a lab command or an experiment runs, written
as one self-contained ``report.html`` (inline CSS, figures as data URIs) beside the PNGs.

>>> import tempfile
>>> page = LabReport(tempfile.mkdtemp(), "A title", subtitle="what was done")
>>> page.text("One paragraph.")
>>> page.table(["optimizer", "loss"], [["adam", 0.125]], caption="final loss")
>>> page.write().name
'report.html'
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from matplotlib.figure import Figure

from ..files import atomic_path, write_text_atomic
from ..report.html import CSS
from ..report.plots import DPI, STYLE

__all__ = ["LabReport", "new_figure", "save_figure", "STYLE"]

EXTRA_CSS = """
.outcome { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 14px;
  padding: 12px 16px; border-left: 4px solid var(--line); white-space: pre-wrap; }
.outcome.pass { border-left-color: #1a7f37; background: var(--good); }
.outcome.fail { border-left-color: #cf222e; background: #ffebe9; }
.prose p { margin: 0 0 10px; max-width: 80ch; }
pre.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  padding: 12px 16px; overflow-x: auto; line-height: 1.35; }
caption { caption-side: bottom; color: var(--muted); font-size: 13px; padding: 8px 12px;
  text-align: left; }
"""


def new_figure(figsize=(6, 4)) -> Figure:
    """A matplotlib Figure on the Agg canvas (no pyplot: nothing global, any backend)."""
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path) -> Path:
    """Save ``figure`` as PNG (or in the format of ``path``'s suffix), atomically
    (:mod:`nabla.files`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(
            temporary, dpi=DPI, facecolor="white", format=path.suffix.lstrip(".") or "png"
        )
    return path


def _e(value) -> str:
    return html.escape(str(value))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class LabReport:
    """Collect the parts of a page in order; :meth:`write` renders ``out/report.html``.

    ``figure(fig, name, caption)`` saves ``out/name.png`` and shows it on the page;
    ``image(path, caption)`` shows a file already written (a GIF, say); ``table(header, rows)``
    formats floats with 4 significant digits; ``outcome(line, passed)`` shows an experiment's
    verdict in green or red at the top of the page.
    """

    def __init__(self, out, title: str, subtitle: str = ""):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title, self.subtitle = title, subtitle
        self.parts: list[str] = []
        self.verdict = ""

    def text(self, *paragraphs: str) -> None:
        self.parts.append(
            '<section class="prose">'
            + "".join(f"<p>{_e(p)}</p>" for p in paragraphs)
            + "</section>"
        )

    def heading(self, title: str) -> None:
        self.parts.append(f"<section><h2>{_e(title)}</h2></section>")

    def figure(self, figure: Figure, name: str, caption: str) -> Path:
        path = save_figure(figure, self.out / f"{name}.png")
        self.image(path, caption)
        return path

    def image(self, path, caption: str) -> None:
        path = Path(path)
        kind = {"gif": "image/gif", "png": "image/png", "svg": "image/svg+xml"}[path.suffix[1:]]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.parts.append(
            f'<section><figure class="card"><img src="data:{kind};base64,{data}" '
            f'alt="{_e(path.stem)}"><figcaption>{_e(caption)}</figcaption></figure></section>'
        )

    def code(self, text: str) -> None:
        """Preformatted text: a program, a printout."""
        self.parts.append(f'<section><pre class="card code">{_e(text)}</pre></section>')

    def table(self, header: list[str], rows: list[list], caption: str = "") -> None:
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = "\n".join(
            "<tr>" + "".join(f"<td>{_e(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        cap = f"<caption>{_e(caption)}</caption>" if caption else ""
        self.parts.append(
            f'<section><div class="card table"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div></section>"
        )

    def outcome(self, line: str, passed: bool) -> None:
        kind = "pass" if passed else "fail"
        self.verdict = f'<section><div class="card outcome {kind}">{_e(line)}</div></section>'

    def write(self) -> Path:
        subtitle = f'<p class="subtitle">{_e(self.subtitle)}</p>' if self.subtitle else ""
        page = (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(self.title)}</title>\n<style>{CSS}{EXTRA_CSS}</style>\n</head>\n<body>\n"
            f"<main>\n<header><h1>{_e(self.title)}</h1>{subtitle}</header>\n"
            + self.verdict
            + "\n".join(self.parts)
            + "\n<footer>written by nabla's lab</footer>\n</main>\n</body>\n</html>\n"
        )
        path = self.out / "report.html"
        write_text_atomic(path, page)
        return path
