"""Trainer: the training loop of the lecture, with metrics, callbacks, checkpoints and resume.

One epoch of :meth:`Trainer.fit` is, for every batch ``(x, y)`` of the training loader::

    output = model(x); L = loss(output, y)          # forward
    optimizer.zero_grad(); L.backward()             # gradients into the flat buffers
    [clip the gradient norm]; optimizer.step()      # one update

then, with dev data, an evaluation in eval mode without gradients, and the callbacks. ``fit(train,
epochs)`` trains until ``epochs`` epochs are done *in total*: after ``load_checkpoint`` it
continues where the checkpoint stopped (as Keras' ``initial_epoch``), so resuming means building
the same objects, loading the checkpoint and calling ``fit`` again with the same arguments.

What a checkpoint holds (see :mod:`nabla.train.checkpoint`): the model's state_dict, the
optimizer's state (buffers, step, schedule configs), the training loader's position, every random
stream (the default generator and any module's own), the callbacks' memory, the history and the
counters. Training 4 epochs straight or 2, a checkpoint, a new process and 2 more gives the same
bits. Checkpoints are written atomically and verified on disk before they replace the old file;
with ``keep_previous_checkpoint`` the replaced file stays beside the new one
(``last.previous.safetensors``, see :mod:`nabla.train.checkpoint`).

Ctrl-C (SIGINT) during ``fit`` stops at the end of the current update, not in the middle of one:
the logs and the last checkpoint are whole, and :class:`TrainingInterrupted` (a
``KeyboardInterrupt``) names the step reached and the last checkpoint. A second Ctrl-C stops at
once. (Only in the main thread, where no other SIGINT handler was installed, and not in
data-parallel training, where every rank must stop at the same step.)

``compile=True`` runs the forward, the loss and the backward through :func:`nabla.compile`
(define-and-run: traced at the first batch of each shape, then replayed without building a graph;
a smaller last batch gets a plan of its own), and the evaluation's forward too. The numbers are
those of eager mode, bit for bit, so checkpoints and resume are unchanged.

Losses are assumed to be means over the batch (``reduction="mean"``): the epoch loss is the
sample-weighted mean of the batch losses.

Data-parallel training (``distributed=True``, automatic under ``mpirun`` with several processes;
see :mod:`nabla.distributed`): every rank runs this same loop on its shard of the data
(``DataLoader(shard=(rank, world_size))``). ``fit`` first copies rank 0's parameters to all
ranks and gives each rank its own dropout stream; every step averages the gradients over the
ranks (one allreduce per parameter group) before clipping and the update, and averages the loss
that is logged and checked for divergence. At the end of an epoch the training metrics are
averaged (weighted by samples), BatchNorm running statistics are averaged over ranks, and
evaluation on a sharded loader combines the ranks' results. Only rank 0 shows the progress bar,
prints, and runs callbacks that write files (``main_process_only``); the others run the rest, so
early stopping and schedules decide the same on every rank. The Trainer calls these exchanges
as hooks of :mod:`nabla.train.parallel` at every step and epoch; on one process they do nothing.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from .. import distributed as dist
from ..autograd.grad_mode import no_grad
from ..jit import compile as compile_step
from ..serialization import CheckpointError
from . import checkpoint
from . import metrics as metrics_module
from .callbacks import Callback, ModelCheckpoint
from .history import History, plural, progress_bar, progress_postfix, summary_line
from .parallel import DataParallel, SingleProcess

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Iterator
    from types import FrameType

    from ..autograd.tensor import Tensor
    from ..nn import Module
    from ..optim import Optimizer


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :meth:`Trainer.fit` between two updates."""


