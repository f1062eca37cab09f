"""moelens models: dense, Switch and MoE-X decoders as ordinary Hugging Face causal LMs.

Importing this package registers ``model_type="moelens"`` with ``AutoConfig`` and
``AutoModelForCausalLM``, so ``AutoModelForCausalLM.from_pretrained(dir)`` loads a saved moelens
model (weights from safetensors only) once ``import moelens.models`` has run.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM

from moelens.models.config import MoelensConfig
from moelens.models.ffn import DenseMLP
from moelens.models.modeling import MoelensForCausalLM, MoelensModel
from moelens.models.moe import MoELayer
from moelens.models.presets import model_config

AutoConfig.register("moelens", MoelensConfig, exist_ok=True)
AutoModelForCausalLM.register(MoelensConfig, MoelensForCausalLM, exist_ok=True)

__all__ = ["DenseMLP", "MoELayer", "MoelensConfig", "MoelensForCausalLM", "MoelensModel",
           "model_config"]
