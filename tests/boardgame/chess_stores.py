"""Tiny chess models captured into stores, and their units computed directly from the model.

A plain module (not a conftest) so the board-game tests import it by a name no other folder uses.
The direct path runs the model with forward hooks and MoE-X's ``wide_view`` — nothing of the
store, the capture or the board-game reader — so comparing the two checks the whole reading path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from moelens.capture.command import CaptureConfig
from moelens.capture.job import capture
from moelens.data.chess import chess_tokenizer, encode
from moelens.models import MoelensConfig, MoelensForCausalLM

BASE = dict(vocab_size=32, n_positions=256, n_layer=2, n_head=2, n_embd=16, ffn_width=24,
            num_experts=4, top_k=2, expert_width=8, bias=True)


def tiny_chess_model(out: Path, seed: int = 0, **overrides) -> Path:
    """Save a seeded, untrained moelens model (random weights, larger than init so units vary)."""
    torch.manual_seed(seed)
    model = MoelensForCausalLM(MoelensConfig(**{**BASE, **overrides})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(out)
    chess_tokenizer().save_pretrained(out)
    return out


def capture_store(model_dir: Path, games_file: Path, out: Path, spaces: list[str],
                  ctx: int = 256, tokens: int | None = None) -> Path:
    capture(CaptureConfig(model=str(model_dir), out=out, corpus=[games_file], spaces=spaces,
                          ctx=ctx, dtype="fp32", batch_size=4, quiet=True, tokens=tokens,
                          threads=1))
    return out


@torch.no_grad()
def direct_units(model_dir: Path, game: str, layer: int) -> dict[str, np.ndarray]:
    """Per character of ``game`` (first 256): the layer's units, computed from the model."""
    model = MoelensForCausalLM.from_pretrained(model_dir).eval()
    block = model.transformer.h[layer]
    seen: dict[str, torch.Tensor] = {}
    h1 = block.mlp.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    h2 = block.register_forward_hook(lambda m, args, out: seen.update(
        resid=out[0] if isinstance(out, tuple) else out))
    ids = torch.from_numpy(encode(game[:256]).astype(np.int64))[None]
    model(ids)
    h1.remove()
    h2.remove()
    out = {"resid": seen["resid"][0].numpy()}
    mlp = block.mlp
    if hasattr(mlp, "wide_view"):
        z_gated, z = mlp.wide_view(seen["x"][0])
        routed = (z_gated != 0) | (torch.repeat_interleave(
            torch.zeros(z.shape[0], mlp.num_experts).scatter(1, mlp.routing(seen["x"][0])
                                                             .topk_ids, 1.0),
            mlp.expert_width, dim=1) > 0)
        out["expert/gated"] = z_gated.numpy()
        out["expert/zero_filled"] = (z * routed).numpy()
    else:
        hid = {}
        mlp.observer = lambda kind, hidden: hid.update(h=hidden)
        mlp(seen["x"])
        mlp.observer = None
        out["ffn"] = hid["h"].reshape(-1, hid["h"].shape[-1]).numpy()
    return out
