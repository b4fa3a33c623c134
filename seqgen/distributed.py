"""Data-parallel training over the processes ``torchrun`` starts (one per GPU; gloo on a CPU).

Every process reads the same batches in the same order and trains on its own share of each
batch's rows, so truncated-BPTT streams stay with one process and a resumed run continues
exactly. DistributedDataParallel averages the gradients; the loss is scaled by the whole
batch's target count, so the average is per target, as with one process. The first process
alone validates, prints and writes checkpoints (with every process's carried state and random
generator), and every decision to stop is agreed by all of them, on the first one's clock.
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
    owns_group: bool = False  # this World started the process group and ends it
    # Agreements (stop, clocks, checkpoint state) travel over gloo on the CPU, so they never
    # wait for a GPU: the gradient norm stays the step's one host-device synchronisation.
    control: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sync(self, stop: bool, clocks: tuple[float, ...]) -> tuple[bool, tuple[float, ...]]:
        """The once-per-step agreement: stop when any process asks to; every process takes
        the first one's clocks, so budgets and schedules are the same everywhere."""
        if self.size == 1:
            return stop, clocks
        mine = clocks if self.main else (0.0,) * len(clocks)  # clocks are never negative
        value = torch.tensor([1.0 if stop else 0.0, *mine], dtype=torch.float64)
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control)
        flag, *agreed = value.tolist()
        return flag > 0, tuple(agreed)

    def broadcast(self, obj: Any) -> Any:
        """The first process's ``obj`` on every process."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every process's ``obj``, in rank order, on the first process (None elsewhere)."""
        if self.size == 1:
            return [obj]
        boxes = [None] * self.size if self.main else None
        dist.gather_object(obj, boxes, dst=0, group=self.control)
        return boxes

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

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


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
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    control = dist.new_group(backend="gloo") if device.type == "cuda" else None
    return World(rank, size, local_rank, owns, control), device
