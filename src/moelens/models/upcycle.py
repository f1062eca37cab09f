"""Upcycling: turn a saved dense moelens model into an MoE / MoE-X model (the library behind
``moelens upcycle``, whose command is :mod:`.upcycle_command`).

Everything but the feed-forward layers (embeddings, attention, LayerNorms) is copied. Every
expert of layer i is initialised from the dense MLP of layer i. With dense width F (hidden units
of ``c_fc``), M experts of width D and ``scale`` applied to the down projections:

- ``D == F``: every expert is an exact copy (scale 1). With top-k weights summing to 1 (they
  do, see :mod:`moelens.models.routers`) and the same activation, the MoE layer's output equals
  the dense layer's output at init, for any routing.
- ``D < F``: expert j takes D consecutive dense units starting at ``offset_j = floor(j*F/M)``,
  wrapping around (unit indices ``(offset_j + 0..D-1) mod F``). When ``M*D == F`` the slices
  partition the dense layer; otherwise they are evenly rolled, overlapping (``M*D > F``) or
  leaving gaps (``M*D < F``). Each expert's down projection is multiplied by ``F/D``, so one
  expert's output is an estimate of the dense output from a D/F sample of its units; for a
  partition, weighting all M experts by 1/M reproduces the dense output exactly.
- ``D > F``: every expert holds all F dense units (scale 1) plus ``D-F`` new units whose encoder
  rows are drawn N(0, initializer_range) from ``seed`` and whose down-projection rows are zero,
  so the output is still exactly the dense output at init and the new units can learn.

Encoder biases are sliced like the weights; the dense output bias becomes the layer's single
output bias. A softmax router's weights are drawn N(0, initializer_range) from ``seed``; the
sparsity router has no weights. The dense activation must be element-wise (gelu or relu); it
may differ from the experts' (e.g. GELU dense -> ReLU MoE-X), in which case the output is no
longer identical at init.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from moelens.errors import ConfigError
from moelens.models.config import MoelensConfig
from moelens.models.modeling import MoelensForCausalLM
from moelens.models.saved import load_saved_model


def expert_units(dense_width: int, expert_width: int, num_experts: int) -> tuple[list[torch.Tensor], float]:
    """Dense unit indices of each expert (for D <= F) and the down-projection scale F/D."""
    F, D, M = dense_width, expert_width, num_experts
    if D > F:
        raise ValueError("expert_units is for D <= F; wider experts are padded")
    units = [(torch.arange(D) + (j * F) // M) % F for j in range(M)]
    return units, F / D


def upcycle_ffn(c_fc_w: torch.Tensor, c_fc_b: torch.Tensor | None, c_proj_w: torch.Tensor,
                c_proj_b: torch.Tensor | None, cfg: MoelensConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """MoE parameters (w_enc, w_dec, b_enc, b_dec) of one layer from its dense MLP (rule above)."""
    F, d = c_fc_w.shape
    M, D = cfg.num_experts, cfg.expert_width
    if D <= F:
        units, scale = expert_units(F, D, M)
        w_enc = torch.stack([c_fc_w[u].t() for u in units])                    # [M, d, D]
        w_dec = torch.stack([c_proj_w[:, u].t() for u in units]) * scale       # [M, D, d]
        b_enc = torch.stack([c_fc_b[u] for u in units]) if c_fc_b is not None else None
    else:
        extra = torch.randn(M, D - F, d, generator=gen, dtype=c_fc_w.dtype) * cfg.initializer_range
        w_enc = torch.cat([c_fc_w.expand(M, F, d), extra], dim=1).transpose(1, 2)
        w_dec = torch.cat([c_proj_w.t().expand(M, F, d), torch.zeros(M, D - F, d, dtype=c_proj_w.dtype)], dim=1)
        b_enc = None
        if c_fc_b is not None:
            b_enc = torch.cat([c_fc_b.expand(M, F), torch.zeros(M, D - F, dtype=c_fc_b.dtype)], dim=1)
    out = {"w_enc": w_enc.contiguous(), "w_dec": w_dec.contiguous()}
    if b_enc is not None:
        out["b_enc"] = b_enc.contiguous()
    if c_proj_b is not None:
        out["b_dec"] = c_proj_b.clone()
    return out


def load_dense(source: Path) -> MoelensForCausalLM:
    model = load_saved_model(source, MoelensForCausalLM, what="a dense moelens model")
    if model.config.ffn != "dense":
        raise ConfigError(f"{source} is already an MoE model (ffn={model.config.ffn}); upcycle a dense model")
    if model.config.ffn_act not in ("gelu", "relu"):
        raise ConfigError(f"cannot upcycle a dense {model.config.ffn_act} MLP into element-wise experts; "
                          "use a gelu or relu dense model")
    return model


def upcycle_model(dense: MoelensForCausalLM, moe: dict[str, Any], seed: int) -> MoelensForCausalLM:
    """An MoE model whose non-FFN weights are the dense model's and whose experts follow the rule."""
    settings = dense.config.to_dict()
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path", "dtype"):
        settings.pop(key, None)
    settings.update(moe, ffn="moe")
    cfg = MoelensConfig(**settings)
    model = MoelensForCausalLM(cfg)
    gen = torch.Generator().manual_seed(seed)
    src = dense.state_dict()
    state: dict[str, torch.Tensor] = {}
    for name in model.state_dict():
        if ".mlp." not in name:
            state[name] = src[name]
    for i, block in enumerate(dense.transformer.h):
        mlp = block.mlp
        params = upcycle_ffn(mlp.c_fc.weight.detach(), None if mlp.c_fc.bias is None else mlp.c_fc.bias.detach(),
                             mlp.c_proj.weight.detach(), None if mlp.c_proj.bias is None else mlp.c_proj.bias.detach(),
                             cfg, gen)
        for key, value in params.items():
            state[f"transformer.h.{i}.mlp.{key}"] = value
        if cfg.router == "softmax":
            w = torch.randn(cfg.num_experts, cfg.n_embd, generator=gen) * cfg.initializer_range
            state[f"transformer.h.{i}.mlp.router.weight"] = w
    model.load_state_dict(state, strict=True)
    return model
