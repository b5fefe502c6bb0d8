"""Runs: a config in, a run folder out.

A run folder holds::

    config.toml          the resolved config (``nabla train RUN/config.toml`` repeats the run)
    metrics.jsonl        one line per update and per epoch (see callbacks.JSONLLogger)
    checkpoints/         last.safetensors (every epoch) and best.safetensors (lowest dev loss),
                         each with the file it replaced: last.previous.safetensors, ...
    results.json         final dev and test metrics, confusion matrix, best epoch, wall time
    misclassified.safetensors   test images the model gets wrong (image data only)
    plots/  report.html  the figures and the self-contained report (nabla.report)
    .lock                locked by the process training in the folder

The test split is evaluated once, at the end, with the final weights (with early stopping: the
best epoch's weights); selection between runs uses dev metrics (see ``nabla sweep``).

Run folders never lose work (:class:`RunFolder`): a new run goes into a folder that does not
exist or is empty, a folder holding a run is replaced only with ``overwrite`` (``--overwrite``)
and a folder holding other files never; the process training in a folder holds an exclusive lock
on its ``.lock`` file, so a second process is refused; and a new run that fails before its
first checkpoint removes its folder, so that every run folder left behind can be resumed.

Resuming loads ``checkpoints/last.safetensors``; should it fail verification, the checkpoint it
replaced (``last.previous.safetensors``) is loaded instead, with a warning saying so, and the
damaged file is kept as ``last.corrupt.safetensors``. A resumed run may be given more epochs
than it had (train more): its learning-rate schedule is then planned again for the new number
of epochs and continues at the step reached (:func:`resume_config`, :func:`train`).

``distributed=True`` (``mpirun -np W nabla train --distributed``): every rank builds the same run,
trains on its shard of each global batch of ``batch_size`` (see :mod:`nabla.distributed`), and
rank 0 alone writes the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import nabla

from .. import distributed as dist
from .. import random
from ..files import write_text_atomic
from ..serialization import save
from . import build, config
from .callbacks import EarlyStopping, JSONLLogger, ModelCheckpoint, SnapshotEnsemble
from .checkpoint import previous_path, resume_from
from .history import plural
from .snapshots import snapshot_ensemble_results
from .trainer import Trainer, TrainingDivergedError

if TYPE_CHECKING:
    from types import TracebackType
    from typing import TextIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: run folders are not locked
    fcntl = None

MISCLASSIFIED = 36
LOCK_FILE = ".lock"
# what a run writes into its folder (all that --overwrite removes)
RUN_FILES = (
    "config.toml",
    "metrics.jsonl",
    "checkpoints",
    "results.json",
    "misclassified.safetensors",
    "plots",
    "report.html",
)


class RunFolderError(RuntimeError):
    """A run folder cannot be used: it holds another run or other files, it is a file, or
    another process trains in it."""


class Run:
    """The objects of one run, built from its config."""

    def __init__(self, cfg: dict, directory: str | os.PathLike[str], distributed: bool = False):
        self.cfg, self.directory = cfg, Path(directory)
        random.manual_seed(cfg["seed"])
        self.data = build.load_data(cfg)
        if distributed:
            dist.init()
        shard = (dist.rank(), dist.world_size()) if distributed else None
        self.train_loader, self.dev_loader, self.test_loader = build.build_loaders(
            cfg, self.data, shard
        )
        self.model = build.build_model(cfg, self.data)
        optimizer = build.build_optimizer(cfg, self.model, len(self.train_loader))
        self.checkpoints = self.directory / "checkpoints"
        self.saver = ModelCheckpoint(self.checkpoints, last=True, best=True, monitor="dev_loss")
        callbacks = [JSONLLogger(self.directory / "metrics.jsonl")]
        if cfg["early_stopping"]:
            callbacks.append(EarlyStopping(patience=cfg["early_stopping"], restore_best=True))
        # snapshots before the saver, so that a checkpoint holds the snapshots taken up to it
        self.snapshots = None
        if cfg["snapshot_ensemble"]:
            self.snapshots = SnapshotEnsemble(self.directory / "snapshots")
            callbacks.append(self.snapshots)
        callbacks.append(self.saver)
        loss = nabla.nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
        self.trainer = Trainer(
            self.model,
            loss,
            optimizer,
            metrics=["accuracy"],
            callbacks=callbacks,
            clip_grad_norm=cfg["clip_grad_norm"] or None,
            distributed=distributed,
            keep_previous_checkpoint=True,
            compile=cfg["compile"],
        )
        # the learning rate this config plans (a checkpoint brings back the one it was saved with)
        self.planned_lr = [group["lr"] for group in optimizer.param_groups]


class RunFolder:
    """``with RunFolder(directory, resume, overwrite):`` holds ``directory`` for one run.

    On entering: the folder is created if needed and locked (another process holding the lock
    is refused), then checked: a new run needs it empty, or holding a run and ``overwrite``
    (whose files are then removed); a resumed run needs its files to be regular files. On an
    exception: a new run that left no checkpoint is removed, and the exception gets a note
    saying so, or how to resume. ``owner=False`` (the other ranks of a distributed run) does
    nothing.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        resume: bool = False,
        overwrite: bool = False,
        owner: bool = True,
    ):
        if resume and overwrite:
            raise config.ConfigError(
                "--overwrite replaces a run, --resume continues it: choose one"
            )
        self.directory, self.resume, self.overwrite = Path(directory), resume, overwrite
        self.owner, self.created, self.training, self._lock = owner, False, False, None

    def __enter__(self) -> RunFolder:
        if not self.owner:
            return self
        if os.path.lexists(self.directory) and not self.directory.is_dir():
            raise RunFolderError(
                f"{self.directory} is a file, not a folder: give --out a folder that does not exist"
            )
        self.created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = self.directory / LOCK_FILE
        had_lock = os.path.lexists(lock)
        try:
            self._lock = _lock(lock)
            self._check()
        except BaseException:  # refused: leave the folder as it was
            self._close(remove=self.created, unlock=not had_lock)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.owner:
            return
        resumable = self.resume or _has_checkpoint(self.directory)
        if error is not None and self.training:
            _add_note(error, self._note(error, resumable))
        self._close(remove=error is not None and not resumable, unlock=False)

    def _check(self) -> None:
        entries = sorted(p.name for p in self.directory.iterdir() if p.name != LOCK_FILE)
        if self.resume:
            _check_regular(self.directory)
        elif entries and not (self.overwrite and "config.toml" in entries):
            raise RunFolderError(_occupied(self.directory, entries, self.overwrite))
        elif entries:
            _remove_run_files(self.directory)

    def _note(self, error: BaseException, resumable: bool) -> str:
        if not resumable:
            return f"nothing was kept: the run folder {self.directory} was removed"
        if isinstance(error, TrainingDivergedError):
            return f"the run folder {self.directory} keeps its checkpoints"
        return f"continue with: nabla train --resume {self.directory}"

    def _close(self, remove: bool, unlock: bool = False) -> None:
        if remove:
            _remove_run_files(self.directory)
        if (remove or unlock) and os.path.lexists(self.directory / LOCK_FILE):
            os.unlink(self.directory / LOCK_FILE)
        if remove and self.created and not any(self.directory.iterdir()):
            self.directory.rmdir()
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None


