"""Learning-rate schedule: linear warmup to ``lr``, then cosine decay reaching ``min_lr`` at the
last update.

A pure function of the step, so the schedule needs no state of its own: resuming at step ``t``
gives exactly the learning rate the uninterrupted run used.
"""

from __future__ import annotations

import math


def lr_at(step: int, lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based: the update that makes step+1)."""
    if warmup_iters > 0 and step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    span = max(1, max_iters - 1 - warmup_iters)  # the last update uses min_lr
    progress = min(1.0, (step - warmup_iters) / span)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
