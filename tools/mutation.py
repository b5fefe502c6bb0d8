"""Mutation testing, one module at a time: plant small bugs, see whether a test fails.

    pip install -e '.[mutation]'
    python tools/mutation.py optim                 # every mutant of nabla/optim, its tests only
    python tools/mutation.py ops --only 'nabla/ops/conv*.py' --survivors
    python tools/mutation.py all                   # every module below, one after another

mutmut (https://mutmut.readthedocs.io) rewrites each function of the chosen files into variants
that each differ by one small change (``<`` for ``<=``, ``1`` for ``0``, a dropped argument, ...)
and runs the tests that reach the function against each variant: a variant the tests do not
notice ("survived") marks a behaviour no test pins down. mutmut works in a ``mutants/`` folder
beside the ``pyproject.toml`` it reads, so each module runs in its own copy of the working tree,
``.mutation/<name>/``, with a ``[tool.mutmut]`` section that selects the module's files and the
tests that exercise them (not the whole suite: the command-line and sweep tests start processes
and cost minutes per surviving mutant). The copy is refreshed before every run and mutmut
remembers its results, so a second run re-tests only the functions whose code changed; after
adding tests, ``--recheck`` runs the survivors (and timeouts) again and ``--fresh`` every mutant.
Every survivor that remains is explained, one row each, in docs/mutants/<group>.md; each run ends
by naming the survivors those pages do not explain and the mutants they list that no longer
survive.

The tests run on the compiled kernels, and ``tests/kernels`` hold every kernel to its NumPy
reference, so a mutant in a reference is caught there. Results and scores: docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutation_scores  # beside this file

ROOT = Path(__file__).resolve().parent.parent

SCRATCH = (".mutation/", "mutants/")  # where the copies and mutmut's work live (ignored by git)

# name -> (files to mutate, tests that exercise them: folders, files or globs)
MODULES = {
    "autograd": (
        ["nabla/autograd/*"],
        [
            "tests/autograd",
            "tests/ops/test_ops.py",
            "tests/ops/test_op_details.py",
            "tests/test_regressions.py",
            "tests/test_pytorch_names.py",
            "tests/jit",
        ],
    ),
    "ops": (
        ["nabla/ops/*"],
        [
            "tests/ops",
            "tests/nn",
            "tests/kernels/test_activations.py",
            "tests/kernels/test_loss_kernels.py",
            "tests/kernels/test_conv_kernels.py",
            "tests/kernels/test_pool_kernels.py",
            "tests/kernels/test_normalization_kernels.py",
            "tests/test_pytorch_names.py",
            "tests/test_regressions.py",
        ],
    ),
    "optim": (
        ["nabla/optim/*"],
        [
            "tests/optim",
            "tests/kernels/test_updates.py",
            "tests/kernels/test_subnormals.py",
            "tests/train/test_resume.py",
            "tests/test_serialization.py",
            "tests/jit",
        ],
    ),
    "loader": (
        ["nabla/data/loader.py"],
        ["tests/data/test_loader*.py", "tests/train/test_resume.py", "tests/train/test_trainer.py"],
    ),
    "checkpoint": (
        ["nabla/train/checkpoint.py"],
        [
            "tests/train/test_checkpoint*.py",
            "tests/train/test_resume*.py",
            "tests/train/test_train_more.py",
            "tests/test_serialization.py",
        ],
    ),
    "callbacks": (
        ["nabla/train/callbacks.py"],
        [
            "tests/train/test_callback*.py",
            "tests/train/test_resume*.py",
            "tests/train/test_trainer.py",
            "tests/train/test_snapshot_ensemble.py",
        ],
    ),
}


# Modules whose thread-split mutants are checked by the tests marked `threads` in a fresh
# process (conftest.py): a process start per marked test and mutant. ops needs it (where each
# kernel's work estimate goes); in optim, where a dozen marked tests reach every mutant of the
# optimizer base class, it would take hours: docs/mutants/optim.md lists the mutants of its
# kernel launches that only a fresh process kills.
FRESH_THREAD_TESTS = {"ops"}


def mutmut_section(files: list[str], tests: list[str]) -> str:
    quote = lambda items: "[" + ", ".join(f'"{i}"' for i in items) + "]"  # noqa: E731
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["nabla/"]\n'
        f"only_mutate = {quote(files)}\n"
        f"pytest_add_cli_args_test_selection = {quote(tests)}\n"
        'also_copy = ["conftest.py"]\n'  # the test-wide hooks (threads, torch under mutmut)
    )


def refresh_copy(folder: Path, section: str) -> None:
    """Copy the working tree's files (tracked and new, not ignored) into ``folder``, only those
    that changed, so that mutmut's cache sees unchanged functions as unchanged."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        source, target = ROOT / name, folder / name
        if not source.is_file() or name == "pyproject.toml" or name.startswith(SCRATCH):
            continue
        if target.exists() and target.read_bytes() == source.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for copy in (folder, folder / "mutants"):  # files deleted or renamed here go there too
        for stale in [*copy.glob("nabla/**/*.py"), *copy.glob("tests/**/*.py")]:
            if not (ROOT / stale.relative_to(copy)).is_file():
                stale.unlink()
    pyproject = (ROOT / "pyproject.toml").read_text().split("\n[tool.mutmut]")[0]
    (folder / "pyproject.toml").write_text(pyproject + section)
    if not (folder / ".git").exists():  # mutmut asks git which non-Python files changed
        subprocess.run(["git", "init", "-q"], cwd=folder, check=True)


