"""The ``nabla`` command: train, evaluate, report, sweep, download, the lab and the experiments.

Errors: every failure ends in one line on stderr, ``nabla COMMAND: what failed: the file or
setting and what to do``, and an exit status: 2 for a usage, config, data, run-folder or
checkpoint problem (nothing was trained), 1 for a run that failed while training (divergence,
out of memory, a disk error, a bug), 130 for Ctrl-C (128 + SIGINT, as shells report it). The
traceback is printed only with ``--debug``. :func:`explain` is the one place that maps
exceptions to those lines; the code that raises them puts the file and the advice in the
message (and a run adds a note saying what became of its folder, see
:class:`nabla.train.run.RunFolder`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
import warnings
from pathlib import Path

import nabla

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

TRAIN_EXAMPLES = """examples:
  nabla train                                   # MLP on the embedded digits, in seconds
  nabla train --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov
  nabla train --dataset mnist10k --model lenet --augment translate,rotate --epochs 30
  nabla train my.toml --seed 3 --out runs/seed3  # flags override the config file
  nabla train --resume runs/20261124-101500-digits-mlp-adam
  nabla train --resume runs/20261124-101500-digits-mlp-adam --epochs 60   # train more
  nabla train --out runs/mine --overwrite        # replace the run in runs/mine
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


def build_parser() -> argparse.ArgumentParser:
    from .train import config

    parser = argparse.ArgumentParser(
        prog="nabla",
        description="nabla: a readable deep-learning framework and optimizer lab on NumPy.",
        epilog="run `nabla COMMAND --help` for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"nabla {nabla.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    train = commands.add_parser(
        "train",
        help="train a model (default: an MLP on the embedded digits)",
        description="Train a model and write a run folder with its report.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=raw,
    )
    train.add_argument("config", nargs="?", help="a TOML file of settings")
    train.add_argument(
        "--out", help="the run folder (default: runs/<time>-<dataset>-<model>-<optimizer>)"
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its last checkpoint (with a larger --epochs: train more)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace the run already in the --out folder"
    )
    train.add_argument("--quiet", action="store_true", help="print nothing")
    train.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training on the ranks of `mpirun -np N` (batch_size is "
        "the global batch; needs mpi4py)",
    )
    config.add_flags(train)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a finished run on a split",
        epilog="example:\n  nabla evaluate runs/my-run --split dev",
        formatter_class=raw,
    )
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", default="test", choices=("train", "dev", "test"))
    evaluate.add_argument("--checkpoint", default="last", choices=("last", "best"))
    evaluate.add_argument("--json", action="store_true", help="print one JSON object, not a table")

    report = commands.add_parser(
        "report",
        help="rebuild a run's plots and HTML report",
        epilog="example:\n  nabla report runs/my-run",
        formatter_class=raw,
    )
    report.add_argument("run_dir")

    sweep = commands.add_parser(
        "sweep",
        help="grid or random search over settings and seeds",
        description="Train every configuration of a grid (or N random ones) "
        "for several seeds in parallel processes, choose on dev, evaluate the "
        "choice once on test.",
        epilog=SWEEP_EXAMPLES,
        formatter_class=raw,
    )
    sweep.add_argument("config", nargs="?", help="a TOML file with the settings shared by all runs")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of one setting (repeat for more settings)",
    )
    sweep.add_argument(
        "--random", type=int, metavar="N", help="N random configurations instead of the grid"
    )
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default 1)")
    sweep.add_argument(
        "--workers",
        type=int,
        metavar="W",
        help="runs at once: with --executor process, W local processes (default 1); "
        "with --executor mpi started as one process, W MPI processes to spawn "
        "(default: mpi4py's); under `mpirun -np N python -m mpi4py.futures` the "
        "pool is the N-1 other ranks (leave W unset)",
    )
    sweep.add_argument(
        "--executor",
        choices=("process", "mpi"),
        default="process",
        help="where the runs go: a local process pool (default) or an mpi4py.futures "
        "pool of MPI processes (needs mpi4py; see the last example)",
    )
    sweep.add_argument("--out", help="the sweep folder (default: sweeps/<time>)")
    sweep.add_argument("--quiet", action="store_true")
    config.add_flags(sweep)

    download = commands.add_parser(
        "download",
        help="download datasets (checksummed) for later runs",
        epilog=DOWNLOAD_EXAMPLES,
        formatter_class=raw,
    )
    download.add_argument(
        "datasets",
        nargs="+",
        metavar="DATASET",
        choices=DOWNLOADS,
        help=f"one or more of {', '.join(DOWNLOADS)}",
    )
    download.add_argument(
        "--root",
        help="download into ROOT/DATASET/ (default: the cache, "
        "$NABLA_CACHE or ~/.cache/nabla); then set NABLA_DATA=ROOT",
    )

    from .lab import cli as lab_cli

    lab_cli.add_parsers(commands, raw)
    _add_debug(parser, top=True)
    return parser


DOWNLOAD_EXAMPLES = """examples:
  nabla download mnist                          # into the cache, where every run looks
  nabla download mnist cifar10 --root /data     # then NABLA_DATA=/data on this or another machine
"""
DOWNLOADS = ("mnist", "fashion_mnist", "cifar10")


