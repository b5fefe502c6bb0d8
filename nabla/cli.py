"""The ``nabla`` command. Training, sweeps, reports and the lab arrive with their issues; until
then every subcommand is listed in the help, and running one says plainly that it is not
available yet and prints the help (exit status 0: the stub itself works as designed)."""

from __future__ import annotations

import argparse
import sys

import nabla

PLANNED = {
    "train": "train a model (default: an MLP on the embedded digits)",
    "evaluate": "evaluate a finished run on a split",
    "report": "rebuild a run's HTML report",
    "sweep": "run a grid or random search over hyperparameters and seeds",
    "lab": "optimizer trajectories, loss landscapes, LR range tests",
    "experiment": "reproduce a published claim and report PASS/FAIL",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nabla",
        description="nabla: a readable deep-learning framework and optimizer lab on NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"nabla {nabla.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in PLANNED.items():
        commands.add_parser(name, help=f"{summary} (not available yet)", description=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, _ = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    # A stub by design until the trainer exists: say so plainly, show what there is, succeed.
    print(
        f"nabla {args.command}: not available yet in nabla {nabla.__version__}. "
        "Today nabla is the autograd core (Tensor, ops, gradcheck); see README.md.\n"
    )
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