class Trainer:
    """Train ``model`` by minimizing ``loss(model(x), y)`` with ``optimizer``.

    - ``metrics``: names (``"accuracy"``, ``"top5_accuracy"``, ``"mse"``, ``"mae"``) or
      :class:`~nabla.train.metrics.Metric` objects, reported for train and dev data;
    - ``callbacks``: :class:`~nabla.train.callbacks.Callback` objects (checkpoint writers run
      after the others at the end of an epoch, so a checkpoint holds every callback's state);
    - ``clip_grad_norm``: if set, gradients are scaled to at most this joint L2 norm;
    - ``stats_every``: the update-to-weight ratio ||Δθ|| / ||θ|| costs a copy of the
      parameters, so it is measured every this many updates (the gradient norm every update);
    - ``distributed``: data-parallel training on MPI (see the module docstring); None (default)
      turns it on when the process was started by an MPI launcher with more than one process;
    - ``keep_previous_checkpoint``: a checkpoint that replaces an older file keeps it as
      ``<name>.previous.safetensors``, a fallback should the new one be damaged later;
    - ``compile``: run each step's forward, loss and backward (and each evaluation batch) as a
      plan traced once by :func:`nabla.compile`; the same numbers, less time.
    """

    def __init__(
        self,
        model: Module,
        loss: Callable[[Tensor, Tensor], Tensor],
        optimizer: Optimizer,
        metrics: Iterable[str | metrics_module.Metric] = (),
        callbacks: Iterable[Callback] = (),
        clip_grad_norm: float | None = None,
        stats_every: int = 10,
        distributed: bool | None = None,
        keep_previous_checkpoint: bool = False,
        compile: bool = False,
    ):
        if not callable(loss):
            raise TypeError(
                f"Trainer: loss must be callable (output, target) -> Tensor, got {loss!r}"
            )
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.metrics = [metrics_module.get(m) for m in metrics]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"Trainer: metric names must be distinct and not 'loss', got {names}")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback objects, got {cb!r}")
        self.callbacks = list(callbacks)
        self.clip_grad_norm, self.stats_every = clip_grad_norm, max(int(stats_every), 1)
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step = 0  # updates made
        self.elapsed = 0.0  # seconds spent in fit, over all sessions
        self.stop_training = False
        self.train_loader = None
        self.keep_previous_checkpoint = keep_previous_checkpoint
        self.last_checkpoint: str | None = None  # the last checkpoint written (verified) or loaded
        self.last_checkpoint_epoch: int | None = None  # the epochs it holds
        self._interrupted = False  # Ctrl-C seen: stop after this update
        self._loader_state = None  # from a checkpoint, applied when fit gets its loader
        self._before = None  # reusable copies of the parameters, for the update ratio
        distributed = dist.under_mpirun() if distributed is None else bool(distributed)
        # where the loop talks to other processes (nothing to say on one): see train/parallel.py
        self.parallel = DataParallel() if distributed else SingleProcess()
        self.communicated_bytes = 0  # gradient bytes each rank sent in the last step
        if compile and self.distributed:
            raise ValueError(
                "Trainer: compile=True is not supported with distributed training yet (the "
                "gradient all-reduce and SyncBatchNorm run outside the traced operations)"
            )
        self.compiled = compile_step(self._forward_backward) if compile else None
        self.compiled_evaluation = compile_step(self._forward) if compile else None

    @property
    def distributed(self) -> bool:
        """Whether this trainer is one rank of a data-parallel job."""
        return isinstance(self.parallel, DataParallel)

    # --- training ---------------------------------------------------------------------------------

    def fit(
        self,
        train: Iterable[tuple[Tensor, Tensor | None]],
        epochs: int,
        dev: Iterable[tuple[Tensor, Tensor | None]] | None = None,
        verbose: int = 1,
    ) -> History:
        """Train until ``epochs`` epochs are done in total; returns the :class:`History`.

        ``verbose``: 0 silent; 1 a progress bar per epoch on a terminal or in a notebook and one
        summary line per epoch; 2 the summary lines only.
        """
        if int(epochs) != epochs or epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be an int >= 0, got {epochs!r}")
        for name, loader in (("train", train), ("dev", dev)):
            if loader is not None and not hasattr(loader, "__iter__"):
                raise TypeError(f"Trainer.fit: {name} must be a DataLoader, got {loader!r}")
        self.train_loader = train
        if self._loader_state is not None and hasattr(train, "load_state_dict"):
            train.load_state_dict(self._loader_state)
            self._loader_state = None
        self.parallel.start(self.model, train)
        verbose = verbose if self.parallel.is_main() else 0
        callbacks = self._ordered_callbacks()
        for cb in callbacks:
            cb.on_train_begin(self)
        try:
            with self._stop_on_ctrl_c():
                self._fit_epochs(train, epochs, dev, verbose, callbacks)
        finally:
            for cb in callbacks:
                cb.on_train_end(self)
        return self.history

    def _fit_epochs(
        self,
        train: Iterable[tuple[Tensor, Tensor | None]],
        epochs: int,
        dev: Iterable[tuple[Tensor, Tensor | None]] | None,
        verbose: int,
        callbacks: list[Callback],
    ) -> None:
        while self.epoch < epochs and not self.stop_training:
            epoch, start = self.epoch, time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_begin(self, epoch)
            logs = self._train_epoch(train, epoch, epochs, verbose, callbacks)
            if dev is not None:
                logs.update({f"dev_{k}": v for k, v in self.evaluate(dev).items()})
            self.elapsed += time.perf_counter() - start
            logs.update(lr=float(self.optimizer.lr), time=round(self.elapsed, 4))
            self.epoch += 1
            self.history.add_epoch({"epoch": epoch, **logs})
            for cb in callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if verbose:
                print(summary_line(epoch, epochs, logs), flush=True)
            self._stop_if_interrupted()

    @contextlib.contextmanager
    def _stop_on_ctrl_c(self) -> Iterator[None]:
        """Within the block, the first Ctrl-C only sets a flag that the loop checks between
        updates (see the module docstring); the handler that was there is put back after."""
        self._interrupted = False
        if (
            not self.parallel.handles_ctrl_c
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return

        def note(signum: int, frame: FrameType | None) -> None:
            self._interrupted = True
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once

        signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _stop_if_interrupted(self) -> None:
        if self._interrupted:
            raise TrainingInterrupted(
                f"stopped by Ctrl-C after update {self.step} ({plural(self.epoch, 'epoch')} "
                f"complete); {self.checkpoint_note()}"
            )

    def checkpoint_note(self) -> str:
        """Which checkpoint a run stopped now could continue from, for messages."""
        if self.last_checkpoint is None:
            return "last verified checkpoint: none was written"
        return (
            f"last verified checkpoint: {self.last_checkpoint} (epoch {self.last_checkpoint_epoch})"
        )

    def _ordered_callbacks(self) -> list[Callback]:
        callbacks = self.callbacks
        if not self.parallel.is_main():
            callbacks = [cb for cb in callbacks if not getattr(cb, "main_process_only", False)]
        return sorted(callbacks, key=lambda cb: isinstance(cb, ModelCheckpoint))

    def _train_epoch(
        self,
        loader: Iterable[tuple[Tensor, Tensor | None]],
        epoch: int,
        epochs: int,
        verbose: int,
        callbacks: list[Callback],
    ) -> dict:
        self.model.train()
        for m in self.metrics:
            m.reset()
        total, count = 0.0, 0
        with progress_bar(loader, epoch, epochs, verbose) as bar:
            for i, (x, y) in enumerate(loader):
                logs = self._train_step(x, y, epoch, i, callbacks)
                total += logs["loss"] * logs["batch_size"]
                count += logs["batch_size"]
                if bar is not None:
                    bar.update(1)
                    if logs["update_ratio"] is not None or i + 1 == bar.total:
                        metrics = {m.name: m.result() for m in self.metrics}
                        text = progress_postfix(total / count, metrics, logs, bar=bar)
                        bar.set_postfix_str(text, refresh=False)
                self._stop_if_interrupted()
        logs = {"loss": total / count, **{m.name: m.result() for m in self.metrics}}
        return self.parallel.epoch_logs(logs, count, self.model)

    def _train_step(
        self, x: Tensor, y: Tensor | None, epoch: int, i: int, callbacks: list[Callback]
    ) -> dict:
        """One update on the batch ``(x, y)``; returns the step's logs."""
        # a diverging run makes inf and nan here; the check below names it (NumPy's warnings
        # would depend on the BLAS thread count: flags raised in its threads are not seen)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.compiled is not None:  # forward, loss and backward, replayed
                loss, output = self.compiled(x, y)
            else:
                loss, output = self._forward(x, y)
        value = self.parallel.global_loss(float(loss.data))  # the global batch's, on every rank
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"the loss is {value} at epoch {epoch + 1}, step {self.step + 1} (batch {i + 1} of "
                f"the epoch), after updates with lr {float(self.optimizer.lr):g}; training "
                "stopped, " + self.checkpoint_note()
            )
        if self.compiled is None:
            self.optimizer.zero_grad()
            loss.backward()
        self.communicated_bytes = self.parallel.reduce_gradients(self.optimizer)
        if self.clip_grad_norm is not None:
            grad_norm = self.optimizer.clip_grad_norm_(self.clip_grad_norm)
        else:
            grad_norm = self.optimizer.grad_norm()
        measure = self.step % self.stats_every == 0
        if measure:
            self._remember_parameters()
        self.optimizer.step()
        self.step += 1
        n = len(x)
        target = y.data if hasattr(y, "data") else y
        for m in self.metrics:
            m.update(output.data, target)
        logs = {
            "epoch": epoch,
            "step": self.step,
            "loss": value,
            "lr": float(self.optimizer.lr),
            "batch_size": n,
            "grad_norm": grad_norm,
            "update_ratio": self._update_ratio() if measure else None,
        }
        self.history.add_step(logs)
        for cb in callbacks:
            cb.on_batch_end(self, self.step, logs)
        return logs

    def _forward(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        output = self.model(x)
        return self.loss(output, y), output

    def _forward_backward(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        """What ``compile=True`` traces: the forward and the gradients (a diverged loss is
        caught after it, before the update, as in eager mode)."""
        loss, output = self._forward(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        return loss, output

    def _remember_parameters(self) -> None:
        vectors = self.optimizer.parameter_vectors()
        if self._before is None or [b.shape for b in self._before] != [v.shape for v in vectors]:
            self._before = [np.empty_like(v) for v in vectors]
        for b, v in zip(self._before, vectors):
            np.copyto(b, v)

    def _update_ratio(self) -> float:
        """||θ_new - θ_old|| / ||θ_old|| over all parameters (about lr for a healthy Adam run,
        1e-3 being the usual rule of thumb)."""
        change = weight = 0.0
        # weights blowing up overflow here before the loss check names the divergence: let the
        # ratio be inf or nan and TrainingDivergedError say what happened
        with np.errstate(over="ignore", invalid="ignore"):
            for b, v in zip(self._before, self.optimizer.parameter_vectors()):
                weight += float(np.dot(b, b))
                np.subtract(v, b, out=b)
                change += float(np.dot(b, b))
            return math.sqrt(change / weight) if weight > 0 else math.inf

    # --- evaluation -------------------------------------------------------------------------------

    def evaluate(self, loader: Iterable[tuple[Tensor, Tensor | None]]) -> dict[str, float]:
        """Loss and metrics over ``loader`` in eval mode without gradients, e.g.
        ``{"loss": 0.08, "accuracy": 0.975}``."""
        fresh = [copy.deepcopy(m) for m in self.metrics]
        for m in fresh:
            m.reset()
        total, count = 0.0, 0
        forward = self.compiled_evaluation or self._forward
        with _eval_mode(self.model), no_grad():
            for x, y in loader:
                loss, output = forward(x, y)
                n = len(x)
                total += float(loss.data) * n
                count += n
                target = y.data if hasattr(y, "data") else y
                for m in fresh:
                    m.update(output.data, target)
        if count == 0:
            raise ValueError("Trainer.evaluate: the loader gave no batches")
        results = {"loss": total / count, **{m.name: m.result() for m in fresh}}
        return self.parallel.evaluation(results, count, loader)

    def predict(self, loader: Iterable[tuple[Tensor, Tensor | None] | Tensor]) -> np.ndarray:
        """The model's outputs for every batch of ``loader``, concatenated (eval mode, no grad)."""
        outputs = []
        with _eval_mode(self.model), no_grad():
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                outputs.append(self.model(x).data)
        return np.concatenate(outputs)

    # --- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything that resuming needs (see the module docstring)."""
        return {
            "model": {k: getattr(v, "data", v) for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "train_loader": self._train_loader_state(),
            "random": checkpoint.random_state(self.model),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "callback_types": [type(cb).__name__ for cb in self.callbacks],
            "history": self.history.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": self.elapsed,
            "stop_training": self.stop_training,
        }

    def _train_loader_state(self) -> dict | None:
        if self._loader_state is not None:  # loaded from a checkpoint, fit has not applied it yet
            return self._loader_state
        if hasattr(self.train_loader, "state_dict"):
            return self.train_loader.state_dict()
        return None

    def load_state_dict(self, state: dict) -> None:
        types = [type(cb).__name__ for cb in self.callbacks]
        if list(state["callback_types"]) != types:
            raise ValueError(
                f"Trainer.load_state_dict: the checkpoint was written with callbacks "
                f"{list(state['callback_types'])}, this trainer has {types}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for cb, cb_state in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(cb_state)
        checkpoint.set_random_state(self.model, state["random"])
        self.history.load_state_dict(state["history"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.elapsed, self.stop_training = float(state["elapsed"]), bool(state["stop_training"])
        self._loader_state = state["train_loader"]
        self.parallel.restored()  # the random streams are rank 0's again: split them anew

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write a resumable checkpoint to ``path`` (atomically, verified on disk)."""
        checkpoint.save(self.state_dict(), path, keep_previous=self.keep_previous_checkpoint)
        self.last_checkpoint, self.last_checkpoint_epoch = str(path), self.epoch

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint`; ``fit`` then continues it.

        A file that is not a verified trainer checkpoint, or whose state does not fit this
        trainer (other callbacks, model or optimizer), raises :class:`CheckpointError` naming it.
        """
        state = checkpoint.load(path)
        try:
            self.load_state_dict(state)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            message = " ".join(str(err).split())  # one line, also for multi-line reports
            raise CheckpointError(
                f"{path}: its state does not fit this trainer ({type(err).__name__}: {message})"
            ) from err
        self.last_checkpoint, self.last_checkpoint_epoch = str(path), self.epoch


@contextlib.contextmanager
def _eval_mode(model: Module) -> Iterator[None]:
    """Put a model in eval mode for a block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


__all__ = ["Trainer", "TrainingDivergedError", "TrainingInterrupted"]
