"""Training under torchrun: the world a process belongs to (read from torchrun's environment),
joining and leaving it, and the few collective steps the trainer needs (a sum over ranks, a
barrier, rank 0's value on every rank). A plain run is a world of one, where each of these does
nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world() -> World:
    """The world torchrun started this process in (its process group joined: NCCL on CUDA, gloo
    elsewhere), or a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return World(rank, size, local)


def leave_world(world: World) -> None:
    """Wait for every rank (rank 0 may still be evaluating), then close the process group:
    a rank that exits early would break its peers' connections."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """``values`` summed over every rank (in float64)."""
    if not world.distributed:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(world: World) -> None:
    """Wait until every rank gets here."""
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def from_main(make: Callable[[], T], world: World) -> T:
    """What ``make`` returns on rank 0 (the only rank that calls it), on every rank."""
    if not world.distributed:
        return make()
    import torch.distributed as dist

    holder = [make() if world.main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
