"""``MoelensForCausalLM``: a GPT-2-style pre-norm decoder whose feed-forward layer is dense or MoE.

nanoGPT's model in Hugging Face clothes: token + learned position embeddings, ``n_layer`` blocks
of ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, a final LayerNorm and an output head tied to
the token embedding. ``transformer.h[i].mlp`` is a :class:`DenseMLP` or a :class:`MoELayer`.

Conventions, as in Hugging Face causal LMs:

- ``labels`` are shifted inside: pass ``labels=input_ids`` (positions marked -100 are ignored);
  the loss at position t predicts token t+1.
- ``loss`` is the cross-entropy **plus** the auxiliary load-balancing loss (``aux_loss``, already
  multiplied by ``aux_loss_coef``; 0 for dense models); ``lm_loss`` is the cross-entropy alone.
- ``attention_mask`` (1 = token, 0 = padding) masks padded keys, and positions count only real
  tokens, so left-padded batches generate the same as unpadded ones.

Generation keeps a key/value cache by default (``config.use_cache``, a transformers
``DynamicCache``; the prompt plus new tokens must then fit in ``n_positions``); with
``use_cache=False`` it recomputes the prefix each step over the last ``n_positions`` tokens.
Both give the same tokens (tested). Forward calls never build a cache unless asked.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Cache, DynamicCache, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput

from moelens.models.config import MoelensConfig
from moelens.models.ffn import DenseMLP
from moelens.models.moe import MoELayer
from moelens.models.routers import SoftmaxRouter


CACHE_FIELD = ("cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)}
               else "past_key_values")
"""The name transformers gives the key/value cache in model outputs and generation inputs:
``past_key_values`` up to 5.23, ``cache`` from 5.24 (which still accepts the old name, with a
deprecation warning). Outputs and generation use whichever the installed version expects."""


@dataclass
class MoelensCausalLMOutput(ModelOutput):
    """Output of :class:`MoelensForCausalLM` (a ``CausalLMOutput`` plus the auxiliary loss); the
    cache field is named :data:`CACHE_FIELD`."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    if CACHE_FIELD == "cache":
        cache: object | None = None
    else:
        past_key_values: object | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (fused qkv projection, PyTorch SDPA)."""

    def __init__(self, config: MoelensConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.residual_projection = True
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache=None, layer_idx: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            past = cache.get_seq_length(layer_idx)
            k, v = cache.update(k, v, layer_idx)
        p = self.dropout if self.training else 0.0
        if mask is None:  # no padding: plain causal, or one new token that sees the whole cache
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=past == 0 and T > 1)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    """Pre-norm transformer block: attention then the feed-forward layer, each residual."""

    def __init__(self, config: MoelensConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp: DenseMLP | MoELayer = MoELayer(config) if config.ffn == "moe" else DenseMLP(config)
        if isinstance(self.mlp, DenseMLP):
            self.mlp.c_proj.residual_projection = True

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache=None, layer_idx: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache, layer_idx)
        return x + self.mlp(self.ln_2(x))


class MoelensGenerationConfig(GenerationConfig):
    """Generation defaults from a MoelensConfig, minus ``top_k`` (experts per token there, not
    a sampling setting) -- otherwise sampling would silently keep only the 2 likeliest tokens."""

    @classmethod
    def from_model_config(cls, model_config):
        settings = model_config.to_dict() if not isinstance(model_config, dict) else dict(model_config)
        settings.pop("top_k", None)
        return GenerationConfig.from_model_config(settings)


class MoelensPreTrainedModel(PreTrainedModel):
    """Weight init (nanoGPT: N(0, 0.02), residual projections scaled by 1/sqrt(2*n_layer))."""

    config_class = MoelensConfig
    config: MoelensConfig
    generation_config_class = MoelensGenerationConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["Block"]
    _supports_sdpa = True

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As PreTrainedModel.from_pretrained, but weights are read from safetensors only (a
        pickled ``pytorch_model.bin`` is refused unless use_safetensors=False is passed)."""
        kwargs.setdefault("use_safetensors", True)
        model = super().from_pretrained(*args, **kwargs)
        model.align_weights()
        return model

    @torch.no_grad()
    def align_weights(self, alignment: int = 16) -> int:
        """Give every parameter and buffer storage aligned to ``alignment`` bytes; returns how
        many were copied.

        Loaded weights may be views into the memory-mapped safetensors file, whose tensors are
        only 8-byte aligned (where they land depends on the header's length). The MoE dispatcher
        needs 16-byte aligned expert weights for grouped_mm and would otherwise fall back to the
        slower per-expert loop, whose sums round differently; a fresh copy is always aligned.
        """
        moved = 0
        for tensor in [*self.parameters(), *self.buffers()]:
            if tensor.numel() and tensor.data_ptr() % alignment:
                tensor.data = tensor.data.clone(memory_format=torch.contiguous_format)
                moved += 1
        return moved

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        proj_std = std / math.sqrt(2 * self.config.n_layer)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0,
                         std=proj_std if getattr(module, "residual_projection", False) else std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, MoELayer):
            init.normal_(module.w_enc, mean=0.0, std=std)
            init.normal_(module.w_dec, mean=0.0, std=proj_std)
            for b in (module.b_enc, module.b_dec):
                if b is not None:
                    init.zeros_(b)
        elif isinstance(module, SoftmaxRouter):
            init.normal_(module.weight, mean=0.0, std=std)


