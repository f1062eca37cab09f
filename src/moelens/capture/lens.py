"""``moelens lens``: each expert's promoted tokens (its logit lens), for ``moelens interpret``.

For every expert of every MoE layer in a store: take the expert's ``tokens`` strongest routed
tokens (router weight × ‖expert output‖), recompute their expert outputs from the stored neurons
through the adapter (the expert's down projection, biases included), apply the model's final
norm to each output as if it were the residual stream, average, and read the top tokens of the
unembedding. The expert-level paper's scripts skipped the final norm; that reading is stored
too (``promoted_no_norm``, ``moelens interpret --lens_variant paper``).

This lives on the capture side because it needs the model's weights and its family adapter,
which an analysis never imports; the result is a small JSON file beside the store
(``STORE/lens.json``, tied to the store by its fingerprint) that the explainer reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from moelens.errors import ConfigError, StoreError, UnsupportedModelError

LENS_FORMAT = "moelens-lens"
NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm")


@dataclass
class LensConfig:
    model: str = ""
    """the model directory (or hub id) the store was captured from"""
    store: Path | None = None
    """activation store directory (with the 'expert' space at its MoE layers)"""
    out: Path | None = None
    """where to write the lens (default: STORE/lens.json, where 'moelens interpret' looks)"""
    top_n: int = 10
    """promoted tokens kept per expert"""
    tokens: int = 256
    """strongest routed tokens per expert whose outputs are averaged"""
    model_dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """dtype the model's weights are loaded in"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("--model is required: the model the store was captured from")
        if self.store is None:
            raise ConfigError("--store is required: the activation store")
        if self.top_n < 1 or self.tokens < 1:
            raise ConfigError("--top_n and --tokens must be at least 1")


def final_norm_and_head(model: Any) -> tuple[Any, Any]:
    """The model's final norm module and its output embedding (``nn.Linear``-like)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    bases = [getattr(model, "get_decoder", lambda: None)()]
    bases += [getattr(model, name, None) for name in ("model", "transformer", "gpt_neox")]
    for base in [b for b in bases if b is not None]:
        for name in NORM_NAMES:
            norm = getattr(base, name, None)
            if norm is not None and hasattr(norm, "forward"):
                if head is None:
                    break
                return norm, head
    raise UnsupportedModelError(f"cannot find the final norm and output embedding of this "
                                f"{getattr(model.config, 'model_type', '?')} model (looked for "
                                f"{', '.join(NORM_NAMES)}); the logit lens needs both")


def _top(logits, tokenizer, n: int) -> list[dict[str, Any]]:
    import torch

    vals, idx = torch.topk(logits, min(n, logits.numel()))
    return [{"id": int(i), "token": tokenizer.decode([int(i)]), "logit": round(float(v), 4)}
            for v, i in zip(vals, idx)]


def expert_lens(model, adapter, tokenizer, store, top_n: int, n_tokens: int, quiet: bool = True) -> dict:
    """``{layer: {"experts": {e: {"routed", "promoted", "promoted_no_norm"}}}}`` for the store's MoE layers."""
    import torch
    from tqdm import tqdm

    norm, head = final_norm_and_head(model)
    dtype = next(head.parameters()).dtype
    layers = [l for l in store.layers if "expert" in store.spaces(l)]
    if not layers:
        raise StoreError("the store has no 'expert' space at any layer; capture the expert neurons first")
    jobs = [(l, e) for l in layers for e in range(store.num_experts(l))]
    out: dict[str, Any] = {}
    for layer, e in tqdm(jobs, desc="lens", disable=quiet):
        entry = out.setdefault(str(layer), {"experts": {}})["experts"]
        tok, hidden = store.expert(layer, e, "routed")
        if tok.size == 0:
            entry[str(e)] = {"routed": 0, "promoted": [], "promoted_no_norm": []}
            continue
        ids, w = store.routing(layer)
        weight = (w[tok] * (ids[tok] == e)).sum(axis=1)
        with torch.no_grad():
            norms = np.concatenate([
                adapter.expert_output(layer, e, torch.from_numpy(hidden[a:a + 4096]).to(dtype)).float().norm(dim=-1).numpy()
                for a in range(0, tok.size, 4096)])
            top = np.argsort(-(weight * norms), kind="stable")[:n_tokens]
            outs = adapter.expert_output(layer, e, torch.from_numpy(hidden[top]).to(dtype))
            fixed = head(norm(outs).mean(dim=0)).float()
            paper = head(outs.mean(dim=0)).float()
        entry[str(e)] = {"routed": int(tok.size), "promoted": _top(fixed, tokenizer, top_n),
                         "promoted_no_norm": _top(paper, tokenizer, top_n)}
    return out


def run(cfg: LensConfig) -> int:
    from moelens.capture.job import load_model, make_adapter
    from moelens.rundir import atomic_write_json
    from moelens.store import ActivationStore

    store = ActivationStore.open(Path(cfg.store))
    model, tokenizer = load_model(cfg.model, cfg.model_dtype)
    if tokenizer is None:
        raise ConfigError(f"{cfg.model} has no tokenizer to spell the promoted tokens; save one beside it")
    adapter = make_adapter(None, model)
    layers = expert_lens(model, adapter, tokenizer, store, cfg.top_n, cfg.tokens, quiet=cfg.quiet)
    path = Path(cfg.out) if cfg.out is not None else Path(cfg.store) / "lens.json"
    atomic_write_json(path, {"format": LENS_FORMAT, "version": 1, "model": cfg.model,
                             "store_fingerprint": store.manifest.get("fingerprint"),
                             "tokens_per_expert": cfg.tokens, "top_n": cfg.top_n, "layers": layers})
    if not cfg.quiet:
        print(f"lens: promoted tokens of {sum(len(v['experts']) for v in layers.values())} experts -> {path}")
    return 0
