"""Capture overhead and store size for expert neurons on a small OLMoE-style model (CPU).

Runs, in one process over the same token batches:
  * baseline: the bare forward (stock experts implementation, no hooks);
  * capture: the capture pipeline recording every MoE layer's expert neurons into a store
    (hooks, pad masking, fp16 conversion, sorting rows by expert, writing and hashing shards).

Prints
  capture_overhead: <capture wall time / bare forward wall time>           (bar: <= 1.25)
  store_sparse_vs_dense_bytes: <expert + routing bytes / zero-filled fp16 [tokens, E, D] bytes>
                                                                            (bar: <= 0.5)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from moelens.capture import store_job
from moelens.capture.adapters import get_adapter
from moelens.capture.capture import capture_shards, plan_layers
from moelens.capture.windows import Window, plan_shards


def build_model(seed: int):
    from transformers import OlmoeConfig, OlmoeForCausalLM

    cfg = OlmoeConfig(vocab_size=2048, hidden_size=256, intermediate_size=384, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, num_experts=16,
                      num_experts_per_tok=4, max_position_embeddings=512, pad_token_id=0,
                      bos_token_id=1, eos_token_id=1)
    torch.manual_seed(seed)  # benchmark script, not library code
    return OlmoeForCausalLM(cfg).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.seed)
    adapter = get_adapter(model)
    rng = np.random.default_rng(args.seed)
    windows = []
    for d in range(args.windows):
        n = args.ctx - int(rng.integers(0, args.ctx // 4))  # ragged: batches carry padding
        ids = rng.integers(2, model.config.vocab_size, n)
        windows.append(Window(d, ids.astype(np.int64), np.stack([np.arange(n), np.arange(n) + 1], 1)))
    n_tokens = sum(w.ids.size for w in windows)
    shards = list(plan_shards(windows, shard_tokens=4096))
    plans = plan_layers(adapter, None, ["expert"])

    def bare(stop_early: bool = False) -> float:
        """The bare forward; with ``stop_early`` it also stops after the last captured layer, so
        the difference to capture is the pure hook + store cost."""
        from moelens.capture.capture import pad_batch

        last = max(p.layer for p in plans)
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in shards:
                for b in range(0, len(s.windows), args.batch_size):
                    batch = s.windows[b:b + args.batch_size]
                    ids, mask, _ = pad_batch(batch, [0] * len(batch), 0)
                    if stop_early:
                        with adapter.stop_after(last):
                            model(input_ids=ids, attention_mask=mask, use_cache=False)
                    else:
                        model(input_ids=ids, attention_mask=mask, use_cache=False)
        return time.perf_counter() - t0

    def capture(root: Path) -> float:
        t0 = time.perf_counter()
        root.mkdir(parents=True)
        documents = store_job.DocumentLog()
        for w in windows:
            documents.add(w.doc, "", True)
        documents.open(root)
        capture_shards(model, adapter, plans, shards, root, "fp16", args.batch_size, 0)
        store_job.finalize(root, [(s.index, s.start, s.stop) for s in shards], documents, plans,
                           {"dtype": "fp16"}, {})
        return time.perf_counter() - t0

    bare()  # warm up both paths
    with tempfile.TemporaryDirectory() as tmp:
        capture(Path(tmp) / "warm")
    t_bare, t_cap, t_same = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t_bare.append(bare())
            t_cap.append(capture(Path(tmp) / f"store{r}"))
            t_same.append(bare(stop_early=True))
        root = Path(tmp) / "store0"
        expert_bytes = sum(p.stat().st_size for p in root.glob("L*/expert/*.npy"))
        routing_bytes = sum(p.stat().st_size for p in root.glob("L*/routing/*.npy"))
    E, D = model.config.num_experts, model.config.intermediate_size
    dense_bytes = n_tokens * E * D * 2 * len(plans)
    print(f"# tokens: {n_tokens}, layers: {len(plans)}, experts: {E}, top-k: {model.config.num_experts_per_tok}, "
          f"expert width: {D}, threads: {torch.get_num_threads()}")
    print(f"# bare forward s: {[round(t, 3) for t in t_bare]}, capture s: {[round(t, 3) for t in t_cap]}")
    ratios = [c / b for c, b in zip(t_cap, t_bare)]  # paired, interleaved runs: robust to load
    print(f"capture_overhead: {statistics.median(ratios):.3f}")
    same = [c / b for c, b in zip(t_cap, t_same)]
    print(f"capture_overhead_vs_forward_stopped_at_same_layer: {statistics.median(same):.3f}")
    print(f"store_sparse_vs_dense_bytes: {(expert_bytes + routing_bytes) / dense_bytes:.3f}")


if __name__ == "__main__":
    main()
