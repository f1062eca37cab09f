"""Multi-process training under torchrun: process group, collectives, and model wrapping.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them training is a single
process and every helper here is a no-op. The backend is NCCL on GPUs and gloo on CPU. Only
rank 0 writes files; every rank computes the same decisions from the same inputs.

The MoE auxiliary loss balances the load of the global batch: each MoE layer sums its routing
counts over the processes (:func:`share_routing_stats`), so N processes train like one. The
logged router statistics (``moe`` in metrics.jsonl) are rank 0's slice of the batch.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from moelens.errors import ConfigError


@dataclass
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float, device: torch.device) -> float:
        """The mean of a float over all processes."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of a list of floats over all processes."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (rank order), on every process."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def from_environment() -> DistEnv:
    """The DistEnv torchrun describes, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    return DistEnv(rank=int(os.environ["RANK"]), world_size=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init(env: DistEnv, device: torch.device) -> None:
    """Join the process group (NCCL on GPU, gloo on CPU) if this is a multi-process job."""
    if not env.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(env: DistEnv, batch_size: int) -> None:
    if batch_size % env.world_size:
        raise ConfigError(f"batch_size={batch_size} does not split over {env.world_size} "
                          "processes; use a multiple of the process count")


def wrap(model: nn.Module, env: DistEnv, device: torch.device, has_moe: bool) -> nn.Module:
    """DDP-wrap ``model`` for a multi-process job (unused-parameter search for MoE routing)."""
    if not env.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=has_moe)


def no_sync(model: nn.Module, last_micro: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce on every micro-step but the last of a step."""
    if last_micro or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def _sum_over_processes(t: torch.Tensor) -> torch.Tensor:
    out = t.clone()
    dist.all_reduce(out)
    return out


def share_routing_stats(layers: list[nn.Module], env: DistEnv) -> None:
    """Make the MoE layers' auxiliary loss use the global batch's routing statistics (a no-op
    for a single process). Every process then runs one small all-reduce per layer and
    training forward, in the same order."""
    for mlp in layers:
        if hasattr(mlp, "reduce_stats"):
            mlp.reduce_stats = _sum_over_processes if env.enabled else None
