"""AdamW with weight decay on weight matrices only.

Norm gains, biases and embeddings (token and position) are not decayed: decaying them pulls
scales and rare tokens' vectors towards zero without regularising anything useful. A parameter
is classified by the module that owns it, so tied weights (an lm_head sharing the token
embedding) count as an embedding and appear once.
"""

from __future__ import annotations

import torch
from torch import nn


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)) or "norm" in type(module).__name__.lower()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weight matrices, and everything else."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) or _is_norm(module):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        leaf = name.rsplit(".", 1)[-1]
        if id(p) in no_decay_ids or p.ndim < 2 or leaf.startswith("bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                   device_type: str) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; the fused kernel on CUDA (same maths, fewer launches)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas,
                             fused=device_type == "cuda")
