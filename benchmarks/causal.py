"""Single-expert ablation sweep of a small OLMoE-style model: batched vs one forward per ablation.

Every expert of every layer is zero-ablated in turn over the same fixed corpus of token windows,
in one process:
  * reference: per batch one unmodified forward, then one full forward per ablation under
    ``moelens.analysis.causal.intervene`` (``sweep_reference``);
  * batched: per batch one unmodified forward recording the residual stream, block outputs and
    expert outputs; each ablation's layer output is written down from them, only the later
    layers run again, only on windows where the expert was routed, a group of experts stacked
    into one forward (``sweep``).
Both give the same table (the largest difference is printed).

Prints
  ablation_sweep_speedup: <reference wall time / batched wall time>   (bar: >= 2, goal: >= 5)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from moelens.analysis.causal.corpus import Batch, Windows
from moelens.analysis.causal.sweep import Cell, sweep, sweep_reference
from moelens.capture.adapters import get_adapter


def build_model(args: argparse.Namespace):
    from transformers import OlmoeConfig, OlmoeForCausalLM

    cfg = OlmoeConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.expert_width,
                      num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=4,
                      num_experts=args.experts, num_experts_per_tok=args.top_k, max_position_embeddings=512,
                      pad_token_id=0, bos_token_id=1, eos_token_id=1)
    torch.manual_seed(args.seed)  # benchmark script, not library code
    return OlmoeForCausalLM(cfg).eval()


def corpus(args: argparse.Namespace) -> Windows:
    gen = torch.Generator().manual_seed(args.seed)
    batches = []
    for s in range(0, args.windows, args.batch_size):
        n = min(args.batch_size, args.windows - s)
        lengths = [args.ctx - int(torch.randint(0, args.ctx // 4, (1,), generator=gen)) for _ in range(n)]
        ids = torch.zeros(n, args.ctx, dtype=torch.long)
        mask = torch.zeros(n, args.ctx, dtype=torch.long)
        for r, length in enumerate(lengths):
            ids[r, :length] = torch.randint(2, args.vocab, (length,), generator=gen)
            mask[r, :length] = 1
        batches.append(Batch(ids, mask, torch.zeros(n, dtype=torch.long)))
    return Windows(batches, ["all"], int(sum(b.mask.sum() for b in batches)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--expert-width", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args)
    adapter = get_adapter(model)
    windows = corpus(args)
    cells = [Cell(l, e) for l in adapter.moe_layers() for e in range(adapter.num_experts(l))]

    def timed(fn):
        t0 = time.perf_counter()
        rows = fn()
        return time.perf_counter() - t0, rows

    batched = lambda: sweep(model, adapter, windows, cells, group_size=args.group_size)  # noqa: E731
    reference = lambda: sweep_reference(model, adapter, windows, cells)  # noqa: E731
    with torch.no_grad():
        batched()  # warm up both paths
        t_fast, t_ref = [], []
        for _ in range(args.repeats):  # paired, interleaved: robust to a busy machine
            t, fast_rows = timed(batched)
            t_fast.append(t)
            t, ref_rows = timed(reference)
            t_ref.append(t)
    diff = max((abs(a["delta_loss"] - b["delta_loss"]) for a, b in zip(fast_rows, ref_rows)
                if not math.isnan(b["delta_loss"])), default=0.0)
    scale = max((abs(b["delta_loss"]) for b in ref_rows if not math.isnan(b["delta_loss"])), default=0.0)
    print(f"# layers: {args.layers}, experts: {args.experts}, top-k: {args.top_k}, hidden: {args.hidden}, "
          f"expert width: {args.expert_width}, vocab: {args.vocab}, tokens: {windows.n_tokens} in "
          f"{args.windows} windows of <= {args.ctx}, batch {args.batch_size}, cells: {len(cells)}, "
          f"threads: {torch.get_num_threads()}")
    print(f"# batched s: {[round(t, 2) for t in t_fast]}, reference s: {[round(t, 2) for t in t_ref]}")
    print(f"# largest |Δ loss| difference batched vs reference: {diff:.2e} (largest |Δ loss| {scale:.2e})")
    depth = args.layers
    print(f"# ceiling of prefix sharing alone at this depth (layers rerun: {depth} vs (L-1)/2 on average, "
          f"unembedding and softmax not counted): {2 * depth / max(depth - 1, 1):.2f}")
    print(f"ablation_sweep_speedup: {statistics.median(r / f for r, f in zip(t_ref, t_fast)):.2f}")


if __name__ == "__main__":
    main()