def _lock(path: Path) -> TextIO:
    """``path`` opened and locked exclusively (held until closed), with this process's id in
    it; a RunFolderError naming the holder when another process has it."""
    handle = open(path, "a+", encoding="utf-8")
    if fcntl is None:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunFolderError(
            f"{path.parent} is in use: another run (process {holder}) holds its lock {path}; "
            "wait for it to end, or choose another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _occupied(directory: Path, entries: list, overwrite: bool) -> str:
    shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
    if "config.toml" not in entries:
        return (
            f"{directory} is not empty ({shown}) and holds no run, so nabla will not write into "
            "it (not even with --overwrite): give --out a new or empty folder"
        )
    return (
        f"{directory} already holds a run ({shown}): continue it with `nabla train --resume "
        f"{directory}` (add --epochs N to train more), replace it with --overwrite, or give "
        "--out another folder"
    )


def _check_regular(directory: Path) -> None:
    """The files of a run folder being resumed must be regular files: opening a FIFO in place
    of metrics.jsonl, say, would wait for a writer forever."""
    for name in ("config.toml", "metrics.jsonl"):
        path = directory / name
        if os.path.lexists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            raise RunFolderError(f"{path} is not a regular file; refusing to resume {directory}")


def _has_checkpoint(directory: Path) -> bool:
    folder = directory / "checkpoints"
    return folder.is_dir() and any(p.suffix == ".safetensors" for p in folder.iterdir())


def _remove_run_files(directory: Path) -> None:
    for name in RUN_FILES:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()


def _add_note(error: BaseException, note: str) -> None:
    """PEP 678's ``add_note`` (Python 3.11+), by hand on 3.10."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10
        error.__notes__ = [*getattr(error, "__notes__", []), note]


def new_run_directory(cfg: dict, root: str | os.PathLike[str] = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{cfg['dataset']}-{cfg['model']}-{cfg['optimizer']}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def train(
    cfg: dict,
    directory: str | os.PathLike[str],
    resume: bool = False,
    verbose: int = 1,
    test: bool = True,
    distributed: bool = False,
    overwrite: bool = False,
) -> dict:
    """Train the run ``cfg`` in ``directory`` (continuing its last checkpoint with ``resume``);
    returns the results written to ``results.json``. ``test=False`` leaves the test split
    untouched (sweeps evaluate only the configuration they select). ``distributed``: this process
    is one rank of a data-parallel job (the same call on every rank, the same ``directory``).
    ``overwrite``: replace the run already in ``directory`` (see :class:`RunFolder`)."""
    directory = Path(directory)
    if distributed:
        dist.init()
    main = dist.is_main()  # rank 0 writes the folder
    verbose = verbose if main else 0
    with RunFolder(directory, resume=resume, overwrite=overwrite, owner=main) as folder:
        run = Run(cfg, directory, distributed)
        if resume:
            _resume(run, directory, verbose)
        folder.training = True  # from here on, a failure says what became of the folder
        if main:
            write_text_atomic(directory / "config.toml", config.to_toml(cfg))
        if verbose:
            print(f"nabla {nabla.__version__}: training {describe(cfg)} -> {directory}", flush=True)
        run.trainer.fit(run.train_loader, cfg["epochs"], dev=run.dev_loader, verbose=verbose)
        results = finish(run, test, write=main)
        if verbose:
            scores = "  ".join(
                f"{split} accuracy {m['accuracy']:.4f}"
                for split, m in results["evaluations"].items()
            )
            print(f"{scores}  ({results['wall_time']:.1f}s training)", flush=True)
    return results


def resume_config(directory: str | os.PathLike[str], overrides: dict) -> dict:
    """The config that resumes the run in ``directory``: its config.toml, where ``overrides``
    (the command-line flags) may only raise ``epochs`` (train more): any other change would make
    a different run (the schedule and the data order depend on the settings)."""
    saved = load_config(directory)
    changed = sorted(k for k in overrides if k != "epochs" and overrides[k] != saved[k])
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise config.ConfigError(
            f"a resumed run keeps its config.toml; drop the flags {flags} (only --epochs may "
            "change, to train more)"
        )
    epochs = overrides.get("epochs", saved["epochs"])
    if epochs < saved["epochs"]:
        raise config.ConfigError(
            f"--epochs {epochs}: the run {directory} has epochs = {saved['epochs']}; a resumed run "
            "can train more epochs, not fewer"
        )
    return config.resolve(saved, {"epochs": epochs})


def _resume(run: Run, directory: Path, verbose: int) -> None:
    """Load the run's last verified checkpoint, then plan its learning rate for ``epochs``."""
    planned = load_config(directory)["epochs"]  # what the checkpoint was trained towards
    last = run.checkpoints / "last.safetensors"
    if not any(os.path.lexists(p) for p in (last, previous_path(last))):
        raise RunFolderError(
            f"cannot resume {directory}: it has no checkpoint (the run stopped before its first "
            f"epoch ended); start it again with `nabla train {directory / 'config.toml'} --out "
            f"{directory} --overwrite`"
        )
    trainer, epochs = run.trainer, run.cfg["epochs"]
    resume_from(trainer, last)
    if epochs > planned and trainer.stop_training:
        raise config.ConfigError(
            f"{directory} stopped early after {plural(trainer.epoch, 'epoch')} (early_stopping = "
            f"{run.cfg['early_stopping']}): training more would stop again at once; start a new "
            "run with more patience instead"
        )
    saved_lr = [group["lr"] for group in trainer.optimizer.param_groups]
    for group, lr in zip(trainer.optimizer.param_groups, run.planned_lr):
        group["lr"] = lr  # the config's plan, for the epochs it now has
    if epochs != planned and verbose:
        step = trainer.optimizer.iterations
        text = build.schedule_change(run.cfg, planned, saved_lr[0], run.planned_lr[0], step)
        print(text, flush=True)


def describe(cfg: dict) -> str:
    model = f"mlp {cfg['hidden']}" if cfg["model"] == "mlp" else cfg["model"]
    lr = f"lr {cfg['lr']:g}"
    if cfg["lr_batch_size"]:
        lr += f" x {cfg['batch_size']}/{cfg['lr_batch_size']} = {build.peak_lr(cfg):g}"
    ranks = (
        f" ({dist.world_size()} ranks of {cfg['batch_size'] // dist.world_size()})"
        if dist.active()
        else ""
    )
    return (
        f"{model} on {cfg['dataset']}, {cfg['optimizer']} {lr} {cfg['schedule']}, "
        f"{plural(cfg['epochs'], 'epoch')} of batch {cfg['batch_size']}{ranks}"
    )


def finish(run: Run, test: bool = True, write: bool = True) -> dict:
    """Evaluate on dev and (once) on test; write results.json and the misclassified examples
    (of the test split, or of the dev split when ``test`` is False) unless ``write`` is False."""
    trainer, data = run.trainer, run.data
    split, loader, dataset = (
        ("test", run.test_loader, data.test) if test else ("dev", run.dev_loader, data.dev)
    )
    logits = trainer.predict(loader)
    predictions, labels = logits.argmax(axis=1), dataset.y
    evaluations = {"dev": trainer.evaluate(run.dev_loader)}
    if test:
        evaluations["test"] = trainer.evaluate(run.test_loader)
    results = {
        "task": "classification",
        "classes": [str(c) for c in range(data.classes)],
        "evaluations": evaluations,
        "confusion": {
            "split": split,
            "matrix": build.confusion_matrix(labels, predictions, data.classes).tolist(),
        },
        "wall_time": round(trainer.elapsed, 3),
        "epochs_run": trainer.epoch,
        "stopped_early": bool(trainer.stop_training),
        "nabla_version": nabla.__version__,
    }
    if run.saver.best_epoch is not None:
        results["best"] = {
            "epoch": int(run.saver.best_epoch),
            "monitor": "dev_loss",
            "value": float(run.saver.tracker.best),
        }
    if run.snapshots is not None and run.snapshots.snapshots:
        results["snapshot_ensemble"] = snapshot_ensemble_results(
            run.model, run.snapshots, loader, split=split
        )
    if dist.active():
        results["ranks"] = dist.world_size()
    if not write:
        return results
    write_text_atomic(run.directory / "results.json", json.dumps(results, indent=2) + "\n")
    wrong = np.flatnonzero(predictions != labels)[:MISCLASSIFIED]
    if data.images and wrong.size:
        save(
            {
                "images": dataset.x[wrong].astype(np.float32),
                "labels": labels[wrong],
                "predictions": predictions[wrong],
            },
            run.directory / "misclassified.safetensors",
        )
    return results


def load_config(directory: str | os.PathLike[str]) -> dict:
    path = Path(directory) / "config.toml"
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{directory} is not a run folder: it has no config.toml")
    return config.resolve(config.read_toml(path))


def evaluate(
    directory: str | os.PathLike[str], split: str = "test", checkpoint: str = "last"
) -> dict[str, float]:
    """Loss and accuracy of a finished run's checkpoint on one split."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    directory = Path(directory)
    cfg = load_config(directory)
    run = Run(cfg, directory)
    path = run.checkpoints / f"{checkpoint}.safetensors"
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{directory} has no checkpoint {path.name}")
    run.trainer.load_checkpoint(path)
    loader = {"dev": run.dev_loader, "test": run.test_loader}.get(split)
    if loader is None:  # training data without augmentation or shuffling
        loader = build.DataLoader(
            run.data.train, batch_size=256, transform=run.test_loader.transform
        )
    return run.trainer.evaluate(loader)