def run(name: str, only: list[str] | None, args: argparse.Namespace) -> None:
    files, tests = MODULES[name]
    files = only or files
    tests = sorted({str(p.relative_to(ROOT)) for t in tests for p in ROOT.glob(t)})
    slug = name + ("-" + re.sub(r"[^A-Za-z0-9]+", "-", "-".join(only)).strip("-") if only else "")
    folder = ROOT / ".mutation" / slug
    if not args.report:
        folder.mkdir(parents=True, exist_ok=True)
        refresh_copy(folder, mutmut_section(files, tests))
    if args.fresh and not args.report:
        shutil.rmtree(folder / "mutants", ignore_errors=True)
    # One BLAS/OpenMP thread per test process: mutmut runs `children` of them side by side.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if name in FRESH_THREAD_TESTS:  # conftest.py: the tests marked `threads` in a fresh process
        env["NABLA_THREAD_TESTS_FRESH"] = "1"
    command = ["mutmut", "run", "--max-children", str(args.children)]
    if args.recheck and (folder / "mutants").exists():  # survivors and timeouts, against new tests
        results = mutation_scores.collect(folder)
        timeouts = {
            n for r in results.values() for n, s in r.items() if s == mutation_scores.TIMEOUT
        }
        command += sorted(mutation_scores.surviving(results) | timeouts)
    print(f"[{slug}] {' '.join(command[:4])} ({len(command) - 4} named) in {folder}", flush=True)
    if not args.report:
        subprocess.run(command, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    modules = mutation_scores.collect(folder)
    print(mutation_scores.table(modules))
    if args.survivors:
        print(mutation_scores.survivor_list(modules))
    print(mutation_scores.unexplained(modules, ROOT / "docs" / "mutants", ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=[*MODULES, "all"])
    parser.add_argument("--only", nargs="+", help="mutate only these files (globs) of the module")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument(
        "--recheck", action="store_true", help="re-run the survivors and timeouts (after new tests)"
    )
    parser.add_argument("--children", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    parser.add_argument("--report", action="store_true", help="print the last run's results only")
    args = parser.parse_args()
    for name in MODULES if args.module == "all" else [args.module]:
        run(name, args.only, args)


if __name__ == "__main__":
    main()
