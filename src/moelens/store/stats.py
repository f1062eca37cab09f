"""Streaming per-unit statistics (firing rate, max, mean, dead) over blocks of activations."""

from __future__ import annotations

import numpy as np


class UnitStats:
    """Accumulates statistics of ``width`` units over [rows, width] blocks, one block at a time."""

    def __init__(self, width: int, threshold: float = 0.0):
        self.threshold = threshold
        self.count = 0
        self.fires = np.zeros(width, dtype=np.int64)
        self.total = np.zeros(width, dtype=np.float64)
        self.max = np.full(width, -np.inf, dtype=np.float64)

    def add(self, block: np.ndarray) -> None:
        if block.shape[0] == 0:
            return
        self.count += block.shape[0]
        self.fires += (np.abs(block) > self.threshold).sum(axis=0)
        self.total += block.sum(axis=0, dtype=np.float64)
        np.maximum(self.max, block.max(axis=0), out=self.max)

    def result(self) -> dict[str, np.ndarray]:
        n = self.count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.total / n if n else np.full_like(self.total, np.nan)
        return {
            "firing_rate": (self.fires / n if n else np.zeros_like(self.total)).astype(np.float32),
            "max": (self.max if n else np.full_like(self.max, np.nan)).astype(np.float32),
            "mean": mean.astype(np.float32),
            "dead": self.fires == 0,
            "count": np.full(self.fires.shape, n, dtype=np.int64),
        }
