"""Runs: a config in, a run folder out.

A run folder holds::

    config.toml          the resolved config (``nabla train RUN/config.toml`` repeats the run)
    metrics.jsonl        one line per update and per epoch (see callbacks.JSONLLogger)
    checkpoints/         last.safetensors (every epoch) and best.safetensors (lowest dev loss)
    results.json         final dev and test metrics, confusion matrix, best epoch, wall time
    misclassified.safetensors   test images the model gets wrong (image data only)
    plots/  report.html  the figures and the self-contained report (nabla.report)

The test split is evaluated once, at the end, with the final weights (with early stopping: the
best epoch's weights); selection between runs uses dev metrics (see ``nabla sweep``).

``distributed=True`` (``mpirun -np W nabla train --distributed``): every rank builds the same run,
trains on its shard of each global batch of ``batch_size`` (see :mod:`nabla.distributed`), and
rank 0 alone writes the folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

import nabla

from .. import distributed as dist
from .. import random
from ..serialization import save
from . import build, config
from .callbacks import EarlyStopping, JSONLLogger, ModelCheckpoint
from .checkpoint import load as load_checkpoint
from .trainer import Trainer

MISCLASSIFIED = 36


class Run:
    """The objects of one run, built from its config."""

    def __init__(self, cfg: dict, directory: Path, distributed: bool = False):
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
        callbacks.append(self.saver)
        loss = nabla.nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
        self.trainer = Trainer(self.model, loss, optimizer, metrics=["accuracy"], callbacks=callbacks,
                               clip_grad_norm=cfg["clip_grad_norm"] or None,
                               distributed=distributed)  # fmt: skip


def new_run_directory(cfg: dict, root="runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{cfg['dataset']}-{cfg['model']}-{cfg['optimizer']}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def train(cfg: dict, directory, resume: bool = False, verbose: int = 1, report: bool = True,
          test: bool = True, distributed: bool = False) -> dict:  # fmt: skip
    """Train the run ``cfg`` in ``directory`` (continuing its last checkpoint with ``resume``);
    returns the results written to ``results.json``. ``test=False`` leaves the test split
    untouched (sweeps evaluate only the configuration they select). ``distributed``: this process
    is one rank of a data-parallel job (the same call on every rank, the same ``directory``)."""
    directory = Path(directory)
    if distributed:
        dist.init()
    main = dist.is_main()  # rank 0 writes the folder
    if main:
        directory.mkdir(parents=True, exist_ok=True)
        _write_text(directory / "config.toml", config.to_toml(cfg))
    verbose, report = (verbose, report) if main else (0, False)
    run = Run(cfg, directory, distributed)
    if resume:
        last = run.checkpoints / "last.safetensors"
        if not last.exists():
            raise FileNotFoundError(
                f"cannot resume {directory}: it has no {last.relative_to(directory)}"
            )
        run.trainer.load_checkpoint(last)
    if verbose:
        print(f"nabla {nabla.__version__}: training {describe(cfg)} -> {directory}", flush=True)
    run.trainer.fit(run.train_loader, cfg["epochs"], dev=run.dev_loader, verbose=verbose)
    results = finish(run, test, write=main)
    if verbose:
        scores = "  ".join(
            f"{split} accuracy {m['accuracy']:.4f}" for split, m in results["evaluations"].items()
        )
        print(f"{scores}  ({results['wall_time']:.1f}s training)", flush=True)
    if report:
        from ..report import build as build_report

        path = build_report(directory)
        if verbose:
            print(f"report: {path}", flush=True)
    return results


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
    return (f"{model} on {cfg['dataset']}, {cfg['optimizer']} {lr} {cfg['schedule']}, "
            f"{cfg['epochs']} epochs of batch {cfg['batch_size']}{ranks}")  # fmt: skip


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
        "confusion": {"split": split, "matrix": build.confusion_matrix(labels, predictions, data.classes).tolist()},
        "wall_time": round(trainer.elapsed, 3),
        "epochs_run": trainer.epoch,
        "stopped_early": bool(trainer.stop_training),
        "nabla_version": nabla.__version__,
    }  # fmt: skip
    if run.saver.best_epoch is not None:
        results["best"] = {"epoch": int(run.saver.best_epoch), "monitor": "dev_loss",
                           "value": float(run.saver.tracker.best)}  # fmt: skip
    if dist.active():
        results["ranks"] = dist.world_size()
    if not write:
        return results
    _write_text(run.directory / "results.json", json.dumps(results, indent=2) + "\n")
    wrong = np.flatnonzero(predictions != labels)[:MISCLASSIFIED]
    if data.images and wrong.size:
        save({"images": dataset.x[wrong].astype(np.float32), "labels": labels[wrong],
              "predictions": predictions[wrong]}, run.directory / "misclassified.safetensors")  # fmt: skip
    return results


def load_config(directory) -> dict:
    path = Path(directory) / "config.toml"
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a run folder: it has no config.toml")
    return config.resolve(config.read_toml(path))


def evaluate(directory, split: str = "test", checkpoint: str = "last") -> dict:
    """Loss and accuracy of a finished run's checkpoint on one split."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    directory = Path(directory)
    cfg = load_config(directory)
    run = Run(cfg, directory)
    path = run.checkpoints / f"{checkpoint}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{directory} has no checkpoint {path.name}")
    run.model.load_state_dict(load_checkpoint(path)["model"])
    loader = {"dev": run.dev_loader, "test": run.test_loader}.get(split)
    if loader is None:  # training data without augmentation or shuffling
        loader = build.DataLoader(
            run.data.train, batch_size=256, transform=run.test_loader.transform
        )
    return run.trainer.evaluate(loader)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
