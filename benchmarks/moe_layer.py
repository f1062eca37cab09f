"""Forward+backward time of one MoE-X layer against three baselines, in one process (fp32, CPU).

Layer: 8 experts, top-2, d=256, expert width 512, 4096 tokens, ReLU experts, sparsity router,
load-balancing loss on (as in training). Baselines, all with the same weights and routing:

- dense: a dense ReLU MLP of width 2*512 (the FLOPs of the two active experts);
- naive loop: per expert, find its tokens, index them, compute, index_add (the eager loop of
  Hugging Face's MoE blocks);
- masked: compute every expert on every token, then weight by the (mostly zero) gates.

Prints ``moex_vs_dense_flop_matched`` (MoE-X time / dense time, lower is better) and the speedups
of MoE-X over the naive loop and the masked computation (higher is better): medians over
interleaved repeats. Run: ``python benchmarks/moe_layer.py [--repeats 15] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from moelens.models import MoelensConfig
from moelens.models.ffn import DenseMLP
from moelens.models.moe import MoELayer
from moelens.models.routers import load_balancing_loss


def naive_loop(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    r = layer.routing(x)
    y = torch.zeros_like(x)
    for e in range(layer.num_experts):
        tok, slot = torch.where(r.topk_ids == e)
        if tok.numel() == 0:
            continue
        h = layer.act(x[tok] @ layer.w_enc[e])
        y = y.index_add(0, tok, (h @ layer.w_dec[e]) * r.topk_weights[tok, slot, None])
    layer.aux_loss = layer.aux_loss_coef * load_balancing_loss(r, layer.num_experts)
    return y


def masked(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    r = layer.routing(x)
    gate = torch.zeros(x.shape[0], layer.num_experts).scatter(1, r.topk_ids, r.topk_weights)
    h = layer.act(torch.einsum("nd,mdh->nmh", x, layer.w_enc))
    out = torch.einsum("nmh,mhd->nmd", h * gate[:, :, None], layer.w_dec)
    layer.aux_loss = layer.aux_loss_coef * load_balancing_loss(r, layer.num_experts)
    return out.sum(1)


def step(fn, x: torch.Tensor, grad: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    for p in params:
        p.grad = None
    xi = x.detach().requires_grad_(True)
    t0 = time.perf_counter()
    y = fn(xi)
    loss = (y * grad).sum()
    aux = getattr(fn, "aux_loss", None)
    if isinstance(aux, torch.Tensor) and aux.requires_grad:
        loss = loss + aux
    loss.backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: on a shared machine extra threads mostly "
                         "measure contention; 0 keeps torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    d, D, M, k = 256, 512, 8, 2
    cfg = MoelensConfig(n_embd=d, n_head=4, ffn="moe", num_experts=M, top_k=k, expert_width=D,
                        expert_act="relu", router="sparsity", bias=False)
    gen = torch.Generator().manual_seed(0)
    layer = MoELayer(cfg).train()
    layer.record_stats = False  # as on the trainer's non-logging steps (see MoELayer.record_stats)
    dense = DenseMLP(MoelensConfig(n_embd=d, n_head=4, ffn="dense", ffn_width=k * D, ffn_act="relu",
                                   bias=False)).train()
    with torch.no_grad():
        layer.w_enc.copy_(torch.randn(M, d, D, generator=gen) * 0.02)
        layer.w_dec.copy_(torch.randn(M, D, d, generator=gen) * 0.02)
        for p in dense.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    x = torch.randn(args.tokens, d, generator=gen)
    grad = torch.randn(args.tokens, d, generator=gen) / args.tokens

    with torch.no_grad():  # the baselines compute the same function
        ref = layer(x)
        for fn in (naive_loop, masked):
            err = (fn(layer, x) - ref).abs().max().item()
            assert err < 1e-4, (fn.__name__, err)

    class Bound:
        def __init__(self, f):
            self.f = f

        def __call__(self, t):
            return self.f(layer, t)

        @property
        def aux_loss(self):
            return layer.aux_loss

    runs = {"moex": layer, "dense": dense, "naive_loop": Bound(naive_loop), "masked": Bound(masked)}
    params = list(layer.parameters()) + list(dense.parameters())
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(2):  # warm-up
        for fn in runs.values():
            step(fn, x, grad, params)
    for _ in range(args.repeats):
        for name, fn in runs.items():
            times[name].append(step(fn, x, grad, params))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"# threads={torch.get_num_threads()} tokens={args.tokens} repeats={args.repeats} "
          "(median seconds per forward+backward)")
    for name, t in med.items():
        print(f"# {name}: {t * 1e3:.1f} ms ({args.tokens / t:,.0f} tok/s)")
    print(f"moex_vs_dense_flop_matched: {med['moex'] / med['dense']:.2f}")
    print(f"moex_speedup_vs_naive_loop: {med['naive_loop'] / med['moex']:.2f}")
    print(f"moex_speedup_vs_masked: {med['masked'] / med['moex']:.2f}")


if __name__ == "__main__":
    main()
