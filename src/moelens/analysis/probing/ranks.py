"""Running ``moelens probe`` under ``torchrun``: process group, the one decision rank 0 takes for
all, and a barrier.

``torchrun --nproc_per_node N -m moelens probe ...`` (or ``--nnodes``) sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; a gloo group is enough (ranks exchange only a status line), so the
same command runs on CPUs and GPUs. Without ``WORLD_SIZE`` everything here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moelens.errors import ConfigError, MoelensError, StoreError


@dataclass
class Ranks:
    """This process's place among the probing processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    dist: Any = None

    def barrier(self) -> None:
        if self.dist is not None:
            self.dist.barrier()

    def decide(self, fn: Callable[[], str]) -> str:
        """``fn()`` on rank 0 (it may raise a user error), its answer on every rank: the same
        error is raised everywhere, so no rank waits for one that stopped."""
        outcome = [None]
        if self.rank == 0:
            try:
                outcome[0] = fn()
            except MoelensError as exc:
                outcome[0] = f"error:{type(exc).__name__}:{exc}"
        if self.dist is not None:
            self.dist.broadcast_object_list(outcome, src=0)
        answer = str(outcome[0])
        if answer.startswith("error:"):
            _, kind, message = answer.split(":", 2)
            raise (ConfigError if kind == "ConfigError" else StoreError)(message)
        return answer

    def close(self) -> None:
        if self.dist is not None and self.dist.is_initialized():
            self.dist.destroy_process_group()


def setup() -> Ranks:
    """The process group of a ``torchrun`` launch (gloo), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist)


def rank_device(device: str, ranks: Ranks) -> str:
    """``cuda`` under torchrun means this process's GPU (``cuda:LOCAL_RANK``)."""
    if device == "cuda" and ranks.world > 1:
        return f"cuda:{ranks.local_rank}"
    return device
