"""Evaluating one trained chess model: everything the comparison's tables need, in one stage.

1. validation loss on the whole held-out split (``moelens eval``'s library, no auxiliary loss);
2. legal-move rate of greedy moves on held-out game prefixes;
3. router statistics on held-out games, per MoE layer: router entropy (nats, of the softmax over
   all experts at the model's temperature), mean top-1 weight, and L0 = active hidden units per
   token (non-zeros of MoE-X's gated z; for dense models the MLP's positive units);
4. capture of the held-out games into a store (the scored layer's units, the residual stream at
   the layers the probe reads) and the board metrics of :mod:`moelens.analysis.boardgame` on it:
   coverage and reconstruction of all 23 BSP functions for every unit space, the residual board
   probe. The store is deleted afterwards unless a later stage needs it (the SAE baseline).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from moelens.rundir import atomic_write_json


def router_stats(model_dir: Path, games: list[str], max_chars: int) -> dict[str, Any]:
    """Per layer: router entropy, top-1 weight and L0 on the first ``max_chars`` characters of
    ``games`` (MoE layers via the layer's own routing and wide view)."""
    import torch

    from moelens.data.chess.vocab import encode
    from moelens.models.saved import load_saved_model

    model = load_saved_model(Path(model_dir)).eval()
    inputs: dict[int, list[torch.Tensor]] = {}
    def keep(i: int):
        return lambda m, args, out: inputs.setdefault(i, []).append(
            args[0].reshape(-1, args[0].shape[-1]))

    hooks = [b.mlp.register_forward_hook(keep(i)) for i, b in enumerate(model.transformer.h)]
    with torch.no_grad():
        for g in games:
            model(torch.from_numpy(encode(g[:max_chars]).astype(np.int64))[None])
    for h in hooks:
        h.remove()
    out: dict[str, Any] = {}
    with torch.no_grad():
        for i, xs in inputs.items():
            x = torch.cat(xs)
            mlp = model.transformer.h[i].mlp
            if hasattr(mlp, "wide_view"):
                r = mlp.routing(x)
                p = r.probs
                z_gated, _ = mlp.wide_view(x)
                out[str(i)] = {
                    "router_entropy": float(-(p * p.clamp_min(1e-20).log()).sum(-1).mean()),
                    "max_entropy": float(np.log(mlp.num_experts)),
                    "top1_weight": float(r.topk_weights[:, 0].mean()),
                    "l0": float((z_gated != 0).sum(-1).float().mean()),
                    "width": int(z_gated.shape[1])}
            else:
                hid: dict[str, torch.Tensor] = {}
                mlp.observer = lambda kind, hidden: hid.update(h=hidden)
                mlp(x)
                mlp.observer = None
                out[str(i)] = {"l0": float((hid["h"] > 0).sum(-1).float().mean()),
                               "width": int(hid["h"].shape[-1])}
    return out


def validation_loss(model_dir: Path, data: Path, device: str) -> float:
    """Loss (nats per character) over the whole validation split, without auxiliary losses."""
    from moelens.training.evaluate import EvalConfig
    from moelens.training.scoring import evaluate

    return float(evaluate(EvalConfig(model=model_dir, data=data, device=device, quiet=True))
                 ["loss"])


def capture_games(model_dir: Path, games_file: Path, store: Path, layers: list[int],
                  spaces: list[str], cfg: Any) -> None:
    """Capture the held-out games (each its own document, ``max_chars`` tokens of context)."""
    from moelens.capture.command import CaptureConfig
    from moelens.capture.job import capture

    capture(CaptureConfig(model=str(model_dir), out=store, corpus=[games_file], layers=layers,
                          spaces=spaces, ctx=cfg.score.max_chars, batch_size=16, dtype="fp16",
                          threads=cfg.train.cpu_threads or None, quiet=cfg.quiet))


def board_scores(store_dir: Path, games_file: Path, cfg: Any, name: str, probe_layers: list[int]
                 ) -> tuple[list[dict], list[dict], dict]:
    """Board metrics of the scored layer's unit spaces and the probe at ``probe_layers``."""
    from moelens.analysis.boardgame.command import BoardgameConfig
    from moelens.analysis.boardgame.run import probe_layers as probe
    from moelens.analysis.boardgame.run import score_store
    from moelens.analysis.boardgame.units import match_positions
    from moelens.data.chess.labels import labels_for_file, read_games
    from moelens.store import ActivationStore

    store = ActivationStore.open(store_dir)
    layer = cfg.scored_layer
    spaces = [s for s in store.spaces(layer) if s in ("expert", "ffn", "resid", "sae")]
    bg = BoardgameConfig(store=[store_dir], games=games_file, layers=[layer], spaces=spaces,
                         labelling=cfg.score.labelling, max_positions=cfg.score.max_positions,
                         max_chars=cfg.score.max_chars, probe=False, figures=False,
                         quiet=cfg.quiet)
    games = read_games(games_file)
    labels = labels_for_file(games_file, max_positions=bg.max_positions, max_chars=bg.max_chars)
    scored = score_store(store, games, labels, bg, name)
    pos = match_positions(store, games, labels, bg.fit_fraction, bg.seed)
    return scored.rows, probe(store, probe_layers, labels, pos, bg.seed, name,
                              cfg.score.probe_steps), \
        {"cells": scored.cells, "positions": scored.positions}


def evaluate_model(name: str, is_moe: bool, model_dir: Path, data: Path, games_file: Path,
                   stage: Path, cfg: Any, probe_all_layers: bool, keep_store: bool
                   ) -> dict[str, Any]:
    """Every measurement of one model, written to ``stage/results.json``; returns the headline."""
    from moelens.data.chess.labels import read_games
    from moelens.models.saved import load_saved_model
    from moelens.training.legal_moves import legal_move_rate

    device = "cuda" if cfg.train.device == "cuda" else "cpu"
    games = read_games(games_file)
    res: dict[str, Any] = {"model": name, "val_loss": validation_loss(model_dir, data,
                                                                      cfg.train.device)}
    model = load_saved_model(model_dir).eval().to(device)
    res.update(legal_move_rate(model, games, cfg.score.legal_prompts, seed=0,
                               max_chars=cfg.score.max_chars, device=device))
    del model
    res["router"] = router_stats(model_dir, games[:cfg.score.stats_games], cfg.score.max_chars)
    layer = cfg.scored_layer
    probe_at = list(range(cfg.model.n_layer)) if probe_all_layers else [layer]
    store = stage / "store"
    capture_games(model_dir, games_file, store, sorted(set(probe_at) | {layer}),
                  ["expert", "resid"] if is_moe else ["ffn", "resid"], cfg)
    rows, probe_rows, extra = board_scores(store, games_file, cfg, name, probe_at)
    res.update(extra)
    res["probe"] = probe_rows
    atomic_write_json(stage / "boardgame.json", rows)
    if not keep_store:
        shutil.rmtree(store)
    atomic_write_json(stage / "results.json", res)
    head = [r for r in rows if r["function"] == "piece_masked_blank_and_initial"
            and r["space"] in ("expert", "ffn") and r["semantics"] in ("", "gated")]
    return {"val_loss": res["val_loss"], "legal_move_rate": res["legal_move_rate"],
            "coverage": head[0]["coverage"] if head else None,
            "reconstruction": head[0]["reconstruction"] if head else None}


def load_results(stage: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(results.json, boardgame rows)`` of a finished evaluation stage."""
    return (json.loads((stage / "results.json").read_text()),
            json.loads((stage / "boardgame.json").read_text()))
