"""The package's layers: every import runs downward (docs/architecture.md draws the same table).

A package of ``nabla`` may import its own modules and those of lower layers, never a package of
its own layer or above. The imports are read from the source (``import`` and ``from`` statements,
relative ones resolved, those inside functions included), so a lazy import up the layers fails
here as a top-level one would.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top. "nabla" is the package's own __init__.py (the names ``import nabla`` gives).
LAYERS = [
    ["autograd", "kernels", "random", "memory", "files"],
    ["creation", "ops", "optim", "distributed"],
    ["nn", "data", "serialization"],
    ["jit", "models", "state"],
    ["nabla"],
    ["train"],
    ["report"],
    ["lab", "sweep"],
    ["cli"],
    ["__main__"],
]
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """``nabla.train.run`` -> ``train``; ``nabla`` -> ``nabla``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nabla"


def imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of a nabla module in the file (or in ``source``,
    read as if it were that file)."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    # the package a relative import starts from: the module's own for __init__.py, else its parent
    package = (
        module.removesuffix(".__init__") if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    )
    source = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # from . import a, b: each name may be a module
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "nabla" or name.startswith("nabla.")]


def upward(path: Path, source: str | None = None) -> list[str]:
    """The imports of ``path`` that reach its own layer or a higher one (other packages)."""
    here = unit_of(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
    return [
        f"line {line}: {name} ({unit_of(name)} is layer {LEVEL[unit_of(name)]}, "
        f"{here} is layer {LEVEL[here]})"
        for line, name in imports(path, source)
        if unit_of(name) != here and LEVEL.get(unit_of(name), len(LAYERS)) >= LEVEL[here]
    ]


def package_files() -> list[Path]:
    return sorted((ROOT / "nabla").rglob("*.py"))


def test_every_package_is_in_a_layer():
    units = {unit_of(".".join(p.relative_to(ROOT).with_suffix("").parts)) for p in package_files()}
    assert units - {"__init__"} <= set(LEVEL), f"add these to LAYERS: {units - set(LEVEL)}"


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_downward(path):
    assert not upward(path), f"{path.relative_to(ROOT)} imports up or sideways: {upward(path)}"


@pytest.mark.parametrize(
    "source, bad",
    [
        ("from ..report import build\n", True),  # training must not draw its report
        ("def f():\n    from ..cli import main\n", True),  # lazy, and still upward
        ("from .. import sweep\n", True),
        ("import nabla.lab.report\n", True),
        ("from .. import optim\nfrom ..data import DataLoader\nfrom . import config\n", False),
    ],
)
def test_the_checker_finds_a_planted_upward_import(source, bad):
    planted = ROOT / "nabla" / "train" / "planted.py"  # never written: the source is given
    assert bool(upward(planted, source)) == bad


def test_the_docs_draw_the_same_layers():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", page, flags=re.MULTILINE)
    drawn = [[name.strip(" `") for name in names.split(",")] for _, names in rows]
    assert drawn == LAYERS
