"""Tiny seeded models of every supported family for the adapter conformance suite.

(A plain module, not the conftest, so tests import it by a name no other folder uses.)

Each entry gives the config class name, its constructor kwargs (every setting passed to the
constructor, pad/eos inside the vocabulary) and the widths the adapter must report, taken from
the config independently of the adapter. Models are built once per test module, in fp32, eval.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch

VOCAB = 128
COMMON = {"vocab_size": VOCAB, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "tie_word_embeddings": False}
LLAMA_LIKE = {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}


@dataclass
class Family:
    """One family under test."""

    name: str
    """Test id (several may share a model_type)."""
    config_cls: str
    """transformers config class name."""
    kwargs: dict[str, Any]
    """Config constructor arguments."""
    expert_width: int = 0
    """Config's expert intermediate size (0 for dense models)."""
    ffn_width: int = 0
    """Config's dense MLP width (0 if no dense layer)."""
    shared_width: int = 0
    """Config's shared-expert width (0 if none)."""
    moe_layers: list[int] = field(default_factory=list)
    """Layers the config makes MoE."""
    num_layers: int = 3
    """Decoder layers."""
    spread: dict[str, float] = field(default_factory=dict)
    """Parameter-name suffix -> std of seeded normal values that replace the stock init, where the
    stock init would hide a part of the family's formula (zero biases, activations inside clamps)."""


FAMILIES = [
    Family("olmoe", "OlmoeConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=24, num_experts=8,
           num_experts_per_tok=2), 24, 0, 0, [0, 1], 2),
    Family("mixtral", "MixtralConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=24, num_local_experts=4,
           num_experts_per_tok=2), 24, 0, 0, [0, 1], 2),
    Family("qwen2_moe", "Qwen2MoeConfig", dict(LLAMA_LIKE, num_hidden_layers=3, intermediate_size=40,
           moe_intermediate_size=16, shared_expert_intermediate_size=20, num_experts=6, num_experts_per_tok=2,
           mlp_only_layers=[1], decoder_sparse_step=1, norm_topk_prob=False), 16, 40, 20, [0, 2]),
    Family("qwen3_moe", "Qwen3MoeConfig", dict(LLAMA_LIKE, num_hidden_layers=2, head_dim=8, intermediate_size=40,
           moe_intermediate_size=16, num_experts=8, num_experts_per_tok=3, norm_topk_prob=True), 16, 0, 0, [0, 1], 2),
    Family("deepseek_v3", "DeepseekV3Config", {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 4,
           "max_position_embeddings": 64, "num_hidden_layers": 3, "intermediate_size": 40, "moe_intermediate_size": 12,
           "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 2, "first_k_dense_replace": 1, "n_group": 2,
           "topk_group": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": True, "kv_lora_rank": 16, "q_lora_rank": 24,
           "qk_rope_head_dim": 4, "qk_nope_head_dim": 4, "v_head_dim": 8}, 12, 40, 24, [1, 2]),
    Family("gpt_oss", "GptOssConfig", {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
           "max_position_embeddings": 64, "num_hidden_layers": 2, "intermediate_size": 16, "num_local_experts": 4,
           "num_experts_per_tok": 2, "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"]},
           16, 0, 0, [0, 1], 2,
           # pre-activations of std ~6 on unit-scale inputs cross the ±7 clamps on a good share of
           # entries, and every bias (router, gate/up, down) is non-zero
           spread={"mlp.experts.gate_up_proj": 1.0, "mlp.experts.gate_up_proj_bias": 1.0,
                   "mlp.experts.down_proj_bias": 0.5, "mlp.router.bias": 0.5}),
    Family("ernie4_5_moe", "Ernie4_5_MoeConfig", dict(LLAMA_LIKE, num_hidden_layers=3, intermediate_size=40,
           moe_intermediate_size=16, moe_num_experts=6, moe_k=2, moe_num_shared_experts=1, moe_layer_start_index=1,
           moe_layer_end_index=2, moe_layer_interval=1), 16, 40, 16, [1, 2]),
    Family("glm4_moe", "Glm4MoeConfig", dict(LLAMA_LIKE, num_hidden_layers=3, head_dim=8, intermediate_size=40,
           moe_intermediate_size=12, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
           first_k_dense_replace=1, n_group=1, topk_group=1, routed_scaling_factor=1.5, norm_topk_prob=True),
           12, 40, 12, [1, 2]),
    Family("granitemoe", "GraniteMoeConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=24,
           num_local_experts=4, num_experts_per_tok=2), 24, 0, 0, [0, 1], 2),
    Family("phimoe", "PhimoeConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=24,
           num_local_experts=4, num_experts_per_tok=2), 24, 0, 0, [0, 1], 2),
    Family("flex_olmo", "FlexOlmoConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=24, num_experts=4,
           num_experts_per_tok=2), 24, 0, 0, [0, 1], 2),
    Family("llama", "LlamaConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=48), 0, 48, 0, [], 2),
    Family("olmo", "OlmoConfig", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=48), 0, 48, 0, [], 2),
    Family("olmo2", "Olmo2Config", dict(LLAMA_LIKE, num_hidden_layers=2, intermediate_size=48), 0, 48, 0, [], 2),
    Family("qwen3", "Qwen3Config", dict(LLAMA_LIKE, num_hidden_layers=2, head_dim=8, intermediate_size=48), 0, 48, 0,
           [], 2),
    Family("gpt_neox", "GPTNeoXConfig", {"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2,
           "intermediate_size": 64, "max_position_embeddings": 64}, 0, 64, 0, [], 2),
    Family("gpt2", "GPT2Config", {"n_embd": 32, "n_head": 4, "n_layer": 2, "n_inner": 64, "n_positions": 64}, 0, 64, 0, [], 2),
]
BY_NAME = {f.name: f for f in FAMILIES}


def build(family: Family, seed: int = 0, experts_implementation: str | None = None, **overrides: Any) -> torch.nn.Module:
    """The family's tiny CausalLM with seeded random weights, fp32, eval mode."""
    import transformers

    cfg = getattr(transformers, family.config_cls)(**COMMON, **{**family.kwargs, **overrides})
    extra = {} if experts_implementation is None else {"experts_implementation": experts_implementation}
    torch.manual_seed(seed)  # tests may seed globally; library code never does
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, **extra)
    with torch.no_grad():  # spread routing/correction biases so they matter in the test
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(torch.randn(buf.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
        gen = torch.Generator().manual_seed(2)
        for name, param in model.named_parameters():
            std = next((v for k, v in family.spread.items() if name.endswith(k)), None)
            if std is not None:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return model.eval()


@functools.cache
def cached(name: str) -> torch.nn.Module:
    """One shared model per family for the whole session (tests remove every hook they add)."""
    return build(BY_NAME[name])
