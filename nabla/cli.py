"""The ``nabla`` command: train, evaluate, report, sweep, the lab and the experiments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nabla

TRAIN_EXAMPLES = """examples:
  nabla train                                   # MLP on the embedded digits, in seconds
  nabla train --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov
  nabla train --dataset mnist10k --model lenet --augment translate,rotate --epochs 30
  nabla train my.toml --seed 3 --out runs/seed3  # flags override the config file
  nabla train --resume runs/20261124-101500-digits-mlp-adam
  mpirun -np 4 nabla train --distributed --batch-size 256 --lr 0.01 --lr-batch-size 64
                                                # data-parallel on 4 ranks (docs/distributed.md)
"""

SWEEP_EXAMPLES = """examples:
  nabla sweep --grid optimizer=sgd,adam --grid lr=0.1,0.01 --seeds 2 --workers 2
  nabla sweep base.toml --grid hidden=64,256+128 --grid dropout=0,0.3     # '+' joins list items
  nabla sweep --grid lr=0.001..0.1 --grid weight_decay=0,0.0001 --random 8  # ranges: log-uniform
  mpirun -np 9 python -m mpi4py.futures -m nabla sweep --grid lr=0.1,0.01 --seeds 4 \\
      --executor mpi                 # 8 runs at once on the 8 other ranks (docs/distributed.md)
