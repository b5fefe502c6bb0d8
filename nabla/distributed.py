"""Synchronous data-parallel training on MPI: one model per process, one allreduce per step.

Each of W processes (ranks) holds a full copy of the model and the optimizer and sees its own
share of every batch. One step of data-parallel SGD on a global batch of size B = W b is::

    rank r:  g_r = (1/b) sum over its b samples of grad loss      (forward + backward, local)
    all:     g = (1/W) sum_r g_r                                   (ONE Allreduce per group)
    rank r:  theta <- update(theta, g)                             (the same on every rank)

With equal shares, g is exactly the gradient of the mean loss over the global batch, so W ranks
with batch b follow the same trajectory as one process with batch W b (Goyal et al. 2017); the
parameters stay identical because every rank starts from rank 0's (``broadcast_parameters``) and
applies the same update to the same numbers.

The optimizer keeps each parameter group's gradients in one flat buffer, so the allreduce sends
one message of ``4 x parameters`` bytes per group (float32) instead of one per tensor.

MPI comes from ``mpi4py`` (``pip install 'nabla[distributed]'`` with a system MPI such as
Debian's ``openmpi-bin libopenmpi-dev``). Importing nabla never needs it: everything here works
as a single process (rank 0 of 1) until :func:`init` is called, and ``init`` is what imports
mpi4py. See docs/distributed.md.

Failure: once :func:`init` ran, an exception that escapes on any rank prints the traceback and a
line naming the rank, then calls ``MPI_Abort``, which ends every process of the job (a rank that
just exited would leave the others waiting forever in their next collective).
"""

from __future__ import annotations

import os
import sys

import numpy as np

_comm = None  # mpi4py's COMM_WORLD once init() ran
_MPI = None

#: Environment variables that MPI launchers set in every process they start (Open MPI, MPICH /
#: Hydra and Intel MPI, PMIx, Slurm's srun with PMI).
_LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class DistributedError(RuntimeError):
    """Distributed training cannot start or continue (no MPI, inconsistent ranks, ...)."""


def launched_size() -> int:
    """The number of processes the MPI launcher started, read from its environment variables
    (1 when not started by ``mpirun``/``mpiexec``/``srun``). Needs no MPI import."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def under_mpirun() -> bool:
    """True in a process started by an MPI launcher with more than one process."""
    return launched_size() > 1


def _import_mpi():
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as err:  # no mpi4py, or mpi4py without a working MPI library
            raise DistributedError(
                "distributed training needs mpi4py and an MPI library: "
                "`apt-get install openmpi-bin libopenmpi-dev` (or your cluster's MPI module), then "
                f"`pip install 'nabla[distributed]'` ({type(err).__name__}: {err})"
            ) from err
        _MPI = MPI
    return _MPI


def init() -> int:
    """Start MPI (once; later calls do nothing) and return the number of ranks.

    Installs the failure handler: an uncaught exception on any rank aborts the whole job.
    """
    global _comm
    if _comm is None:
        _comm = _import_mpi().COMM_WORLD
        if _comm.Get_size() > 1:
            _install_abort_handler()
    return _comm.Get_size()


def is_initialized() -> bool:
    return _comm is not None


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (0 before :func:`init`)."""
    return 0 if _comm is None else _comm.Get_rank()


def world_size() -> int:
    """The number of ranks (1 before :func:`init`)."""
    return 1 if _comm is None else _comm.Get_size()


def is_main() -> bool:
    """True on rank 0, the rank that prints, logs and writes files."""
    return rank() == 0


def active() -> bool:
    """True when MPI is initialized with more than one rank (collectives are needed)."""
    return _comm is not None and _comm.Get_size() > 1


