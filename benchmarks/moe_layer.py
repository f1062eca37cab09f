"""Forward+backward time of one MoE-X layer against three baselines, in one process.

Two configurations of the same FLOPs per token (d=256, active expert width 1024, 4096 tokens,
ReLU experts, sparsity router, load-balancing loss on as in training):

- ``coarse``: 8 experts of width 512, top-2 (the paper's chess model);
- ``fine``: 64 experts of width 128, top-8, like today's hub MoEs (OLMoE, Qwen3-MoE), where each
  expert gets few tokens and the cost of dispatching them matters.

Baselines, all with the same weights and routing:

- dense: a dense ReLU MLP of width 2*512 (the FLOPs of the two active experts);
- naive loop: per expert, find its tokens, index them, compute, index_add (the eager loop of
  Hugging Face's MoE blocks);
- masked: compute every expert on every token, then weight by the (mostly zero) gates.

Prints ``moex_vs_dense_flop_matched`` (MoE-X time / dense time, lower is better) and the speedups
of MoE-X over the naive loop and the masked computation (higher is better), and for the fine
configuration ``moex_fine_vs_dense_flop_matched`` and ``moex_fine_speedup_vs_naive_loop`` (the
masked baseline would do 8x the FLOPs there and is skipped): medians over interleaved repeats.
On a GPU (``--device cuda``) the layer runs in bf16 (grouped_mm's CUDA kernel is bf16).
Run: ``python benchmarks/moe_layer.py [--config coarse fine] [--repeats 15] [--threads 1] [--device cpu]``.
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


CONFIGS = {"coarse": (8, 2, 512), "fine": (64, 8, 128)}
"""name -> (experts, top_k, expert width): the same active width, so the same FLOPs per token."""


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
    gate = torch.zeros(x.shape[0], layer.num_experts, dtype=x.dtype, device=x.device).scatter(
        1, r.topk_ids, r.topk_weights.to(x.dtype))
    h = layer.act(torch.einsum("nd,mdh->nmh", x, layer.w_enc))
    out = torch.einsum("nmh,mhd->nmd", h * gate[:, :, None], layer.w_dec)
    layer.aux_loss = layer.aux_loss_coef * load_balancing_loss(r, layer.num_experts)
    return out.sum(1)


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def step(fn, x: torch.Tensor, grad: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    for p in params:
        p.grad = None
    xi = x.detach().requires_grad_(True)
    _sync(x)
    t0 = time.perf_counter()
    y = fn(xi)
    loss = (y * grad).sum()
    aux = getattr(fn, "aux_loss", None)
    if isinstance(aux, torch.Tensor) and aux.requires_grad:
        loss = loss + aux
    loss.backward()
    _sync(x)
    return time.perf_counter() - t0


def run_config(name: str, tokens: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per forward+backward of MoE-X and its baselines in one configuration."""
    d = 256
    M, k, D = CONFIGS[name]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
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
    layer.to(device=device, dtype=dtype)
    dense.to(device=device, dtype=dtype)
    x = torch.randn(tokens, d, generator=gen).to(device=device, dtype=dtype)
    grad = (torch.randn(tokens, d, generator=gen) / tokens).to(device=device, dtype=dtype)

    with torch.no_grad():  # the baselines compute the same function
        ref = layer(x)
        tol = 1e-4 if dtype == torch.float32 else 2e-2 * ref.abs().max().item()
        for fn in (naive_loop, masked) if name == "coarse" else (naive_loop,):
            err = (fn(layer, x) - ref).abs().max().item()
            assert err < tol, (fn.__name__, err)

    class Bound:
        def __init__(self, f):
            self.f = f

        def __call__(self, t):
            return self.f(layer, t)

        @property
        def aux_loss(self):
            return layer.aux_loss

    runs = {"moex": layer, "dense": dense, "naive_loop": Bound(naive_loop)}
    if name == "coarse":
        runs["masked"] = Bound(masked)
    params = list(layer.parameters()) + list(dense.parameters())
    times: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(2):  # warm-up
        for fn in runs.values():
            step(fn, x, grad, params)
    for _ in range(repeats):
        for n, fn in runs.items():
            times[n].append(step(fn, x, grad, params))
    return {n: statistics.median(ts) for n, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--config", nargs="+", choices=sorted(CONFIGS), default=["coarse", "fine"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bf16 there)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: on a shared machine extra threads mostly "
                         "measure contention; 0 keeps torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, threads={torch.get_num_threads()}"
    for name in args.config:
        med = run_config(name, args.tokens, args.repeats, device)
        M, k, D = CONFIGS[name]
        print(f"# {name}: {M} experts x {D}, top-{k}; {where} tokens={args.tokens} repeats={args.repeats} "
              "(median seconds per forward+backward)")
        for n, t in med.items():
            print(f"# {name} {n}: {t * 1e3:.1f} ms ({args.tokens / t:,.0f} tok/s)")
        prefix = "moex" if name == "coarse" else "moex_fine"
        print(f"{prefix}_vs_dense_flop_matched: {med['moex'] / med['dense']:.2f}")
        print(f"{prefix}_speedup_vs_naive_loop: {med['naive_loop'] / med['moex']:.2f}")
        if "masked" in med:
            print(f"{prefix}_speedup_vs_masked: {med['masked'] / med['moex']:.2f}")


if __name__ == "__main__":
    main()