"""


def _add_settings(parser: argparse.ArgumentParser) -> None:
    from .train import config

    group = parser.add_argument_group("settings (each overrides the config file)")
    for key, setting in config.SCHEMA.items():
        flag = "--" + key.replace("_", "-")
        choices = f" ({', '.join(setting.choices)})" if setting.choices else ""
        default = (
            setting.default if setting.type is not list else ",".join(map(str, setting.default))
        )
        text = f"{setting.help}{choices}; default {default!s}"
        if setting.type is bool:
            group.add_argument(
                flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            group.add_argument(flag, dest=key, metavar=key.upper(), default=None, help=text)


def _overrides(args) -> dict:
    from .train import config

    out = {}
    for key, setting in config.SCHEMA.items():
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value if setting.type is bool else config.parse_value(key, value)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nabla",
        description="nabla: a readable deep-learning framework and optimizer lab on NumPy.",
        epilog="run `nabla COMMAND --help` for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"nabla {nabla.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    train = commands.add_parser("train", help="train a model (default: an MLP on the embedded digits)",
                                description="Train a model and write a run folder with its report.",
                                epilog=TRAIN_EXAMPLES, formatter_class=raw)  # fmt: skip
    train.add_argument("config", nargs="?", help="a TOML file of settings")
    train.add_argument(
        "--out", help="the run folder (default: runs/<time>-<dataset>-<model>-<optimizer>)"
    )
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint"
    )
    train.add_argument("--quiet", action="store_true", help="print nothing")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training on the ranks of `mpirun -np N` (batch_size is "
                       "the global batch; needs mpi4py)")  # fmt: skip
    _add_settings(train)

    evaluate = commands.add_parser("evaluate", help="evaluate a finished run on a split",
                                   epilog="example:\n  nabla evaluate runs/my-run --split dev",
                                   formatter_class=raw)  # fmt: skip
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", default="test", choices=("train", "dev", "test"))
    evaluate.add_argument("--checkpoint", default="last", choices=("last", "best"))

    report = commands.add_parser("report", help="rebuild a run's plots and HTML report",
                                 epilog="example:\n  nabla report runs/my-run", formatter_class=raw)  # fmt: skip
    report.add_argument("run_dir")

    sweep = commands.add_parser("sweep", help="grid or random search over settings and seeds",
                                description="Train every configuration of a grid (or N random ones) "
                                "for several seeds in parallel processes, choose on dev, evaluate the "
                                "choice once on test.", epilog=SWEEP_EXAMPLES, formatter_class=raw)  # fmt: skip
    sweep.add_argument("config", nargs="?", help="a TOML file with the settings shared by all runs")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="values of one setting (repeat for more settings)")  # fmt: skip
    sweep.add_argument(
        "--random", type=int, metavar="N", help="N random configurations instead of the grid"
    )
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default 1)")
    sweep.add_argument("--workers", type=int, metavar="W",
                       help="runs at once: with --executor process, W local processes (default 1); "
                       "with --executor mpi started as one process, W MPI processes to spawn "
                       "(default: mpi4py's); under `mpirun -np N python -m mpi4py.futures` the "
                       "pool is the N-1 other ranks (leave W unset)")  # fmt: skip
    sweep.add_argument("--executor", choices=("process", "mpi"), default="process",
                       help="where the runs go: a local process pool (default) or an mpi4py.futures "
                       "pool of MPI processes (needs mpi4py; see the last example)")  # fmt: skip
    sweep.add_argument("--out", help="the sweep folder (default: sweeps/<time>)")
    sweep.add_argument("--quiet", action="store_true")
    _add_settings(sweep)

    from .lab import cli as lab_cli

    lab_cli.add_parsers(commands, raw)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from .distributed import DistributedError, abort
    from .serialization import CheckpointError
    from .train.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, CheckpointError, FileNotFoundError, DistributedError) as err:
        print(f"nabla {args.command}: error: {err}", file=sys.stderr)
        abort("stopped by the error above; aborting all ranks", 2)  # the others would wait forever
        return 2


def _train(args) -> int:
    from . import distributed as dist
    from .train import config, run

    if args.distributed:
        dist.init()
    elif dist.under_mpirun():
        raise config.ConfigError(
            f"started by an MPI launcher as one of {dist.launched_size()} processes: add "
            "--distributed for data-parallel training (or start a single process)"
        )
    overrides = _overrides(args)
    if args.resume:
        if args.config or args.out:
            raise config.ConfigError(
                "--resume continues a run folder: give no CONFIG or --out with it"
            )
        saved = run.load_config(args.resume)  # resolved: every setting is present
        changed = sorted(k for k in overrides if overrides[k] != saved[k])
        if changed:  # the schedule and the data order depend on them: the run would not be the same
            raise config.ConfigError(
                f"a resumed run keeps its config.toml; drop the flags {changed}"
            )
        cfg = config.resolve(saved, overrides)
        directory = Path(args.resume)
    else:
        cfg = config.resolve(config.read_toml(args.config) if args.config else {}, overrides)
        directory = Path(args.out) if args.out else run.new_run_directory(cfg)
    directory = Path(dist.broadcast_text(str(directory)))  # rank 0's clock names the folder
    run.train(cfg, directory, resume=bool(args.resume), verbose=0 if args.quiet else 1,
              distributed=args.distributed)  # fmt: skip
    return 0


def _evaluate(args) -> int:
    from .train import run

    result = run.evaluate(args.run_dir, args.split, args.checkpoint)
    print(json.dumps({"split": args.split, **{k: round(v, 6) for k, v in result.items()}}))
    return 0


def _report(args) -> int:
    from .report import build

    if not (Path(args.run_dir) / "metrics.jsonl").exists():
        raise FileNotFoundError(f"{args.run_dir} is not a run folder: it has no metrics.jsonl")
    print(build(args.run_dir))
    return 0


def _sweep(args) -> int:
    from .train import config, sweep

    base = config.read_toml(args.config) if args.config else {}
    base.update(_overrides(args))
    sweep.run_sweep(base, [sweep.parse_grid(g) for g in args.grid], random_count=args.random,
                    seeds=args.seeds, workers=args.workers, out=args.out, verbose=not args.quiet,
                    executor=args.executor)  # fmt: skip
    return 0


def _lab(args) -> int:
    from .lab import cli as lab_cli

    return lab_cli.lab_main(args)


def _experiment(args) -> int:
    from .lab import cli as lab_cli

    return lab_cli.experiment_main(args)


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "report": _report,
    "sweep": _sweep,
    "lab": _lab,
    "experiment": _experiment,
}


if __name__ == "__main__":
    sys.exit(main())
