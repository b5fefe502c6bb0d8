"""Format rules that ruff cannot state: where ``# fmt: skip`` may stand (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Tables that read better aligned than as the formatter lays them out: file -> the line's start.
ALIGNED_TABLES = {
    "nabla/ops/methods.py": "}",  # Tensor method name -> function, several to a line
    "nabla/serialization.py": 'stat.S_IFSOCK: "a socket"}',  # file kinds, two to a line
    "nabla/jit/elementwise.py": "Neg: lower_arithmetic",  # op -> lowering
}


def disallowed_skips(root: Path = ROOT) -> list[str]:
    """``file:line: text`` for every ``# fmt: skip`` under ``root/nabla`` that ends neither an
    ``__all__`` list nor one of the ALIGNED_TABLES."""
    bad = []
    for path in sorted((root / "nabla").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        lines = path.read_text(encoding="utf-8").split("\n")
        for number, text in enumerate(lines, 1):
            if "# fmt: skip" not in text:
                continue
            line, statement = text.strip(), "\n".join(lines[max(0, number - 15) : number])
            if line.startswith("]") and "__all__ = [" in statement:
                continue  # a list of exported names, packed
            if name in ALIGNED_TABLES and line.startswith(ALIGNED_TABLES[name]):
                continue
            bad.append(f"{name}:{number}: {line}")
    return bad


def test_fmt_skip_only_on_name_lists_and_aligned_tables():
    bad = disallowed_skips()
    assert not bad, "let ruff format these, or add the table to ALIGNED_TABLES with why:\n" + (
        "\n".join(bad)
    )


def test_the_rule_reports_a_skip_on_ordinary_code(tmp_path):
    (tmp_path / "nabla").mkdir()
    (tmp_path / "nabla" / "module.py").write_text(
        '__all__ = [\n    "a", "b",\n]  # fmt: skip\n\nx = dict(a=1,  b=2)  # fmt: skip\n',
        encoding="utf-8",
    )
    assert disallowed_skips(tmp_path) == ["nabla/module.py:5: x = dict(a=1,  b=2)  # fmt: skip"]
