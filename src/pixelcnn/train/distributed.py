"""Data-parallel training across processes, through PyTorch's own engine.

``torchrun --nproc_per_node=N -m pixelcnn train ...`` starts N processes and tells each its
rank in environment variables (multi-node by torchrun's usual flags). Every process draws
the same global batch (a pure function of seed and step), trains on its own slice of it,
and DistributedDataParallel averages the gradients, so N processes take the same steps as
one process with the same global batch. Only rank 0 writes checkpoints, logs and pictures.
The backend is NCCL on GPUs and gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def silent(*args: Any, **kwargs: Any) -> None:
    """``print`` (or a log) for the processes other than the main one: they say nothing."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self) -> torch.device:
        """This process's GPU (by local rank) when there are GPUs, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's part of a global batch: every size-th image from its rank on."""
        return indices[self.rank :: self.size]

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ValueError(
                f"the batch of {batch_size} images does not split evenly over "
                f"{self.size} processes; use a multiple of {self.size}"
            )

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds in every process (so all take the same branch)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (each passes its own)."""
        if not self.distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(total)
        return float(total.item()) / self.size

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to run forward passes through: DDP averages gradients in backward."""
        if not self.distributed:
            return model
        device = next(model.parameters()).device
        devices = [device] if device.type == "cuda" else None
        # some parameters never get a gradient (the last gated block's residual output
        # feeds nothing); the set is the same at every step, which static_graph allows
        return DistributedDataParallel(model, device_ids=devices, static_graph=True)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _collective_device(self) -> torch.device:
        return self.device() if dist.get_backend() == "nccl" else torch.device("cpu")


SINGLE = World()


def join_from_environment() -> World:
    """Join the process group that torchrun (or any launcher setting RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR and MASTER_PORT) describes; a lone process needs none."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    world = World(
        rank=int(os.environ["RANK"]),
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(world.device())
        dist.init_process_group(backend=backend)
    return world


def leave(world: World) -> None:
    """Leave the process group (after the last collective call)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
