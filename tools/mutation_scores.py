"""Mutation scores per module from a ``mutmut run`` (the ``mutants/`` folder it leaves).

    python tools/mutation_scores.py            # table of every mutated module
    python tools/mutation_scores.py --survivors  # and the name of each surviving mutant

mutmut records one exit code per mutant in ``mutants/<path>.meta``: 1 or 3 means a test failed
(killed), 0 that every selected test passed (survived), 33 that no test reaches the function, and
24/36/152/255 or a signal that the tests timed out or crashed (counted as killed, as mutmut does
not: a mutant that hangs the suite is still a mutant the suite notices). The score is
killed / (mutants checked), with the mutants no test reaches counted as not killed.
"""

import argparse
import json
import re
from collections import Counter
from pathlib import Path

KILLED, SURVIVED, NO_TESTS, NOT_CHECKED, TIMEOUT = (
    "killed",
    "survived",
    "no tests",
    "not checked",
    "timeout",
)


def status(code) -> str:
    if code is None:
        return NOT_CHECKED
    if code in (1, 3):
        return KILLED
    if code == 0:
        return SURVIVED
    if code == 33:
        return NO_TESTS
    return TIMEOUT  # 24, 36, 152, 255, a negative signal: the run did not pass


def collect(root: Path) -> dict[str, dict[str, str]]:
    """``{module: {mutant name: status}}`` for every ``.meta`` file under ``root/mutants``."""
    modules = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            module = str(meta.relative_to(root / "mutants"))[: -len(".meta")]
            modules[module] = {name: status(code) for name, code in codes.items()}
    return modules


def table(modules: dict[str, dict[str, str]]) -> str:
    rows = [
        "| module | mutants | killed | survived | no test | timeout | not run | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = Counter()
    for module, mutants in modules.items():
        counts = Counter(mutants.values())
        total.update(counts)
        rows.append(row(module, len(mutants), counts))
    rows.append(row("**all**", sum(total.values()), total))
    return "\n".join(rows)


def row(name: str, n: int, c: Counter) -> str:
    checked = n - c[NOT_CHECKED]
    score = f"{(c[KILLED] + c[TIMEOUT]) / checked:.1%}" if checked else "-"
    return (
        f"| {name} | {n} | {c[KILLED]} | {c[SURVIVED]} | {c[NO_TESTS]} | {c[TIMEOUT]} "
        f"| {c[NOT_CHECKED]} | {score} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="where mutmut ran")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    modules = collect(args.root)
    print(table(modules))
    if args.survivors:
        print(survivor_list(modules))


def survivor_list(modules: dict[str, dict[str, str]]) -> str:
    """One line per mutant that no test killed (``mutmut show NAME`` shows its change)."""
    return "\n".join(
        f"{s:9} {name}"
        for mutants in modules.values()
        for name, s in mutants.items()
        if s in (SURVIVED, NO_TESTS)
    )


def surviving(modules: dict[str, dict[str, str]]) -> set[str]:
    return {
        name
        for mutants in modules.values()
        for name, s in mutants.items()
        if s in (SURVIVED, NO_TESTS)
    }


def listed(folder: Path) -> set[str]:
    """The mutants that ``docs/mutants/*.md`` explain: the first cell of every row of a table
    headed ``| mutant | change | why it survives |``. A cell may name several mutants of one
    function (``engine.x_backward__mutmut_4, 6``) and may leave off the leading package path."""
    name = re.compile(r"([\w.]+?__mutmut_)(\d+)((?:\s*,\s*\d+)*)")
    names = set()
    for page in sorted(folder.glob("*.md")):
        in_table = False
        for line in page.read_text().splitlines():
            if line.startswith("| mutant |"):
                in_table = "why it survives" in line
            elif not line.startswith("|"):
                in_table = False
            elif in_table and not line.startswith("|---"):
                for stem, first, more in name.findall(line.split("|")[1]):
                    names |= {stem + n for n in [first, *re.findall(r"\d+", more)]}
    return names


def _short_names(full: str) -> list[str]:
    """``a.b.c`` -> ``a.b.c``, ``b.c``, ``c``: the ways a page may write a mutant's name."""
    parts = full.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def unexplained(modules: dict[str, dict[str, str]], docs: Path, root: Path = Path(".")) -> str:
    """Survivors that docs/mutants does not list, and listed mutants of these modules now killed:
    both mean the page is out of date."""
    alive, explained = surviving(modules), listed(docs)
    docs = docs.relative_to(root) if docs.is_relative_to(root) else docs
    everyone = {n for mutants in modules.values() for n in mutants}
    lines = [
        f"not explained in {docs}: {n}"
        for n in sorted(alive)
        if not explained.intersection(_short_names(n))
    ]
    lines += [
        f"explained but no longer surviving: {n}"
        for n in sorted(everyone - alive)
        if explained.intersection(_short_names(n))
    ]
    return "\n".join(lines) or f"every survivor is explained in {docs}"


if __name__ == "__main__":
    main()
