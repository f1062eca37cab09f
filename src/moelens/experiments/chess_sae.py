"""The SAE baseline of the chess comparison: a TopK sparse autoencoder on the dense GELU model's
MLP at the scored layer, its latents scored with the same board metrics as every model's units.

The SAE is trained inside the first dense GELU model's evaluation store (``moelens sae train``'s
library; the latents become the store's ``sae`` space), i.e. on the MLP activations of the
held-out games, 10% of their tokens held out for its own metrics. It never sees a board label, so
sharing the games with the board metrics is an unsupervised overlap only (Karvonen et al. train
theirs on separate games; a store cannot serve latents of an SAE trained on another capture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.rundir import atomic_write_json


def train_and_score(stage: Path, store: Path, games_file: Path, cfg: Any, name: str
                    ) -> dict[str, Any]:
    """Train (or find) the SAE in ``store``, score its latents, write ``stage/results.json``."""
    from moelens.analysis.boardgame.command import BoardgameConfig
    from moelens.analysis.boardgame.run import HEADLINE, score_store
    from moelens.analysis.sae import SaeTrainConfig, train_sae
    from moelens.data.chess.labels import labels_for_file, read_games
    from moelens.store import ActivationStore

    s, layer = cfg.sae, cfg.scored_layer
    res = train_sae(SaeTrainConfig(store=store, layer=layer, space="ffn", kind="topk",
                                   expansion=s.expansion, k=s.k, steps=s.steps,
                                   batch_size=s.batch_size, seed=cfg.seeds[0],
                                   threads=cfg.train.cpu_threads, quiet=cfg.quiet))
    bg = BoardgameConfig(store=[store], games=games_file, layers=[layer], spaces=["sae"],
                         labelling=cfg.score.labelling, max_positions=cfg.score.max_positions,
                         max_chars=cfg.score.max_chars, probe=False, figures=False,
                         quiet=cfg.quiet)
    labels = labels_for_file(games_file, max_positions=bg.max_positions, max_chars=bg.max_chars)
    scored = score_store(ActivationStore.open(store), read_games(games_file), labels, bg,
                         f"sae({name})")
    atomic_write_json(stage / "boardgame.json", scored.rows)
    held = res.metrics["heldout"]
    head = next(r for r in scored.rows if r["function"] == HEADLINE)
    out = {"model": f"sae({name})", "latents": res.settings.get("latents"), "k": s.k,
           "fve": held["explained_variance"], "fvu": held["fvu"], "l0": held["l0"],
           "dead_fraction": held["dead_fraction"], "coverage": head["coverage"],
           "chance_coverage": head["chance_coverage"], "reconstruction": head["reconstruction"],
           "reconstruction_paper": head["reconstruction_paper"], "n_alive": head["n_alive"],
           "n_labelled": head["n_labelled"], "cells": scored.cells}
    atomic_write_json(stage / "results.json", out)
    return {k: out[k] for k in ("fve", "l0", "dead_fraction", "coverage", "reconstruction")}
