"""``MoelensConfig``: the Hugging Face config of a moelens decoder (dense, Switch or MoE-X).

One flat config covers every model the build half trains: a GPT-2-style pre-norm decoder
(nanoGPT-like: learned positions, optional biases, tied embeddings) whose feed-forward layer is
either a dense MLP (``ffn="dense"``) or a top-k mixture of experts (``ffn="moe"``). The MoE-X
choices of Yang et al. (2025) -- ReLU experts and the sparsity-aware router -- are independent
options (``expert_act``, ``router``), so the paper's ablation is two flags.

Impossible settings raise :class:`moelens.errors.ConfigError` with a one-line message, both when
a config is built in code and when a saved ``config.json`` is loaded.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

from moelens.errors import ConfigError

FFN_KINDS = ("dense", "moe")
"""Feed-forward kinds: a dense MLP or a top-k mixture of experts."""

DENSE_ACTS = ("gelu", "relu", "geglu", "solu")
"""Dense MLP activations (``geglu`` doubles the up-projection; ``solu`` is x*softmax(x) + LayerNorm)."""

EXPERT_ACTS = ("gelu", "relu", "silu")
"""Expert activations: element-wise, so each expert's hidden block stays one vector per token."""

ROUTERS = ("softmax", "sparsity")
"""``softmax``: learned linear router; ``sparsity``: MoE-X weight-free sparsity-aware router."""


class MoelensConfig(PreTrainedConfig):
    """Shape and feed-forward choices of a moelens decoder; defaults are the paper's chess model."""

    model_type = "moelens"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    attribute_map = {
        "hidden_size": "n_embd",
        "num_hidden_layers": "n_layer",
        "num_attention_heads": "n_head",
        "max_position_embeddings": "n_positions",
    }

    vocab_size: int = 32
    """tokens in the vocabulary (32 for the chess character set)"""
    n_positions: int = 1024
    """longest context the learned position table covers"""
    n_layer: int = 8
    """number of decoder blocks"""
    n_head: int = 8
    """attention heads per block (must divide n_embd)"""
    n_embd: int = 512
    """residual stream width d"""
    bias: bool = False
    """biases in linear layers and LayerNorms (nanoGPT's bias flag; False in the paper)"""
    dropout: float = 0.0
    """dropout on embeddings, attention and block outputs (0 in the paper)"""
    layer_norm_epsilon: float = 1e-5
    """LayerNorm epsilon"""
    initializer_range: float = 0.02
    """std of the normal init; output projections get std/sqrt(2*n_layer) (nanoGPT)"""
    ffn: str = "dense"
    """feed-forward kind: dense MLP or top-k mixture of experts"""
    ffn_width: int = 4096
    """hidden width of the dense MLP (4096 matches the activated parameters of 8x2048 top-2)"""
    ffn_act: str = "gelu"
    """dense MLP activation: gelu, relu, geglu or solu"""
    num_experts: int = 8
    """experts per MoE layer (M)"""
    top_k: int = 2
    """experts each token is routed to (k)"""
    expert_width: int = 2048
    """hidden width D of each expert"""
    expert_act: str = "relu"
    """expert activation: relu (MoE-X), gelu (Switch baseline) or silu"""
    router: str = "softmax"
    """softmax (learned linear, Switch/Mixtral style) or sparsity (MoE-X, no router weights)"""
    router_temperature: float = 1.0
    """router scores are divided by this before the softmax; the sparsity scores lie in (-1, 1), so a value below 1 sharpens the otherwise nearly flat top-k weights"""
    router_eps: float = 1e-6
    """epsilon added to the variance inside the sparsity router's erf (numerical safety)"""
    aux_loss_coef: float = 0.01
    """alpha of the Switch load-balancing loss alpha*M*sum_j f_j*P_j; 0 disables it"""
    tie_word_embeddings: bool = True
    """share the token embedding with the output head"""
    use_cache: bool = True
    """generate() keeps a key/value cache (prompt + new tokens must fit in n_positions); False
    recomputes the prefix each step over a sliding window of n_positions tokens"""
    bos_token_id: int | None = None
    """beginning-of-sequence token id, if any"""
    eos_token_id: int | list[int] | None = None
    """end-of-sequence token id(s), if any"""
    pad_token_id: int | None = None
    """padding token id, if any"""

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        validate(self)


def _positive(cfg: MoelensConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer")


def validate(cfg: MoelensConfig) -> None:
    """Raise ConfigError (one line) for any setting the model cannot be built with."""
    _positive(cfg, "vocab_size", "n_positions", "n_layer", "n_head", "n_embd")
    if cfg.n_embd % cfg.n_head:
        raise ConfigError(f"n_embd={cfg.n_embd} is not divisible by n_head={cfg.n_head}; "
                          "pick n_head dividing n_embd")
    if not 0.0 <= float(cfg.dropout) < 1.0:
        raise ConfigError(f"dropout={cfg.dropout} must be in [0, 1)")
    if cfg.ffn not in FFN_KINDS:
        raise ConfigError(f"unknown ffn {cfg.ffn!r}; choose one of: {', '.join(FFN_KINDS)}")
    if cfg.ffn == "dense":
        _positive(cfg, "ffn_width")
        if cfg.ffn_act not in DENSE_ACTS:
            raise ConfigError(f"unknown ffn_act {cfg.ffn_act!r}; choose one of: {', '.join(DENSE_ACTS)}")
        return
    _positive(cfg, "num_experts", "top_k", "expert_width")
    if cfg.top_k > cfg.num_experts:
        raise ConfigError(f"top_k={cfg.top_k} is larger than num_experts={cfg.num_experts}; "
                          "route to at most num_experts experts")
    if cfg.expert_act not in EXPERT_ACTS:
        raise ConfigError(f"unknown expert_act {cfg.expert_act!r}; choose one of: {', '.join(EXPERT_ACTS)}")
    if cfg.router not in ROUTERS:
        raise ConfigError(f"unknown router {cfg.router!r}; choose one of: {', '.join(ROUTERS)}")
    if not float(cfg.router_temperature) > 0:
        raise ConfigError(f"router_temperature={cfg.router_temperature} must be > 0")
    if not float(cfg.aux_loss_coef) >= 0:
        raise ConfigError(f"aux_loss_coef={cfg.aux_loss_coef} must be >= 0 (0 disables it)")
    if not float(cfg.router_eps) > 0:
        raise ConfigError(f"router_eps={cfg.router_eps} must be > 0")


def config_fields() -> list[str]:
    """Names of the moelens-specific settings (what presets and overrides may set)."""
    return [n for n in MoelensConfig.__annotations__ if not n.startswith("_")]