# --- failure handling ---------------------------------------------------------------------------


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` naming this rank and end every process of the job (``MPI_Abort``).
    A no-op when not running on several ranks."""
    if not active():
        return
    sys.stderr.write(f"nabla.distributed: rank {rank()} of {world_size()}: {message}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    _comm.Abort(code)


def _install_abort_handler() -> None:
    previous = sys.excepthook

    def handler(kind, value, traceback):
        previous(kind, value, traceback)
        abort(f"failed with {kind.__name__}: {value}; aborting all ranks", 1)

    sys.excepthook = handler


# --- collectives --------------------------------------------------------------------------------


def _contiguous(array: np.ndarray, what: str) -> np.ndarray:
    if not (array.flags.c_contiguous and array.flags.writeable):
        raise DistributedError(
            f"{what}: needs a writable contiguous array, got strides {array.strides}"
        )
    return array


def broadcast_parameters(obj, root: int = 0) -> None:
    """Overwrite every rank's parameters with rank ``root``'s, in place.

    ``obj`` is a module (its parameters and its buffers, such as BatchNorm's running statistics,
    one Bcast each) or an optimizer (each group's flat parameter buffer, one Bcast per group).
    """
    if not active():
        return
    if hasattr(obj, "parameter_vectors"):  # an optimizer
        for theta in obj.parameter_vectors():
            _comm.Bcast(_contiguous(theta, "broadcast_parameters"), root=root)
        return
    tensors = [*obj.parameters(), *(b for _, b in obj.named_buffers() if b is not None)]
    for tensor in tensors:
        _comm.Bcast(_contiguous(tensor.data, "broadcast_parameters"), root=root)


def allreduce_gradients(optimizer) -> int:
    """Average the gradients over ranks in place: ONE ``Allreduce`` (sum) per parameter group on
    its flat gradient buffer, then a scale by 1/W. Returns the bytes each rank contributed
    (itemsize x parameters, summed over groups); 0 on a single rank."""
    if not active():
        return 0
    sent, scale = 0, 1.0 / world_size()
    for g in optimizer.gradient_vectors():
        _comm.Allreduce(_MPI.IN_PLACE, _contiguous(g, "allreduce_gradients"), op=_MPI.SUM)
        g *= scale
        sent += g.nbytes
    return sent


def allreduce_sum_(array: np.ndarray) -> np.ndarray:
    """Sum ``array`` over ranks, in place (returned for convenience); unchanged on one rank."""
    if active():
        _comm.Allreduce(_MPI.IN_PLACE, _contiguous(array, "allreduce_sum_"), op=_MPI.SUM)
    return array


def allreduce_metrics(metrics: dict, weight: float = 1.0) -> dict:
    """The ``weight``-weighted mean of each value over ranks (one Allreduce of a small vector).

    Pass the number of samples behind each rank's values (means) as ``weight`` when the ranks saw
    different amounts of data; with the default every rank counts the same. Non-numeric entries
    and None are kept as they are on this rank.
    """
    if not active():
        return dict(metrics)
    keys = [k for k, v in metrics.items() if isinstance(v, (int, float, np.number))]
    values = np.array(
        [float(metrics[k]) * weight for k in keys] + [float(weight)], dtype=np.float64
    )
    _comm.Allreduce(_MPI.IN_PLACE, values, op=_MPI.SUM)
    total = values[-1]
    return {**metrics, **{k: float(v / total) for k, v in zip(keys, values[:-1])}}


def average_buffers(module) -> None:
    """Replace each floating-point buffer (BatchNorm's running mean and variance) by its mean over
    ranks, so evaluation and checkpoints agree on every rank. Integer buffers are left alone."""
    if not active():
        return
    buffers = [
        b.data for _, b in module.named_buffers() if b is not None and b.data.dtype.kind == "f"
    ]
    if not buffers:
        return
    flat = np.concatenate([b.reshape(-1).astype(np.float64) for b in buffers])
    _comm.Allreduce(_MPI.IN_PLACE, flat, op=_MPI.SUM)
    flat /= world_size()
    start = 0
    for b in buffers:
        b[...] = flat[start : start + b.size].reshape(b.shape)
        start += b.size


def broadcast_text(text: str | None, root: int = 0) -> str:
    """Rank ``root``'s string on every rank (UTF-8 bytes through Bcast; nothing is pickled)."""
    if not active():
        return text
    data = np.frombuffer((text or "").encode(), dtype=np.uint8) if rank() == root else None
    size = np.array([0 if data is None else data.size], dtype=np.int64)
    _comm.Bcast(size, root=root)
    buffer = np.empty(int(size[0]), dtype=np.uint8) if data is None else data.copy()
    _comm.Bcast(buffer, root=root)
    return buffer.tobytes().decode()


def barrier() -> None:
    if active():
        _comm.Barrier()


# --- random streams -----------------------------------------------------------------------------


def split_random_streams(model=None) -> None:
    """Give each rank its own random streams for dropout and other per-step draws.

    Rank r replaces the state of the default generator (and of every module's own generator)
    by the same state jumped ahead r times (``PCG64.jumped(r)``: 2^127 draws per jump, so the
    streams never overlap). Rank 0 keeps its stream: a 1-rank run draws what a plain run draws.
    Data order and augmentation do not use these streams (they are seeded by epoch and sample),
    so they do not depend on the number of ranks. Because jumping commutes with drawing, a
    checkpoint of rank 0's streams, loaded on every rank and split again, continues each rank's
    own stream exactly (for runs where every rank draws the same amount).
    """
    r = rank()
    if r == 0:
        return
    from . import random

    generators = [random.default_generator()]
    if model is not None:
        generators += [
            m.generator
            for _, m in model.named_modules()
            if isinstance(getattr(m, "generator", None), np.random.Generator)
        ]
    for generator in generators:
        generator.bit_generator.state = generator.bit_generator.jumped(r).state


__all__ = [
    "DistributedError", "abort", "active", "allreduce_gradients", "allreduce_metrics",
    "allreduce_sum_", "average_buffers", "barrier", "broadcast_parameters", "broadcast_text",
    "init", "is_initialized", "is_main", "launched_size", "rank", "split_random_streams",
    "under_mpirun", "world_size",
]  # fmt: skip
