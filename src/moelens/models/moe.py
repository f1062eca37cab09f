"""The MoE feed-forward layer: M experts of width D, top-k routing, and its wide-MLP view.

    y(x) = sum_{j in topk(x)} g_j(x) * W_dec^(j) act(W_enc^(j) x + b_enc^(j)) + b_dec

Seen from interpretability (MoE-X), this is one MLP of width M*D whose hidden vector
``z = [g_1 act(W_enc^(1) x + b^(1)); ...; g_M act(...)]`` has at most k*D non-zeros:
``y = W_dec_cat z + b_dec``. :meth:`MoELayer.wide_view` returns that z (gated) and the ungated
blocks, :meth:`MoELayer.decoder_cat` the [d, M*D] matrix W_dec_cat.

There is one output bias ``b_dec`` for the whole layer (not one per expert): with the top-k
weights summing to 1 a per-expert bias would only add a token-dependent mixture of biases, and a
single bias keeps the wide view an exact affine map of z.

Parameters are stored input-major (``w_enc`` [M, d, D], ``w_dec`` [M, D, d]) so the grouped GEMM
takes them without a transpose. See :mod:`moelens.models.dispatch` for how rows are grouped.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from moelens.models import dispatch as dsp
from moelens.models.config import MoelensConfig
from moelens.models.ffn import ELEMENTWISE_ACTS
from moelens.models.routers import Routing, SoftmaxRouter, SparsityRouter, load_balancing_loss, route


class MoELayer(nn.Module):
    """Top-k mixture of experts (Switch baseline or MoE-X, per the config)."""

    def __init__(self, config: MoelensConfig):
        super().__init__()
        d, D, M = config.n_embd, config.expert_width, config.num_experts
        self.n_embd, self.expert_width, self.num_experts, self.top_k = d, D, M, config.top_k
        self.temperature = float(config.router_temperature)
        self.aux_loss_coef = float(config.aux_loss_coef)
        self.act_name = config.expert_act
        self.act: Callable[[torch.Tensor], torch.Tensor] = ELEMENTWISE_ACTS[config.expert_act]
        self.w_enc = nn.Parameter(torch.empty(M, d, D))
        self.w_dec = nn.Parameter(torch.empty(M, D, d))
        self.b_enc = nn.Parameter(torch.zeros(M, D)) if config.bias else None
        self.b_dec = nn.Parameter(torch.zeros(d)) if config.bias else None
        if config.router == "softmax":
            self.router: nn.Module = SoftmaxRouter(d, M)
        else:
            self.router = SparsityRouter(config.router_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.backend = "auto"
        """dispatch backend: auto, grouped_mm or segments (see moelens.models.dispatch)"""
        self.observer: Callable[..., None] | None = None
        """capture hook, called once per forward with the routed rows (see docs/interfaces.md)"""
        self.reduce_stats: Callable[[torch.Tensor], torch.Tensor] | None = None
        """sums a tensor over the processes sharing a batch; set by a data-parallel trainer so
        that training forwards balance the load of the global batch (see load_balancing_loss)"""
        self.aux_loss: torch.Tensor = torch.zeros(())
        """alpha * Switch load-balancing loss of the last forward (0 when aux_loss_coef is 0)"""
        self.last_stats: dict[str, float | list[float]] = {}
        """refreshed each training forward: load per expert, router_entropy, l0"""
        self.record_stats = True
        """whether training forwards refresh ``last_stats``; the trainer switches it off on steps
        it does not log, since counting L0 reads every hidden unit (a few % of the layer's time)"""

    def routing(self, x: torch.Tensor) -> Routing:
        """Routing of tokens x [N, d] exactly as the forward uses it."""
        return route(self.router(x, self.w_enc, self.b_enc), self.top_k, self.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, self.n_embd)
        r = self.routing(x)
        d = dsp.sort_by_expert(r.topk_ids, self.num_experts)
        hidden, out = dsp.run_experts(x, d, self.w_enc, self.b_enc, self.w_dec, self.act, self.backend)
        if self.observer is not None:
            self.observer(kind="moe", topk_ids=r.topk_ids, topk_weights=r.topk_weights,
                          token_idx=d.token_idx, expert_idx=d.expert_idx, hidden=hidden, out=out)
        y = dsp.combine(out, d, r.topk_weights, x.shape[0])
        if self.b_dec is not None:
            y = y + self.b_dec
        if self.aux_loss_coef > 0:
            # only training forwards are collective: every process runs them in step, while
            # an evaluation or generation may run on one process alone
            reduce = self.reduce_stats if self.training else None
            self.aux_loss = self.aux_loss_coef * load_balancing_loss(r, self.num_experts, reduce)
        else:
            self.aux_loss = x.new_zeros(())
        if self.training and self.record_stats:
            self._record_stats(r, d, hidden, x.shape[0])
        return self.dropout(y).reshape(shape)

    @torch.no_grad()
    def _record_stats(self, r: Routing, d: dsp.Dispatch, hidden: torch.Tensor, n: int) -> None:
        p = r.probs
        entropy = -(p * torch.log(p.clamp_min(1e-20))).sum(-1).mean()
        self.last_stats = {
            "load": (d.counts.float() / d.order.numel()).tolist(),
            "router_entropy": float(entropy),
            "l0": float((hidden != 0).sum(-1, dtype=torch.int32).sum()) / max(n, 1),
        }

    # ------------------------------------------------------------------ wide view

    def decoder_cat(self) -> torch.Tensor:
        """W_dec_cat [d, M*D]: the experts' down projections side by side (expert-major columns)."""
        return self.w_dec.reshape(self.num_experts * self.expert_width, self.n_embd).t()

    def wide_view(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_gated, z_ungated), each [N, M*D], for tokens x [..., d] flattened to N.

        ``z_ungated`` holds act(W_enc^(j) x + b^(j)) of *every* expert (computed densely, so
        multiply by the routing mask for the zero-filled semantics); ``z_gated`` is it times
        the router weight, zero for experts the token is not routed to, so that
        ``z_gated @ decoder_cat().T + b_dec`` equals the layer's output (dropout aside).
        """
        x = x.reshape(-1, self.n_embd)
        r = self.routing(x)
        pre = torch.einsum("nd,mdh->nmh", x, self.w_enc)
        if self.b_enc is not None:
            pre = pre + self.b_enc
        z = self.act(pre)                                              # [N, M, D]
        gate = torch.zeros(x.shape[0], self.num_experts, dtype=z.dtype, device=z.device)
        gate = gate.scatter(1, r.topk_ids, r.topk_weights.to(z.dtype))
        z_gated = z * gate.unsqueeze(-1)
        return z_gated.reshape(x.shape[0], -1), z.reshape(x.shape[0], -1)