def _add_debug(parser: argparse.ArgumentParser, top: bool = False, seen=None) -> None:
    """``--debug`` on the command and on every subcommand, at any depth."""
    seen = set() if seen is None else seen
    if id(parser) in seen:
        return
    seen.add(id(parser))
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="on an error, print the traceback too",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_debug(sub, seen=seen)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with _one_line_warnings(args.command):
            return COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as error:
        if args.debug:
            traceback.print_exc()
        status, line = explain(error)
        print(f"nabla {args.command}: {line}", file=sys.stderr, flush=True)
        from .distributed import abort

        abort("stopped by the error above; aborting all ranks", status)  # the others would wait
        return status


def explain(error: BaseException) -> tuple[int, str]:
    """The exit status for ``error`` and the one line that says what failed (with the file or
    setting the message names), what became of the run (the exception's notes) and what to do."""
    status, what, advice = next(rule[1:] for rule in _failures() if isinstance(error, rule[0]))
    text = " ".join(str(error).split())
    if isinstance(error, KeyboardInterrupt):
        text = text or "stopped by Ctrl-C"
    elif what == "internal error" or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    notes = [" ".join(str(note).split()) for note in getattr(error, "__notes__", ())]
    return status, "; ".join(part for part in (f"{what}: {text}", *notes, advice) if part)


def _failures() -> list:
    """(exception classes, exit status, what failed, what to do): the first match applies."""
    from .data.download import DownloadError
    from .data.idx import DataFormatError
    from .distributed import DistributedError
    from .serialization import CheckpointError
    from .train.config import ConfigError
    from .train.run import RunFolderError
    from .train.trainer import TrainingDivergedError

    usage = (
        ConfigError,
        RunFolderError,
        DistributedError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )
    return [
        (KeyboardInterrupt, EXIT_INTERRUPTED, "interrupted", ""),
        (
            TrainingDivergedError,
            EXIT_FAILED,
            "training diverged",
            "a smaller --lr, --clip-grad-norm or --warmup-epochs may help",
        ),
        (MemoryError, EXIT_FAILED, "out of memory", "try a smaller --batch-size or model"),
        (usage, EXIT_USAGE, "error", ""),
        (CheckpointError, EXIT_USAGE, "bad checkpoint", ""),
        ((DownloadError, DataFormatError), EXIT_USAGE, "data error", ""),
        (OSError, EXIT_FAILED, "error", "check the disk and the folder"),
        (
            BaseException,
            EXIT_FAILED,
            "internal error",
            "run again with --debug for the traceback, and please report it",
        ),
    ]


@contextlib.contextmanager
def _one_line_warnings(command: str):
    """Warnings (a checkpoint that fell back to the previous one, ...) as one line each."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"nabla {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


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
    overrides = config.overrides(args)
    if args.resume:
        if args.config or args.out:
            raise config.ConfigError(
                "--resume continues a run folder: give no CONFIG or --out with it"
            )
        cfg = run.resume_config(args.resume, overrides)  # only --epochs may change: train more
        directory = Path(args.resume)
    else:
        cfg = config.resolve(config.read_toml(args.config) if args.config else {}, overrides)
        directory = Path(args.out) if args.out else run.new_run_directory(cfg)
    directory = Path(dist.broadcast_text(str(directory)))  # rank 0's clock names the folder
    run.train(
        cfg,
        directory,
        resume=bool(args.resume),
        verbose=0 if args.quiet else 1,
        distributed=args.distributed,
        overwrite=args.overwrite,
    )
    if dist.is_main():  # rank 0 writes the folder, the report too
        from .report import build

        path = build(directory)
        if not args.quiet:
            print(f"report: {path}", flush=True)
    return 0


def _evaluate(args) -> int:
    from .train import run

    result = run.evaluate(args.run_dir, args.split, args.checkpoint)
    if args.json:
        print(json.dumps({"split": args.split, **{k: round(v, 6) for k, v in result.items()}}))
        return 0
    print(f"{args.run_dir}: checkpoint {args.checkpoint}, {args.split} split")
    width = max(map(len, result))
    for name, value in result.items():
        print(f"  {name:<{width}}  {value:.4f}")
    return 0


def _download(args) -> int:
    from .data import datasets
    from .data.download import fetch

    files = {
        "mnist": {**datasets.MNIST_FILES["train"], **datasets.MNIST_FILES["test"]},
        "fashion_mnist": {
            **datasets.FASHION_MNIST_FILES["train"],
            **datasets.FASHION_MNIST_FILES["test"],
        },
        "cifar10": datasets.CIFAR10_FILES,
    }
    for name in args.datasets:
        paths = fetch(name, files[name], root=args.root)
        folders = sorted({str(p.parent) for p in paths.values()})
        print(f"{name}: {len(paths)} files, checksums verified, in {', '.join(folders)}")
    return 0


def _report(args) -> int:
    from .report import build

    if not (Path(args.run_dir) / "metrics.jsonl").exists():
        raise FileNotFoundError(f"{args.run_dir} is not a run folder: it has no metrics.jsonl")
    print(build(args.run_dir))
    return 0


def _sweep(args) -> int:
    from . import sweep
    from .train import config

    base = config.read_toml(args.config) if args.config else {}
    base.update(config.overrides(args))
    sweep.run_sweep(
        base,
        [sweep.parse_grid(g) for g in args.grid],
        random_count=args.random,
        seeds=args.seeds,
        workers=args.workers,
        out=args.out,
        verbose=not args.quiet,
        executor=args.executor,
    )
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
    "download": _download,
    "lab": _lab,
    "experiment": _experiment,
}


if __name__ == "__main__":
    sys.exit(main())
