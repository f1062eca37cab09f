"""Estimates for docs/scale.md: memory, store bytes, capture and probing time of four hub MoEs.

Nothing is downloaded: each model is built from its published config on the meta device (no
memory), so parameter counts and expert shapes are exact; the store bytes follow the store
format (``moelens.store.sizing``) for a default capture (every MoE layer; expert, expert_gate,
expert_out, resid and shared spaces; fp16 values). Times combine these counts with throughputs
given on the command line (defaults: figures measured in BENCHMARKS.md on 2 CPU cores, and an
*assumed* GPU forward throughput, which is not measured and is labelled as such):

- capture forward: 2 x active parameters + attention per token, at ``--gpu_tflops`` effective;
- store writing: bytes at ``--write_mb_per_s`` (the shard writer, measured by store_scale.py);
- probing: ``--probe_cpu_s_per_layer_seed`` (CPU-seconds of one OLMoE-shaped layer and seed,
  64 experts, top-8, 58 concepts, default controls, measured by probing_scale.py), scaled by
  top_k / 8 (a layer's fitting work is the number of (token, expert) rows its experts see), on
  ``--cores`` cores, for the default 3 seeds.

    python benchmarks/scale_estimates.py [--gpu_tflops 200] [--write_mb_per_s 150] ...
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moelens.store.sizing import estimate, even_shards  # noqa: E402

MODELS = {
    "OLMoE-1B-7B-0125": ("OlmoeConfig", dict(vocab_size=50304, hidden_size=2048, intermediate_size=1024,
                          num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=16, num_experts=64,
                          num_experts_per_tok=8, max_position_embeddings=4096, tie_word_embeddings=False)),
    "Qwen3-30B-A3B": ("Qwen3MoeConfig", dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                       moe_intermediate_size=768, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
                       head_dim=128, num_experts=128, num_experts_per_tok=8, max_position_embeddings=40960,
                       tie_word_embeddings=False)),
    "Mixtral-8x7B": ("MixtralConfig", dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, num_local_experts=8,
                      num_experts_per_tok=2, max_position_embeddings=32768, tie_word_embeddings=False)),
    "gpt-oss-20b": ("GptOssConfig", dict(vocab_size=201088, hidden_size=2880, intermediate_size=2880,
                     num_hidden_layers=24, num_attention_heads=64, num_key_value_heads=8, head_dim=64,
                     num_local_experts=32, num_experts_per_tok=4, sliding_window=128,
                     layer_types=["sliding_attention", "full_attention"] * 12, max_position_embeddings=131072,
                     tie_word_embeddings=False)),
}


def build(cls_name: str, kwargs: dict):
    import transformers
    from accelerate import init_empty_weights

    cfg = getattr(transformers, cls_name)(**kwargs)
    with init_empty_weights():
        return transformers.AutoModelForCausalLM.from_config(cfg)


def describe(name: str, cls_name: str, kwargs: dict, args) -> dict:
    from moelens.capture.adapters import get_adapter
    from moelens.capture.capture import plan_layers
    from moelens.capture.dry_run import forward_flops_per_token

    model = build(cls_name, kwargs)
    adapter = get_adapter(model)
    total = sum(p.numel() for p in model.parameters())
    moe = adapter.moe_layers()
    E, k, D = adapter.num_experts(moe[0]), adapter.top_k(moe[0]), adapter.expert_width(moe[0])
    expert_params = sum(p.numel() for n, p in model.named_parameters() if ".experts." in f".{n}")
    active = total - expert_params + expert_params * k / E
    plans = plan_layers(adapter, moe, [])
    size = estimate([p.to_json() for p in plans], even_shards(1_000_000, 8192), "fp16", None, 4.0)
    flops = forward_flops_per_token(adapter, max(moe), args.ctx)
    weights_gb = total * 2 / 1e9
    gpus = max(1, math.ceil(weights_gb * 1.15 / args.gpu_gb))
    probe_cpu_s = args.probe_cpu_s_per_layer_seed * (k / 8) * len(moe) * 3
    return {"name": name, "layers": len(moe), "E": E, "k": k, "D": D, "H": adapter.hidden_size,
            "total_b": total / 1e9, "active_b": active / 1e9, "weights_gb": weights_gb, "gpus": gpus,
            "per_gpu_gb": weights_gb / gpus, "store_gb_per_m": size.total / 1e9,
            "forward_s_per_m": flops * 1e6 / (args.gpu_tflops * 1e12),
            "write_s_per_m": size.total / 1e6 / args.write_mb_per_s,
            "probe_min": probe_cpu_s / args.cores / 60}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--gpu_gb", type=float, default=80.0, help="memory of one GPU (H100: 80)")
    ap.add_argument("--gpu_tflops", type=float, default=200.0,
                    help="ASSUMED effective bf16 forward throughput of one GPU (not measured)")
    ap.add_argument("--write_mb_per_s", type=float, default=150.0,
                    help="shard writer throughput (measured: store_scale.py, 143-151 MB/s)")
    ap.add_argument("--probe_cpu_s_per_layer_seed", type=float, default=110.0,
                    help="CPU-seconds of one OLMoE-shaped layer and seed (measured: probing_scale.py, "
                         "442 CPU-s for 4 layers)")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    rows = [describe(n, c, kw, args) for n, (c, kw) in MODELS.items()]
    print("| model | MoE layers x experts (width, top-k) | params total / active | bf16 weights | "
          "GPUs of 80 GB, memory per GPU | store per 1M tokens | capture per 1M tokens: forward (est.) / writing | "
          f"probing, 3 seeds, {args.cores} CPU cores |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['layers']} x {r['E']} ({r['D']}, top-{r['k']}) | {r['total_b']:.1f} B / "
              f"{r['active_b']:.2f} B | {r['weights_gb']:.0f} GB | {r['gpus']} x {r['per_gpu_gb']:.0f} GB | "
              f"{r['store_gb_per_m']:,.0f} GB | {r['forward_s_per_m']:.0f} s / {r['write_s_per_m'] / 60:,.0f} min | "
              f"{r['probe_min']:.0f} min |")


if __name__ == "__main__":
    main()
