"""Routers: the MoE-X sparsity score predicts expert sparsity; top-k weights; the aux loss."""

from __future__ import annotations

import math

import torch
from model_helpers import one_thread, tiny_layer  # noqa: F401 (autouse fixture)
from scipy.stats import spearmanr

from moelens.models.routers import SparsityRouter, load_balancing_loss, route


def gaussian_experts(M=8, d=64, D=1024, seed=0):
    """Experts whose rows are Gaussian with a per-expert mean row (so their L0 differ)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(M, d, generator=g)
    sigma = torch.rand(M, d, generator=g) + 0.5
    return mu[:, :, None] + sigma[:, :, None] * torch.randn(M, d, D, generator=g), g


def test_sparsity_score_ranks_experts_by_true_l0():
    w, g = gaussian_experts()
    x = torch.randn(256, w.shape[1], generator=g)
    s = SparsityRouter(1e-6)(x, w, None)                                    # [N, M]
    l0 = (torch.einsum("nd,mdh->nmh", x, w) > 0).sum(-1).float()           # true active units
    pooled = spearmanr(s.flatten(), l0.flatten()).statistic
    per_token = sum(spearmanr(s[i], l0[i]).statistic for i in range(len(x))) / len(x)
    assert pooled <= -0.9 and per_token <= -0.9, (pooled, per_token)
    top2 = s.topk(2).indices.sort().values
    sparsest2 = l0.topk(2, largest=False).indices.sort().values
    agree = (top2 == sparsest2).all(1).float().mean().item()
    assert agree >= 0.9, agree


def test_sparsity_score_formula_and_biases():
    """A bias is an input coordinate fixed at 1: scoring [x, 1] with [W; b] must equal scoring
    x with W and bias b (mean(b) added to the mean, var(b) to the variance)."""
    g = torch.Generator().manual_seed(3)
    w, b, x = torch.randn(4, 6, 10, generator=g), torch.randn(4, 10, generator=g), torch.randn(5, 6, generator=g)
    router = SparsityRouter(1e-9)
    with_bias = router(x, w, b)
    augmented = router(torch.cat([x, torch.ones(5, 1)], 1), torch.cat([w, b[:, None, :]], 1), None)
    torch.testing.assert_close(with_bias, augmented, atol=1e-6, rtol=0)
    # direct formula for one (token, expert)
    mu, var = w[2].mean(-1), w[2].var(-1, unbiased=False)
    m = x[1] @ mu + b[2].mean()
    v = (x[1] ** 2) @ var + b[2].var(unbiased=False)
    expected = -math.erf(float(m) / math.sqrt(2 * (float(v) + 1e-9)))
    assert abs(float(with_bias[1, 2]) - expected) < 1e-6


def test_sparsity_router_gradients_reach_expert_weights():
    layer = tiny_layer(router="sparsity", bias=True)
    x = torch.randn(7, 16)
    layer.routing(x).topk_weights[:, 0].sum().backward()
    assert layer.w_enc.grad is not None and layer.w_enc.grad.abs().sum() > 0
    assert layer.b_enc.grad is not None and layer.b_enc.grad.abs().sum() > 0


def test_topk_weights_are_softmax_over_kept_scores_with_temperature():
    scores = torch.tensor([[0.2, -0.5, 0.9, 0.1], [0.0, 0.3, -0.3, 0.35]])
    r = route(scores, top_k=2, temperature=0.25)
    assert r.topk_ids.tolist() == [[2, 0], [3, 1]]
    kept = scores.gather(1, r.topk_ids)
    torch.testing.assert_close(r.topk_weights, torch.softmax(kept / 0.25, -1))
    torch.testing.assert_close(r.probs, torch.softmax(scores / 0.25, -1))


def test_load_balancing_loss_formula():
    scores = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    r = route(scores, top_k=2, temperature=1.0)
    f = torch.stack([(r.topk_ids == j).sum() for j in range(4)]).float() / 100
    expected = 4 * sum(f[j] * r.probs[:, j].mean() for j in range(4))
    torch.testing.assert_close(load_balancing_loss(r, 4), expected)
    uniform = route(torch.zeros(8, 4), top_k=4, temperature=1.0)
    assert abs(float(load_balancing_loss(uniform, 4)) - 1.0) < 1e-6  # balanced minimum is 1


def test_load_balancing_loss_over_processes_equals_one_process():
    """Two halves of a batch whose statistics are summed (as all-reduce does) give, averaged,
    the loss of the whole batch and its gradient (data parallel training averages gradients)."""
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(40, 6, generator=gen, requires_grad=True)
    whole = load_balancing_loss(route(scores, top_k=2, temperature=1.0), 6)
    (g_whole,) = torch.autograd.grad(whole, scores)

    halves = [route(s, top_k=2, temperature=1.0) for s in scores.split([24, 16])]  # unequal
    local = [torch.cat([torch.bincount(h.topk_ids.reshape(-1), minlength=6).float(),
                        torch.tensor([float(h.topk_ids.shape[0]), 1.0])]) for h in halves]
    total = local[0] + local[1]
    losses = [load_balancing_loss(h, 6, reduce=lambda t: total) for h in halves]
    mean = (losses[0] + losses[1]) / 2
    (g_mean,) = torch.autograd.grad(mean, scores)
    torch.testing.assert_close(mean, whole, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_mean, g_whole, rtol=1e-5, atol=1e-7 * g_whole.abs().max().item())
    assert not torch.allclose(losses[0], losses[1])  # each process's share differs
