"""Tiny models of every MoE family for the causal tests: the adapter conformance suite's builders
(shared with it, so each model is built once per session) plus moelens models.

(A plain module, not the conftest: every folder's conftest is imported as ``conftest``.)
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import torch

_CAPTURE_TESTS = str(Path(__file__).resolve().parents[1] / "capture")
if _CAPTURE_TESTS not in sys.path:  # the name pytest gives the conformance suite's package
    sys.path.insert(0, _CAPTURE_TESTS)

from adapters.adapter_families import BY_NAME, FAMILIES, VOCAB, build  # noqa: E402

OVERRIDES = {"granitemoe": {"residual_multiplier": 0.5, "logits_scaling": 2.0}}
"""Settings that make a family's own scalings matter (their defaults are 1)."""
SPREAD = {"experts.gate_up_proj": 0.3, "experts.down_proj": 0.3}
"""Expert weights larger than the stock init, so that one expert's ablation moves the loss by
far more than rounding (the family's own spread, where it has one, comes first)."""
MOELENS = {"moelens_switch": "softmax", "moelens_moex": "sparsity"}
"""moelens models: a Switch (softmax router, GELU experts) and a MoE-X (sparsity router, ReLU)."""
MOE_FAMILIES = [f.name for f in FAMILIES if f.moe_layers] + list(MOELENS)


def moelens_model(router: str, seed: int = 0, vocab: int = VOCAB, layers: int = 2):
    from moelens import models

    cfg = models.MoelensConfig(vocab_size=vocab, n_positions=64, n_layer=layers, n_head=2, n_embd=16,
                               bias=True, dropout=0.0, ffn="moe", num_experts=6, top_k=2,
                               expert_width=8, expert_act="relu" if router == "sparsity" else "gelu",
                               router=router, router_temperature=1.0, aux_loss_coef=0.0)
    torch.manual_seed(seed)  # test-only: seeded tiny weights
    model = models.MoelensForCausalLM(cfg).eval()
    with torch.no_grad():  # non-zero biases, and expert outputs large enough to matter
        for name, p in model.named_parameters():
            if name.endswith(("b_dec", "b_enc", ".bias")):
                p.normal_(0, 0.1)
            if name.endswith(("w_dec", "w_enc")):
                p.normal_(0, 0.3)
    return model


@functools.cache
def model(name: str) -> torch.nn.Module:
    """One shared tiny model per family (tests remove every hook they add)."""
    if name in MOELENS:
        return moelens_model(MOELENS[name])
    family = BY_NAME[name]
    family = dataclasses.replace(family, spread={**family.spread, **SPREAD})
    return build(family, **OVERRIDES.get(name, {}))


def block(adapter, layer: int) -> torch.nn.Module:
    """The feed-forward block of ``layer`` (HF ``mlp``/``block_sparse_moe``, moelens ``mlp``)."""
    return adapter.block(layer) if hasattr(adapter, "block") else adapter.mlp(layer)
