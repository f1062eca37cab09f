"""Capture overhead of the model adapters: forward with capture attached vs the bare forward.

Target: ≤ 1.25× on an OLMoE-style config (64 experts, top-8, SiLU-gated experts), capturing every
layer's routing, expert neurons and residual stream. Two sinks: ``null`` (adapter cost alone)
and ``copy`` (each tensor copied to a float16 numpy array, roughly what a store does).
Prints ``name: ratio`` lines (median of repeated timings, baseline in the same process).
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import AutoModelForCausalLM, OlmoeConfig

from moelens.capture.adapters import get_adapter


class NullSink:
    def routing(self, *a): pass
    def expert_rows(self, *a): pass
    def shared(self, *a): pass
    def ffn(self, *a): pass
    def resid(self, *a): pass


class CopySink(NullSink):
    def __init__(self):
        self.nbytes = 0

    def _copy(self, *tensors):
        for t in tensors:
            self.nbytes += t.to(torch.float16).numpy().nbytes

    def routing(self, layer, ids, w): self._copy(w)
    def expert_rows(self, layer, t, e, hidden, out): self._copy(hidden, out)
    def resid(self, layer, h): self._copy(h)


def once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ratio(fn, base_fn, repeats: int = 9) -> tuple[float, float]:
    """Median of per-repeat ratios, timing ``fn`` and ``base_fn`` alternately (the machine is shared)."""
    fn(), base_fn()  # warm-up
    ratios, bases = [], []
    for _ in range(repeats):
        b = once(base_fn)
        ratios.append(once(fn) / b)
        bases.append(b)
    return statistics.median(ratios), statistics.median(bases)


def main() -> None:
    torch.set_num_threads(1)
    cfg = OlmoeConfig(vocab_size=1024, hidden_size=256, intermediate_size=128, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=8, num_experts=64, num_experts_per_tok=8,
                      max_position_embeddings=512, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    ids = torch.randint(3, cfg.vocab_size, (4, 256), generator=torch.Generator().manual_seed(0))
    adapter = get_adapter(model)

    def bare():
        with torch.no_grad():
            model(ids)

    for name, sink in (("null", NullSink()), ("copy", CopySink())):
        def captured(sink=sink):
            with torch.no_grad(), adapter.attach(sink, spaces=["expert", "expert_gate", "expert_out", "resid"]):
                model(ids)

        r, base = ratio(captured, bare)
        print(f"capture_overhead_olmoe_{name}_sink: {r:.3f}")
    print(f"bare_forward_seconds: {base:.3f}")


if __name__ == "__main__":
    main()
