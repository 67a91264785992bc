"""Distributed data parallel through torchrun: process group, rank facts, reductions."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device_type: str) -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE); a lone process is world 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return World()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(local)
    return World(rank, world, local)


def teardown(w: World) -> None:
    """Leave the group together: rank 0 may still be writing the report when the others finish."""
    if w.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_sum(w: World, values: list[float], device) -> list[float]:
    if not w.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_int(w: World, value: int, device) -> int:
    if not w.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, 0)
    return int(t.item())
