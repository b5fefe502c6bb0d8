"""How the Trainer's loop runs across processes: one process, or data-parallel ranks on MPI.

The Trainer calls the same hooks at every step and epoch whatever the setting; on one process
(:class:`SingleProcess`) each hook hands its input back unchanged, with data parallelism
(:class:`DataParallel`, see :mod:`nabla.distributed`) the hooks are where the ranks talk:

    start              check the loader's shard; copy rank 0's parameters to every rank and
                       give each rank its own dropout stream (once, and again after restored)
    restored           a checkpoint was loaded: the parameters and random streams are rank 0's
    global_loss        a step's loss averaged over the ranks: every rank logs and checks the same
    reduce_gradients   g = (1/W) sum_r g_r before clipping and the update; returns the bytes sent
    epoch_logs         the epoch's metrics averaged over ranks (weighted by samples); BatchNorm
                       running statistics averaged
    evaluation         a sharded evaluation's results combined over the ranks
    is_main            rank 0 alone prints, shows progress and runs the callbacks that write files
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import distributed as dist

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..autograd.tensor import Tensor
    from ..nn import Module
    from ..optim import Optimizer


class SingleProcess:
    """Training in this process alone: nothing to exchange."""

    handles_ctrl_c = True  # the Trainer may catch the first Ctrl-C and stop after the update

    def is_main(self) -> bool:
        return True

    def start(self, model: Module, train_loader: Iterable[tuple[Tensor, Tensor | None]]) -> None:
        pass

    def restored(self) -> None:
        pass

    def global_loss(self, value: float) -> float:
        return value

    def reduce_gradients(self, optimizer: Optimizer) -> int:
        return 0

    def epoch_logs(self, logs: dict, count: int, model: Module) -> dict:
        return logs

    def evaluation(
        self, results: dict, count: int, loader: Iterable[tuple[Tensor, Tensor | None]]
    ) -> dict:
        return results


class DataParallel(SingleProcess):
    """Synchronous data parallelism: every rank runs the same loop on its shard of each global
    batch (``DataLoader(shard=(rank, world_size))``) and the hooks average over the ranks."""

    handles_ctrl_c = False  # under mpirun the launcher owns the signals

    def __init__(self):
        self.synchronized = False  # parameters broadcast and random streams split

    def is_main(self) -> bool:
        return dist.is_main()

    def start(self, model: Module, train_loader: Iterable[tuple[Tensor, Tensor | None]]) -> None:
        world = dist.init()
        shard = getattr(train_loader, "shard", False)
        if world > 1 and shard is None:
            raise dist.DistributedError(
                f"Trainer: distributed training on {world} ranks, but the training loader is not "
                f"sharded: every rank would train on the same batches. Build it with DataLoader("
                f"..., shard=(nabla.distributed.rank(), nabla.distributed.world_size()))"
            )
        if shard and shard != (dist.rank(), world):
            raise dist.DistributedError(
                f"Trainer: the training loader's shard is {shard}, but this is rank {dist.rank()} "
                f"of {world}"
            )
        if not self.synchronized:
            dist.broadcast_parameters(model)
            dist.split_random_streams(model)
            self.synchronized = True

    def restored(self) -> None:
        self.synchronized = False  # the next start broadcasts and splits the streams anew

    def global_loss(self, value: float) -> float:
        return dist.allreduce_metrics({"loss": value})["loss"]

    def reduce_gradients(self, optimizer: Optimizer) -> int:
        return dist.allreduce_gradients(optimizer)

    def epoch_logs(self, logs: dict, count: int, model: Module) -> dict:
        # the step losses were already global; the metrics are this rank's: weight by samples
        logs = dist.allreduce_metrics(logs, weight=count)
        dist.average_buffers(model)
        return logs

    def evaluation(
        self, results: dict, count: int, loader: Iterable[tuple[Tensor, Tensor | None]]
    ) -> dict:
        if getattr(loader, "shard", None) is None:  # every rank saw every sample
            return results
        return dist.allreduce_metrics(results, weight=count)