class MoelensModel(MoelensPreTrainedModel):
    """The decoder stack without the output head (``wte``, ``wpe``, ``h``, ``ln_f``)."""

    def __init__(self, config: MoelensConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, cache=None) -> tuple[torch.Tensor, tuple | None]:
        """Final hidden states [B, T, d] (and all layers' if asked) of ``input_ids`` [B, T].

        With a key/value ``cache`` holding P earlier tokens, ``input_ids`` are the T new tokens
        and ``attention_mask`` (if given) covers all P + T."""
        B, T = input_ids.shape
        dev = input_ids.device
        past = cache.get_seq_length() if cache is not None else 0
        L = past + T
        if L > self.config.n_positions:
            raise ValueError(f"sequence of {L} tokens is longer than n_positions={self.config.n_positions}")
        mask = None
        padded = attention_mask is not None and not bool(attention_mask.all())
        if padded:
            pos = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]
        else:
            pos = torch.arange(past, L, device=dev).expand(B, T)
        if padded or (past > 0 and T > 1):
            keep = attention_mask.bool() if padded else torch.ones(B, L, dtype=torch.bool, device=dev)
            query = torch.arange(past, L, device=dev)[:, None]
            key = torch.arange(L, device=dev)[None, :]
            # a padded query still attends to itself, so no row is all -inf (no NaN)
            mask = ((key <= query) & keep[:, None, :]) | (key == query)
            mask = mask[:, None]
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        states = [x] if output_hidden_states else None
        for i, block in enumerate(self.h):
            x = block(x, mask, cache, i)
            if states is not None:
                states.append(x)
        x = self.ln_f(x)
        if states is not None:
            states[-1] = x
        return x, tuple(states) if states is not None else None


class MoelensForCausalLM(MoelensPreTrainedModel, GenerationMixin):
    """Decoder + tied output head; ``loss`` includes the auxiliary load-balancing loss."""

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: MoelensConfig):
        super().__init__(config)
        self.transformer = MoelensModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def moe_layers(self) -> list[MoELayer]:
        return [b.mlp for b in self.transformer.h if isinstance(b.mlp, MoELayer)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                past_key_values: Cache | None = None, use_cache: bool | None = None,
                return_dict: bool | None = None, cache: Cache | None = None,
                **kwargs) -> MoelensCausalLMOutput:
        if past_key_values is None:  # transformers >= 5.24 passes it as ``cache``
            past_key_values = cache
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        cache = past_key_values if use_cache or past_key_values is not None else None
        hidden, states = self.transformer(input_ids, attention_mask, bool(output_hidden_states), cache)
        logits = self.lm_head(hidden)
        moe = self.moe_layers()
        aux = sum((m.aux_loss for m in moe), logits.new_zeros(()))
        lm_loss = loss = None
        if labels is not None:
            lm_loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                      labels[:, 1:].reshape(-1), ignore_index=-100)
            loss = lm_loss + aux
        return MoelensCausalLMOutput(loss=loss, logits=logits, aux_loss=aux, lm_loss=lm_loss,
                                     hidden_states=states, **{CACHE_FIELD: cache})

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, past_key_values=None,
                                      attention_mask=None, use_cache=None, cache=None, **kwargs):
        """With a cache: feed only the tokens it does not hold yet. Without one: feed the whole
        prefix, cropped to the last n_positions tokens (a sliding window)."""
        past_key_values = past_key_values if past_key_values is not None else cache
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if past > 0:
            return {"input_ids": input_ids[:, past:], "attention_mask": attention_mask,
                    CACHE_FIELD: past_key_values, "use_cache": True}
        n = self.config.n_positions
        if attention_mask is not None:
            attention_mask = attention_mask[:, -n:]
        return {"input_ids": input_ids[:, -n:], "attention_mask": attention_mask,
                CACHE_FIELD: past_key_values, "use_cache": use_cache}
