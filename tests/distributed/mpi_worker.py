"""One rank of a distributed test: ``mpirun -np W python mpi_worker.py SCENARIO OUT [ARGS]``.

Each scenario trains with ``Trainer(distributed=True)`` and writes ``OUT/rank<r>.npz`` (plain
arrays; the test loads them without pickle) for the pytest side to compare with one process.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

import nabla as nb
from nabla import distributed as dist
from nabla.train import Trainer
from nabla.train.callbacks import Callback, ModelCheckpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mpi_harness as h


def equivalence(out: Path, optimizer: str, norm: str = "none") -> None:
    """50 steps on 2 ranks, per-rank batch 8: each rank starts from different weights."""
    world = dist.init()
    rank = dist.rank()
    model, opt, loss = h.build(optimizer, h.INIT_SEED + rank, norm)
    data = h.dataset(400)
    trainer = Trainer(model, loss, opt, distributed=True)
    trainer.fit(h.loader(data, 16 // world, shard=(rank, world)), epochs=2, verbose=0)
    losses = np.array(trainer.history.steps["loss"])
    np.savez(
        out / f"rank{rank}.npz",
        params=h.flat_parameters(model),
        buffers=h.buffers(model),
        losses=losses,
        bytes=trainer.communicated_bytes,
    )


def dropout(out: Path) -> None:
    """20 steps with dropout 0.3; the probe shows each rank's stream after training."""
    world = dist.init()
    rank = dist.rank()
    model, opt, loss = h.build("adam", h.INIT_SEED, dropout=0.3)
    trainer = Trainer(model, loss, opt, distributed=True)
    trainer.fit(h.loader(h.dataset(160), 16 // world, shard=(rank, world)), epochs=2, verbose=0)
    probe = nb.random.default_generator().random(4)
    np.savez(out / f"rank{rank}.npz", params=h.flat_parameters(model), probe=probe)


class _Fail(Callback):
    def __init__(self, how: str):
        self.how = how

    def on_batch_end(self, trainer, step, logs):
        if step == 10 and dist.rank() == 1:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("injected failure at step 10")


def failure(out: Path, how: str) -> None:
    world = dist.init()
    model, opt, loss = h.build("sgd")
    trainer = Trainer(model, loss, opt, callbacks=[_Fail(how)], distributed=True)
    trainer.fit(h.loader(h.dataset(4000), 8, shard=(dist.rank(), world)), epochs=50, verbose=0)


def checkpoint(out: Path, epochs: str) -> None:
    """Train to ``epochs`` in total with global batch 12, continuing OUT/last.safetensors if it
    exists (written by rank 0 of an earlier job, possibly with another number of ranks)."""
    world = dist.init()
    rank = dist.rank()
    model, opt, loss = h.build("adam")
    saver = ModelCheckpoint(out, last=True)
    trainer = Trainer(model, loss, opt, callbacks=[saver], distributed=True)
    last = out / "last.safetensors"
    if last.exists():
        trainer.load_checkpoint(last)
    trainer.fit(
        h.loader(h.dataset(360), 12 // world, shard=(rank, world)), epochs=int(epochs), verbose=0
    )
    np.savez(out / f"rank{rank}.npz", params=h.flat_parameters(model))


SCENARIOS = {
    "equivalence": equivalence,
    "dropout": dropout,
    "failure": failure,
    "checkpoint": checkpoint,
}

if __name__ == "__main__":
    scenario, directory, *rest = sys.argv[1:]
    Path(directory).mkdir(parents=True, exist_ok=True)
    SCENARIOS[scenario](Path(directory), *rest)
