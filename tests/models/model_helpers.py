"""Tiny seeded models and layers shared by the model tests."""

from __future__ import annotations

import pytest
import torch

from moelens.models import MoelensConfig, MoelensForCausalLM
from moelens.models.moe import MoELayer

TINY = dict(vocab_size=32, n_positions=64, n_layer=2, n_head=2, n_embd=16, ffn_width=32,
            num_experts=4, top_k=2, expert_width=12)


def tiny_config(**overrides) -> MoelensConfig:
    return MoelensConfig(**{**TINY, **overrides})


def tiny_model(seed: int = 0, **overrides) -> MoelensForCausalLM:
    torch.manual_seed(seed)
    return MoelensForCausalLM(tiny_config(**overrides)).eval()


def tiny_layer(seed: int = 0, **overrides) -> MoELayer:
    """A standalone MoE layer with the model's init (random biases so they matter in tests)."""
    cfg = tiny_config(ffn="moe", **overrides)
    torch.manual_seed(seed)
    layer = MoELayer(cfg)
    with torch.no_grad():
        layer.w_enc.normal_(0, 0.3)
        layer.w_dec.normal_(0, 0.3)
        for b in (layer.b_enc, layer.b_dec):
            if b is not None:
                b.normal_(0, 0.1)
        if hasattr(layer.router, "weight"):
            layer.router.weight.normal_(0, 0.3)
    return layer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is ~20x faster than two on the shared 2-core machine.

    Imported into each test module (an imported autouse fixture applies to that module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

