"""The Hugging Face families moelens supports; each is a few attribute names on :class:`HFAdapter`.

Per-family notes (transformers 5.23):

- OLMoE, Mixtral, Qwen3-MoE, FlexOlmo: plain fused SiLU-gated experts, router at ``mlp.gate``.
- Qwen2-MoE: ``mlp.shared_expert`` scaled by ``sigmoid(mlp.shared_expert_gate(x))``;
  ``mlp_only_layers`` / ``decoder_sparse_step`` make some layers dense.
- DeepSeek-V3 / GLM-4-MoE: sigmoid scores, correction bias, group-limited top-k and the routed
  scaling factor all live in the router, so the weights the experts receive are already final;
  ``mlp.shared_experts`` is ungated; the first ``first_k_dense_replace`` layers are dense.
- ERNIE-4.5-MoE: optional ``mlp.shared_experts`` (None when ``moe_num_shared_experts`` is 0);
  ``moe_layer_start_index`` etc. make layers dense.
- GraniteMoE: block is ``block_sparse_moe`` with ``router``.  PhiMoE: router at ``mlp.router``
  (sparsemixer top-2).
- gpt-oss: router ``mlp.router`` (with bias); experts transposed with interleaved gate/up, biases
  and the clamped ``(up + 1)·gate·σ(1.702·gate)`` — the module's own ``_apply_gate`` is used, so the
  captured neurons are exactly what its down projection reads. Its block returns a tuple.
- Dense Llama, OLMo, OLMo-2, Qwen3: ``mlp.down_proj``; GPT-NeoX: ``gpt_neox.layers[i].mlp
  .dense_4h_to_h``; GPT-2: ``transformer.h[i].mlp.c_proj`` (a ``Conv1D``).
"""

from __future__ import annotations

import torch

from .hf import HFAdapter
from .intervention import frozen_norm
from .registry import register


@register("olmoe")
class OlmoeAdapter(HFAdapter):
    """OLMoE (``norm_topk_prob`` off by default: top-k weights sum below 1)."""


@register("mixtral")
class MixtralAdapter(HFAdapter):
    """Mixtral."""


@register("qwen3_moe")
class Qwen3MoeAdapter(HFAdapter):
    """Qwen3-MoE."""


@register("flex_olmo")
class FlexOlmoAdapter(HFAdapter):
    """FlexOlmo: OLMo-2-style norms *after* each sublayer, so a layer adds
    ``post_feedforward_layernorm(block output)`` to the residual stream."""

    def _post_norm(self, layer: int) -> torch.nn.Module:
        return self.decoder_layers()[layer].post_feedforward_layernorm

    def residual_update(self, layer: int, block_out: torch.Tensor) -> torch.Tensor:
        return self._post_norm(layer)(block_out)

    def residual_update_linear(self, layer: int, block_out: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        return frozen_norm(self._post_norm(layer), block_out, part)


@register("qwen2_moe")
class Qwen2MoeAdapter(HFAdapter):
    """Qwen2-MoE: a sigmoid-gated shared expert beside the routed experts."""

    shared_attr = "shared_expert"
    shared_gate_attr = "shared_expert_gate"


@register("deepseek_v3", "glm4_moe", "ernie4_5_moe")
class SharedExpertsAdapter(HFAdapter):
    """DeepSeek-V3 and GLM-4-MoE (ungated shared experts, dense first layers) and ERNIE-4.5-MoE
    (optional shared experts): the shared MLP is ``shared_experts`` in all three."""

    shared_attr = "shared_experts"


@register("granitemoe")
class GraniteMoeAdapter(HFAdapter):
    """Granite-MoE: blocks are added to the residual times ``residual_multiplier``, logits are
    divided by ``logits_scaling``."""

    block_attr = "block_sparse_moe"
    router_attr = "router"

    def residual_update(self, layer: int, block_out: torch.Tensor) -> torch.Tensor:
        return block_out * float(self.config.residual_multiplier)

    def residual_update_linear(self, layer: int, block_out: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        return part * float(self.config.residual_multiplier)

    def logit_scale(self) -> float:
        return 1.0 / float(self.config.logits_scaling)


@register("phimoe")
class PhimoeAdapter(HFAdapter):
    """PhiMoE."""

    router_attr = "router"


@register("gpt_oss")
class GptOssAdapter(HFAdapter):
    """gpt-oss: transposed, interleaved, biased, clamped experts (handled by the module's own gate)."""

    router_attr = "router"


@register("llama", "olmo", "olmo2", "qwen3")
class GatedDenseAdapter(HFAdapter):
    """Dense SiLU-gated MLP families."""


@register("gpt_neox")
class GptNeoXAdapter(HFAdapter):
    """GPT-NeoX / Pythia: GELU MLP, not gated."""

    layers_path = ("gpt_neox", "layers")
    dense_down_attr = "dense_4h_to_h"
    final_norm_path = ("gpt_neox", "final_layer_norm")


@register("gpt2")
class Gpt2Adapter(HFAdapter):
    """GPT-2: ``Conv1D`` projections."""

    layers_path = ("transformer", "h")
    dense_down_attr = "c_proj"
    final_norm_path = ("transformer", "ln_f")
