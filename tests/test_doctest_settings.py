"""The doctests compare numbers exactly (issue 21).

pytest's NUMBER option makes a written float match any value that agrees to the written
precision (``1.0`` accepts 0.95 to 1.05), so an example could print a wrong number and pass. It
stays out of the global ``doctest_optionflags``; an example may opt in with ``# doctest: +NUMBER``
only if every float it expects shows at least 4 significant digits. No example hides digits of a
number behind an ellipsis either.
"""

import ast
import doctest
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NUMBER = doctest.register_optionflag("NUMBER")  # pytest's flag (registered once, by name)
FLOAT = re.compile(r"(?<![\w.])[-+]?(\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?(?![\w.])")
ELIDED_NUMBER = re.compile(r"\d\.\.\.|\.\.\.\d")


def significant_digits(mantissa: str) -> int:
    """Digits written after the leading zeros: '0.0488' -> 3, '1.000' -> 4, '12.' -> 2."""
    return len(mantissa.replace(".", "").lstrip("0")) or 1


def examples():
    """(where, example) for every doctest example in the package, the docs and the README."""
    parser = doctest.DocTestParser()
    sources = [*sorted((ROOT / "nabla").rglob("*.py")), *sorted((ROOT / "docs").rglob("*.py"))]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc and ">>>" in doc:
                    where = f"{path.relative_to(ROOT)} ({getattr(node, 'name', 'module')})"
                    for example in parser.get_examples(doc, name=str(path)):
                        yield where, example
    for path in [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]:
        for example in parser.get_examples(path.read_text(encoding="utf-8"), name=str(path)):
            yield f"{path.relative_to(ROOT)}:{example.lineno + 1}", example


def test_number_is_not_a_global_doctest_option():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_options = options["tool"]["pytest"]["ini_options"]
    assert "NUMBER" not in pytest_options["doctest_optionflags"]
    assert "--doctest-modules" in pytest_options["addopts"]  # the examples still run
    assert "--doctest-glob=*.md" in pytest_options["addopts"]


def test_significant_digits():
    assert [significant_digits(m) for m in ("0.0488", "1.000", "12.", "0.0", "3.142")] == [
        3,
        4,
        2,
        1,
        4,
    ]


def test_examples_opting_into_number_show_four_significant_digits():
    found, short = 0, []
    for where, example in examples():
        found += 1
        if example.options.get(NUMBER):
            for match in FLOAT.finditer(example.want):
                if significant_digits(match.group(1)) < 4:
                    short.append(f"{where}: {match.group(0)!r} in {example.source.strip()!r}")
    assert found > 50, "the doctest examples were not found"
    assert not short, "+NUMBER on floats with < 4 significant digits:\n" + "\n".join(short)


def test_no_example_elides_digits_of_a_number():
    elided = [
        f"{where}: {example.want.strip()!r}"
        for where, example in examples()
        if ELIDED_NUMBER.search(example.want)
    ]
    assert not elided, "an ellipsis hides part of a number:\n" + "\n".join(elided)
