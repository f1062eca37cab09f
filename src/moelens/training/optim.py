"""AdamW with weight decay on weight matrices only.

Norm gains, biases and embeddings (token and position) are not decayed: decaying them pulls
scales and rare tokens' vectors towards zero without regularising anything useful. A parameter
is classified by the module that owns it, so tied weights (an lm_head sharing the token
embedding) count as an embedding and appear once. A bias is recognised by shape (any 1-D
parameter) or by name: the MoE layer's per-expert encoder biases ``b_enc`` are [M, D] matrices,
so the shape rule alone would decay them.
"""

from __future__ import annotations

import torch
from torch import nn


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)) or "norm" in type(module).__name__.lower()


BIAS_NAMES = ("bias", "b_enc", "b_dec")
"""Parameter names (the last part of the dotted name) that are biases whatever their shape."""


def is_bias(name: str, p: torch.Tensor) -> bool:
    """A bias-like parameter: 1-D, or named like a bias (``bias``, ``bias_k``, ``b_enc``, ...)."""
    leaf = name.rsplit(".", 1)[-1]
    return p.ndim < 2 or leaf in BIAS_NAMES or leaf.startswith("bias")


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
        if id(p) in no_decay_ids or is_bias(name, p):
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
