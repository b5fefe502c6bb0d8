"""Shared by the distributed tests and by mpi_worker.py, the script they start under mpirun.

``build`` makes the small float64 problem both sides train, so one process (the reference, in
the pytest process) and W ranks (under mpirun) start from the same weights and data order.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import nabla as nb
from nabla import optim
from nabla.data import ArrayDataset, DataLoader

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mpi_worker.py"
FEATURES, CLASSES, HIDDEN = 12, 4, 24
INIT_SEED = 100  # rank r builds its model from INIT_SEED + r: the broadcast must fix that


def skip_reason() -> str | None:
    """Why the MPI tests cannot run here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return (
            "mpi4py is not installed: pip install -e '.[distributed]' "
            "(with openmpi-bin libopenmpi-dev)"
        )
    if launcher() is None:
        return "no mpirun or mpiexec on PATH: apt-get install openmpi-bin libopenmpi-dev"
    return None


def launcher() -> str | None:
    return shutil.which("mpirun") or shutil.which("mpiexec")


def run_mpi(args: list, ranks: int = 2, timeout: float = 120.0, cwd=None) -> tuple:
    """Run ``python ARGS`` (or a command, when args[0] is not a .py file) on ``ranks`` processes;
    returns (CompletedProcess, seconds). One BLAS thread per rank: the machine has 2 cores."""
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NUMBA_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    command = [launcher(), "-np", str(ranks)]
    if _is_open_mpi():
        command += ["--oversubscribe", "--bind-to", "none"]
    program = [sys.executable, *args] if str(args[0]).endswith(".py") else list(args)
    start = time.perf_counter()
    done = subprocess.run(
        [*command, *program], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd
    )
    return done, time.perf_counter() - start


@functools.cache
def _is_open_mpi() -> bool:
    version = subprocess.run([launcher(), "--version"], capture_output=True, text=True)
    return "Open MPI" in version.stdout + version.stderr


def dataset(samples: int, seed: int = 7) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, FEATURES))
    y = (x[:, :CLASSES] + 0.5 * rng.standard_normal((samples, CLASSES))).argmax(axis=1)
    return ArrayDataset(x, y)


def build(optimizer: str, init_seed: int = INIT_SEED, norm: str = "none", dropout: float = 0.0):
    """(model, optimizer, loss) in float64. ``norm``: none, batch (BatchNorm1d) or sync."""
    nb.manual_seed(init_seed)
    layers = [nb.nn.Linear(FEATURES, HIDDEN, dtype="float64")]
    if norm == "batch":
        layers.append(nb.nn.BatchNorm1d(HIDDEN, dtype="float64"))
    elif norm == "sync":
        layers.append(nb.nn.SyncBatchNorm(HIDDEN, dtype="float64"))
    layers.append(nb.nn.Tanh())
    if dropout:
        layers.append(nb.nn.Dropout(dropout))
    layers.append(nb.nn.Linear(HIDDEN, CLASSES, dtype="float64"))
    model = nb.nn.Sequential(*layers)
    if optimizer == "sgd":
        opt = optim.SGD(model.named_parameters(), lr=0.05, momentum=0.9)
    else:
        opt = optim.Adam(model.named_parameters(), lr=0.01)
    return model, opt, nb.nn.CrossEntropyLoss()


def loader(data, batch: int, shard=None) -> DataLoader:
    return DataLoader(data, batch_size=batch, shuffle=True, seed=3, shard=shard)


def flat_parameters(model) -> np.ndarray:
    return np.concatenate([p.data.reshape(-1) for p in model.parameters()])


def buffers(model) -> np.ndarray:
    parts = [
        b.data.reshape(-1)
        for _, b in model.named_buffers()
        if b is not None and b.data.dtype.kind == "f"
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
