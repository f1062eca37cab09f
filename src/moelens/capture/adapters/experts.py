"""A tapped forward for the fused v5 experts module that also yields each expert's neurons.

Transformers 5 stores a MoE layer's experts as one module with 3-D weights (``gate_up_proj``,
``down_proj``, optional biases) and a decorator (``use_experts_implementation``) that records the
layout on the instance: ``has_gate``, ``has_bias``, ``is_transposed``, ``has_post_expert_norm`` and
the gating function ``_apply_gate`` (gpt-oss overrides it with its clamped, interleaved SwiGLU).
The stock ``grouped_mm`` path computes every (token, expert) hidden row once and throws it away;
this forward does the same arithmetic in the same order and hands the rows to a callback, so
capture costs no second expert computation and the layer's output is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

try:  # the exact grouped matmul the stock ``grouped_mm`` experts implementation uses
    from transformers.integrations.moe import _grouped_linear as _hf_grouped_linear
except ImportError:  # pragma: no cover - only on a transformers without it
    _hf_grouped_linear = None

RowsCallback = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""``(topk_ids, topk_weights, token_idx, expert_idx, hidden, out)``, all detached."""


def _loop_grouped_linear(
    x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, bias: torch.Tensor | None, transposed: bool
) -> torch.Tensor:
    """Per-expert matmul over rows sorted by expert (``offsets`` = cumulative row counts)."""
    out_dim = weight.shape[2] if transposed else weight.shape[1]
    out = x.new_zeros(x.shape[0], out_dim)
    start = 0
    for e, end in enumerate(offsets.tolist()):
        if end > start:
            w = weight[e] if transposed else weight[e].t()
            out[start:end] = x[start:end].to(w.dtype) @ w
        start = end
    if bias is not None:
        out = out + bias
    return out


def grouped_linear(
    x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, bias: torch.Tensor | None, transposed: bool
) -> torch.Tensor:
    """``x`` rows (sorted by expert) times their expert's weight, plus the per-row bias.

    Uses the stock grouped matmul; widths it cannot take (strides not a multiple of 16 bytes,
    which the stock path would also reject but an ``eager`` model runs) go through a per-expert loop.
    """
    if _hf_grouped_linear is not None:
        try:
            return _hf_grouped_linear(x, weight, offsets, bias=bias, is_transposed=transposed)
        except RuntimeError:
            pass
    return _loop_grouped_linear(x, weight, offsets, bias, transposed)


def expert_down(module: torch.nn.Module, expert: int, hidden: torch.Tensor) -> torch.Tensor:
    """One expert's output (before its router weight) from its hidden rows ``[R, I]``."""
    w = module.down_proj[expert]
    out = hidden.to(w.device, w.dtype) @ (w if module.is_transposed else w.t())
    if getattr(module, "has_bias", False):
        out = out + module.down_proj_bias[expert]
    if getattr(module, "has_post_expert_norm", False):
        out = module.post_expert_norm(out)
    return out


def tapped_experts_forward(
    module: torch.nn.Module,
    hidden_states: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    on_rows: RowsCallback,
) -> torch.Tensor:
    """The stock grouped experts computation, calling ``on_rows`` with the routing and the rows.

    Rows are sorted by expert (stable, so tokens keep their order inside an expert); ``hidden`` is
    what the experts' down projection receives (act(gate)·up, or act(up) for ungated experts) and
    ``out`` the expert's output before the router weight.
    """
    num_tokens, top_k = top_k_index.shape
    num_experts = module.num_experts
    expert_ids, perm = torch.sort(top_k_index.reshape(-1), stable=True)
    token_idx = perm // top_k
    x = hidden_states[token_idx]
    counts = torch.bincount(expert_ids, minlength=num_experts)[:num_experts]
    offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)

    if module.has_gate:
        w_in = module.gate_up_proj
        b_in = module.gate_up_proj_bias[expert_ids] if module.has_bias else None
    else:
        w_in = module.up_proj
        b_in = module.up_proj_bias[expert_ids] if module.has_bias else None
    proj = grouped_linear(x, w_in, offsets, b_in, module.is_transposed)
    hidden = module._apply_gate(proj) if module.has_gate else module.act_fn(proj)

    b_out = module.down_proj_bias[expert_ids] if module.has_bias else None
    out = grouped_linear(hidden, module.down_proj, offsets, b_out, module.is_transposed)
    if module.has_post_expert_norm:
        out = module.post_expert_norm(out)

    on_rows(
        top_k_index.detach(),
        top_k_weights.detach(),
        token_idx,
        expert_ids,
        hidden.detach(),
        out.detach(),
    )

    weighted = out * top_k_weights.reshape(-1)[perm].unsqueeze(-1)
    inv_perm = torch.empty_like(perm)
    inv_perm[perm] = torch.arange(perm.numel(), device=perm.device)
    final = weighted[inv_perm].view(num_tokens, top_k, -1).sum(dim=1)
    return final.to(hidden_states.dtype)
