"""One model trained by several processes (``torchrun``): each takes a shard of every batch.

Every process reads the same global batch (same seeded data order) and trains on its own
rows of it; DistributedDataParallel averages the gradients, so a step sees the whole
batch, as one process would. Evaluations and samples run on every process alike (no
communication); only the losses read for logging are averaged across processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gpt.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the ``world_size`` processes training one model."""

    rank: int
    world_size: int
    local_rank: int  # its GPU on this machine

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs the run and writes its checkpoints."""
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ConfigError(
                f"batch_size {batch_size} does not split over {self.world_size} processes; "
                f"use a multiple of {self.world_size}"
            )

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch: (B, T) -> (B / world_size, T)."""
        rows = batch.shape[0] // self.world_size
        return batch[self.rank * rows : (self.rank + 1) * rows]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over processes of ``values`` (each process's losses of the same steps)."""
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world_size

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block before the others, so that work it caches (tokenizing) is done once."""
        if not self.is_main:
            dist.barrier()
        yield
        if self.is_main:
            dist.barrier()


def join_torchrun_group(device: torch.device) -> ProcessGroup | None:
    """Join the group of processes torchrun started (it sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``
    and the rendezvous address); None for a plain single process. NCCL on GPUs, gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), world_size, local_rank)


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
