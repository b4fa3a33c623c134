"""Data-parallel training over the processes ``torchrun`` starts (one per GPU; gloo on a CPU).

Every process reads the same batches in the same order and trains on its own share of each
batch's rows, so truncated-BPTT streams stay with one process and a resumed run continues
exactly. DistributedDataParallel averages the gradients; the first process alone validates,
prints and writes checkpoints, and every decision to stop is agreed by all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from seqgen.errors import UserError


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree(self, flag: bool, device: torch.device) -> bool:
        """True on every process when any one of them says so."""
        if self.size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def shard(self, batch: Any) -> Any | None:
        """This process's rows of a batch (tensors whose first dimension is the batch);
        None when the batch has fewer rows than there are processes."""
        if self.size == 1:
            return batch
        tensors = batch if isinstance(batch, (tuple, list)) else (batch,)
        rows = next(t.size(0) for t in tensors if isinstance(t, torch.Tensor))
        if rows < self.size:
            return None
        picked = tuple(t[self.rank::self.size] if isinstance(t, torch.Tensor) and t.dim()
                       and t.size(0) == rows else t for t in tensors)
        return picked if isinstance(batch, (tuple, list)) else picked[0]


def is_main_process() -> bool:
    """False in the processes after the first one: they train but say nothing."""
    return int(os.environ.get("RANK", "0")) == 0


def join_world(device: torch.device) -> tuple[World, torch.device]:
    """The process group torchrun describes in the environment (or a world of one), and the
    device this process trains on."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started {size} processes but this machine has "
                            f"{torch.cuda.device_count()} GPUs: use --nproc_per_node "
                            f"{torch.cuda.device_count()}")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"training over several processes runs on CUDA or the CPU, not "
                        f"{device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, local_rank), device
