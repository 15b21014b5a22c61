"""The multi-process (torchrun) context of a training run (devices come from :mod:`SAFNetSpineLib.runtime`).

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment, set by torchrun, not by
users) each process joins a process group: NCCL when it trains on a GPU, gloo on CPU.
Only rank 0 writes files; every collective used here moves plain tensors (nothing is
pickled between processes).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from SAFNetSpineLib.runtime import resolve_device


def process_rank() -> int:
    """Global rank of this process: ``RANK`` as set by torchrun, 0 outside torchrun."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """False in torchrun processes other than rank 0 (they train but write nothing)."""
    return process_rank() == 0


@dataclass
class DistributedContext:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: Global rank (0 writes files and reports progress).
        world_size: Number of processes.
        local_rank: Rank on this node.
        device: This process's device.
        initialized: True if this context created the process group (and must destroy it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over all processes (identity without DDP)."""
        if not self.distributed:
            return tensor
        moved = tensor.to(self.device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        return moved.to(tensor.device)

    def any_true(self, flag: bool) -> bool:
        """True if ``flag`` is true on any process (keeps ranks stopping together)."""
        if not self.distributed:
            return flag
        return bool(self.all_reduce_sum(torch.tensor([1.0 if flag else 0.0])).item() > 0)

    def close(self) -> None:
        """Destroy the process group this context created, while the interpreter is fully alive.

        A DistributedDataParallel wrapper keeps the group alive from inside reference cycles,
        so ``destroy_process_group`` alone does not end it: gloo's worker threads and the
        tensors they hold were then torn down whenever the garbage collector got there, at
        worst during interpreter shutdown, where a rank aborted with "terminate called without
        an active exception". Collecting first makes this call the group's last reference.
        """
        if self.initialized and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()


def setup_distributed(device_preference: str = "auto") -> DistributedContext:
    """Join the torchrun process group if launched by torchrun, else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size <= 1:
        return DistributedContext(0, 1, 0, device)
    initialized = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        initialized = True
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, device, initialized)
