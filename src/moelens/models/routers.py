"""Routers: per-token expert scores, top-k selection and the Switch load-balancing loss.

Both routers produce a score s_j(x) per expert; :func:`route` turns scores into routing the same
way for both:

    p(x)       = softmax(s(x) / T)                      over all M experts (used by the aux loss)
    ids        = top-k of s(x)
    weights    = p_ids / sum(p_ids) = softmax(s_ids / T)  (softmax over the kept k scores)

i.e. the top-k weights are a softmax over the k kept scores (Mixtral style), so they sum to 1
and the output of k identical experts equals one expert's output. Computing them as renormalised
full-softmax probabilities is algebraically the same and lets one softmax serve both the weights
and the auxiliary loss.

``softmax`` router: a learned linear map ``W_r x`` (no bias), Switch/Mixtral style.

``sparsity`` router (MoE-X): no weights of its own. Each expert's encoder rows are treated as
Gaussian with per-input-coordinate mean mu_j and variance sigma_j^2 (column mean / population
variance over the D rows of W_enc^(j)); a random unit's pre-activation on token x is then
N(mu_j.x + mean(b_j), sigma_j^2.(x*x) + var(b_j)) and

    s_j(x) = -erf( mean / (sqrt(2) * sqrt(var + eps)) )     (higher = fewer units fire)

Gradients flow through mu_j and sigma_j into the expert weights (nothing is detached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass
class Routing:
    """The routing of N tokens: what the MoE layer uses and what its statistics are built from."""

    probs: torch.Tensor
    """[N, M] softmax of the scores over all experts (for the aux loss and router entropy)"""
    topk_ids: torch.Tensor
    """[N, k] long, the chosen experts of each token (highest score first)"""
    topk_weights: torch.Tensor
    """[N, k] float, softmax over the kept scores; each row sums to 1"""


def route(scores: torch.Tensor, top_k: int, temperature: float) -> Routing:
    """Top-k routing from scores [N, M] (see the module docstring for the formula)."""
    probs = torch.softmax(scores.float() / temperature, dim=-1)
    top_ids = scores.topk(top_k, dim=-1).indices  # on the scores: probabilities can underflow
    top_p = probs.gather(-1, top_ids)
    weights = top_p / top_p.sum(dim=-1, keepdim=True)
    return Routing(probs=probs, topk_ids=top_ids, topk_weights=weights.to(scores.dtype))


def load_balancing_loss(routing: Routing, num_experts: int,
                        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Switch loss M * sum_j f_j * P_j (without alpha): f_j = fraction of routed (token, slot)
    pairs sent to expert j (so sum f = 1 for any k), P_j = mean router probability of j.

    ``reduce`` sums a tensor over the processes that share one batch (data parallel). f and
    P are then those of the whole global batch, so two processes balance the same statistics
    as one process on both halves. f needs no gradient and is summed directly. P does: each
    process returns this share of the global loss,

        L_r = M * sum_j f_j * P_j^(r) * (N_r * W / N)     (N_r local tokens, N global, W processes)

    whose mean over processes is the global loss and whose gradient, averaged over processes
    as data parallel training does, is the global loss's gradient -- without a collective in
    the backward pass. With one process the factor is exactly 1.
    """
    counts = torch.bincount(routing.topk_ids.reshape(-1), minlength=num_experts)
    n_local = routing.topk_ids.shape[0]
    dtype = routing.probs.dtype
    sizes = torch.tensor([n_local, 1], dtype=dtype, device=counts.device)  # tokens, processes
    stats = torch.cat([counts.to(dtype), sizes])
    if reduce is not None:
        stats = reduce(stats.detach())
    counts, n_tokens, n_procs = stats[:num_experts], stats[num_experts], stats[num_experts + 1]
    f = counts / (n_tokens * routing.topk_ids.shape[-1])
    share = n_local * n_procs / n_tokens
    return num_experts * (f * routing.probs.mean(dim=0)).sum() * share


class SoftmaxRouter(nn.Module):
    """Learned linear router: score s_j(x) = W_r[j] . x."""

    def __init__(self, n_embd: int, num_experts: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_experts, n_embd))

    def forward(self, x: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor | None) -> torch.Tensor:
        return x @ self.weight.t()


class SparsityRouter(nn.Module):
    """MoE-X sparsity-aware router: scores from the expert encoders' row statistics, no weights."""

    def __init__(self, eps: float):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor | None) -> torch.Tensor:
        """Scores [N, M] for tokens x [N, d] and encoders w_enc [M, d, D] (+ biases b_enc [M, D])."""
        # column mean / population variance over the D units, as matmuls with a 1/D vector:
        # same values as mean()/var(), several times faster forward+backward on CPU
        avg = w_enc.new_full((w_enc.shape[-1], 1), 1.0 / w_enc.shape[-1])
        mu = w_enc @ avg                           # [M, d, 1]
        var = ((w_enc - mu).square() @ avg).squeeze(-1)
        mu = mu.squeeze(-1)                        # [M, d]
        mean_h = x @ mu.t()                        # [N, M]
        var_h = (x * x) @ var.t()
        if b_enc is not None:
            mean_h = mean_h + b_enc.mean(dim=-1)
            var_h = var_h + b_enc.var(dim=-1, correction=0)
        return -torch.erf(mean_h / (math.sqrt(2.0) * torch.sqrt(var_h + self.eps)))
