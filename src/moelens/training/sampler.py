"""Which token windows each process trains and validates on.

The windows of optimizer step ``t`` are a pure function of ``(seed, t)``: a numpy generator is
seeded from that pair, draws the whole *global* batch (``grad_accum * batch_size`` windows),
and each process takes its slice of every micro-batch. Consequences:

- resuming at step ``t`` needs no sampler state and continues exactly;
- N processes together see exactly the windows one process would, so their averaged gradient
  equals the single-process one.

A window is ``ctx + 1`` tokens (inputs and next-token targets). Chess data made of fixed blocks
(``meta.block_size``) is sampled at block starts when ``ctx + 1 == block_size`` (every example
then begins with ';' as in the reference setup) and at any offset otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_TRAIN_STREAM = 0
_VAL_STREAM = 1


@dataclass
class WindowSampler:
    """Draws ``ctx + 1``-token windows from a 1-d token array."""

    tokens: np.ndarray
    ctx: int
    block_size: int | None = None

    def __post_init__(self) -> None:
        n = len(self.tokens)
        self.aligned = self.block_size is not None and self.ctx + 1 == self.block_size
        if self.aligned:
            self.n_windows = n // self.block_size  # type: ignore[operator]
        else:
            self.n_windows = max(0, n - self.ctx)

    def offsets(self, seed: int, stream: int, step: int, count: int) -> np.ndarray:
        """``count`` window start offsets, determined by (seed, stream, step) alone."""
        rng = np.random.default_rng([seed, stream, step])
        idx = rng.integers(0, self.n_windows, size=count, dtype=np.int64)
        return idx * self.block_size if self.aligned else idx

    def sequential_offsets(self) -> np.ndarray:
        """Non-overlapping windows covering the array once (every token predicted once)."""
        if self.aligned:
            return np.arange(self.n_windows, dtype=np.int64) * self.block_size
        return np.arange(0, len(self.tokens) - self.ctx, self.ctx, dtype=np.int64)

    def windows(self, offsets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[B, ctx]`` and targets ``[B, ctx]`` (int64) for the given offsets."""
        rows = np.stack([np.asarray(self.tokens[o:o + self.ctx + 1]) for o in offsets])
        rows = torch.from_numpy(rows.astype(np.int64))
        return rows[:, :-1], rows[:, 1:]


@dataclass
class BatchPlan:
    """How a global batch splits into micro-batches and process slices."""

    batch_size: int
    grad_accum: int
    rank: int = 0
    world_size: int = 1

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.world_size

    def local(self, offsets: np.ndarray, micro: int) -> np.ndarray:
        """This process's slice of micro-batch ``micro`` of a global batch of offsets."""
        start = micro * self.batch_size + self.rank * self.local_batch
        return offsets[start:start + self.local_batch]


def train_offsets(sampler: WindowSampler, plan: BatchPlan, seed: int, step: int) -> np.ndarray:
    """All ``grad_accum * batch_size`` offsets of optimizer step ``step``."""
    return sampler.offsets(seed, _TRAIN_STREAM, step, plan.grad_accum * plan.batch_size)


def val_offsets(sampler: WindowSampler, batch_size: int, iters: int, seed: int) -> np.ndarray:
    """The fixed validation windows (the same at every evaluation, so losses compare)."""
    return sampler.offsets(seed, _VAL_STREAM, 0, iters * batch_size)
