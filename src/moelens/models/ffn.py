"""Dense feed-forward layers (GELU, ReLU, GEGLU, SoLU) and the element-wise expert activations.

The dense MLP is ``c_proj(act(c_fc(x)))``. Its *hidden vector* -- what interpretability studies
as neurons, what the observer receives, and what ``c_proj`` multiplies -- is ``act(c_fc(x))``:

- ``gelu`` / ``relu``: the element-wise activation of the width-F pre-activation;
- ``geglu``: ``c_fc`` produces 2F values ``[a, b]`` and the hidden vector is ``gelu(a) * b``
  (Shazeer 2020), so the hidden width stays F;
- ``solu``: ``LayerNorm(x * softmax(x))`` over the F pre-activations (Elhage et al. 2022); the
  LayerNorm is part of the activation, so the hidden vector is the post-LayerNorm value.

Emitting exactly the tensor ``c_proj`` consumes makes ``ffn_output(hidden) == c_proj(hidden)`` hold
for every kind, which the capture conformance tests rely on.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from moelens.models.config import MoelensConfig


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)  # exact (erf) GELU, as nanoGPT's nn.GELU()


ELEMENTWISE_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": _gelu,
    "relu": F.relu,
    "silu": F.silu,
}
"""Element-wise activations by name; experts use these so each hidden unit is one number."""


class SoLU(nn.Module):
    """Softmax linear unit: ``LayerNorm(x * softmax(x))`` over the last dimension."""

    def __init__(self, width: int, bias: bool, eps: float):
        super().__init__()
        self.ln = nn.LayerNorm(width, eps=eps, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x * torch.softmax(x, dim=-1))


class DenseMLP(nn.Module):
    """The dense feed-forward layer of a block; ``observer`` (if set) sees its hidden vector."""

    def __init__(self, config: MoelensConfig):
        super().__init__()
        width, act = config.ffn_width, config.ffn_act
        self.act_name = act
        self.width = width
        self.c_fc = nn.Linear(config.n_embd, 2 * width if act == "geglu" else width, bias=config.bias)
        self.c_proj = nn.Linear(width, config.n_embd, bias=config.bias)
        self.solu = SoLU(width, config.bias, config.layer_norm_epsilon) if act == "solu" else None
        self.dropout = nn.Dropout(config.dropout)
        self.observer: Callable[..., None] | None = None
        """capture hook: called as observer(kind="ffn", hidden=[N, ffn_width]) when set"""
        self.last_stats: dict[str, float] = {}
        """refreshed each training forward: l0 = mean non-zero hidden units per token"""
        self.record_stats = True
        """whether training forwards refresh ``last_stats`` (the trainer sets it per step)"""
        self.aux_loss: torch.Tensor | None = None
        """always None: a dense layer has no auxiliary loss"""

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The post-activation hidden vector ``act(c_fc(x))`` (see the module docstring)."""
        pre = self.c_fc(x)
        if self.act_name == "geglu":
            a, b = pre.chunk(2, dim=-1)
            return F.gelu(a) * b
        if self.solu is not None:
            return self.solu(pre)
        return ELEMENTWISE_ACTS[self.act_name](pre)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(x)
        if self.observer is not None:
            self.observer(kind="ffn", hidden=h.reshape(-1, self.width))
        if self.training and self.record_stats:
            with torch.no_grad():
                self.last_stats = {"l0": float((h != 0).sum(-1).float().mean())}
        return self.dropout(self.c_proj(h))
