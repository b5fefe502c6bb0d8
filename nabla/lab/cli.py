"""``nabla lab ...`` and ``nabla experiment ...``: the parsers, wired into :mod:`nabla.cli`.

A lab command lives in its own module (``nabla/lab/<module>.py``), which defines
``add_arguments(parser)`` and ``main(args) -> int``, and ``EXAMPLES`` (the text after --help).
Those modules import matplotlib inside their functions, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# command -> (module, one-line help)
LAB_COMMANDS = {
    "trajectories": ("trajectories", "optimizers on a 2-D test function: contour, GIF, table"),
    "landscape": (
        "landscape",
        "loss landscape of a run: interpolation and random-direction slices",
    ),
    "lr-range": ("lr_range", "learning-rate range test: loss against an exponentially growing lr"),
    "capacity": ("capacity", "train vs dev error against model size, L2 and dropout"),
    "compile": (
        "compile",
        "define-by-run against define-and-run (nb.compile): time, memory, the plan",
    ),
}

EXPERIMENT_EXAMPLES = """examples:
  nabla experiment --list
  nabla experiment adaptive-generalization            # writes experiments/adaptive-generalization/
  nabla experiment linear-scaling --out /tmp/ls --seed 1
  nabla experiment sgd-variants --size tiny           # seconds: checks that it runs, proves nothing
"""


def _module(name: str):
    """The lab tool's module; ``None`` if it is absent; the import error itself if it is broken
    (so that one broken tool cannot take ``nabla train`` down with it)."""
    path = Path(__file__).parent / f"{name}.py"
    if not path.exists():
        return None
    try:
        return importlib.import_module(f"nabla.lab.{name}")
    except Exception as err:  # reported when the tool is used
        return err


def add_parsers(commands, formatter_class=argparse.RawDescriptionHelpFormatter) -> None:
    lab = commands.add_parser(
        "lab",
        help="optimizer trajectories, loss landscapes, LR range tests, capacity",
        description="The optimizer lab: see why an optimizer behaves as it does.",
    )
    tools = lab.add_subparsers(dest="lab_command", metavar="TOOL")
    for command, (module_name, summary) in LAB_COMMANDS.items():
        module = _module(module_name)
        parser = tools.add_parser(
            command,
            help=summary,
            description=summary,
            epilog=getattr(module, "EXAMPLES", None),
            formatter_class=formatter_class,
        )
        if module is not None and not isinstance(module, Exception):
            module.add_arguments(parser)

    experiment = commands.add_parser(
        "experiment",
        help="reproduce a published claim: PASS or FAIL",
        description="Run an experiment that checks a published claim; "
        "it writes its figures and report.html and ends with one line "
        "'claim: ... | ours: ... | PASS/FAIL'.",
        epilog=EXPERIMENT_EXAMPLES,
        formatter_class=formatter_class,
    )
    experiment.add_argument("name", nargs="?", help="the experiment (see --list)")
    experiment.add_argument("--list", action="store_true", help="list the experiments and exit")
    experiment.add_argument("--out", help="the output folder (default: experiments/NAME)")
    experiment.add_argument(
        "--size",
        choices=("tiny", "full"),
        default="full",
        help="full (default): the documented run; tiny: seconds, for tests",
    )
    experiment.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    experiment.add_argument("--quiet", action="store_true", help="print only the outcome line")


def lab_main(args) -> int:
    if args.lab_command is None:
        print("nabla lab: choose a tool: " + ", ".join(LAB_COMMANDS), file=sys.stderr)
        return 2
    module = _module(LAB_COMMANDS[args.lab_command][0])
    if module is None or isinstance(module, Exception):
        why = f"it failed to import: {module!r}" if module else "not available yet"
        print(f"nabla lab {args.lab_command}: {why}", file=sys.stderr)
        return 2
    return module.main(args)


def experiment_main(args) -> int:
    from . import experiments

    if args.list or args.name is None:
        if not args.list:
            print("nabla experiment: give an experiment's name; they are:", file=sys.stderr)
        for name in experiments.names():
            print(f"{name:26s} {experiments.get(name).summary}")
        return 0 if args.list else 2
    try:
        experiments.get(args.name)
    except KeyError as err:
        print(f"nabla experiment: error: {err.args[0]}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("experiments") / args.name
    outcome = experiments.run(
        args.name, out, size=args.size, seed=args.seed, verbose=not args.quiet
    )
    if args.quiet:
        print(outcome.line())
    else:
        print(f"report: {out / 'report.html'}")
    return 0
