"""``moelens boardgame`` as a library call: score stores' unit spaces against the board.

For each store (one model): check that it was captured on chess games, tie its tokens to the
games file's positions and labels (:mod:`.units`), then for every asked (layer, space[,
semantics]) stream the units through one :class:`~.metrics.BoardScorer` for all BSP functions,
and fit the residual board probe (:mod:`.probe`) at every layer that has ``resid``. Results are
tidy rows (one per model, layer, space, semantics and function) plus, per scored space, the
headline function's per-cell numbers for the board diagram.

``cfg`` is a :class:`moelens.analysis.boardgame.command.BoardgameConfig` (taken as is, so that
the command module stays the only one that knows about the command line).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from moelens.analysis.boardgame.inputs import BSPLabels
from moelens.analysis.boardgame.metrics import BoardScorer
from moelens.analysis.boardgame.probe import fit_board_probe, piece_classes
from moelens.analysis.boardgame.units import match_positions, unit_blocks
from moelens.data.chess.bsp import BSP_FUNCTIONS
from moelens.data.chess.labels import BoardLabels
from moelens.errors import ConfigError, StoreError

HEADLINE = "piece_masked_blank_and_initial"
"""The function whose coverage and reconstruction the MoE-X tables report."""

NOT_UNITS = ("expert_gate", "expert_out")
"""Whole-expert spaces: scored only when asked for by name (not part of the default spaces)."""


@dataclass
class StoreScores:
    """Everything scored on one store."""

    model: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Tidy rows: one per (layer, space, semantics, function)."""
    probe_rows: list[dict[str, Any]] = field(default_factory=list)
    """One row per layer with a residual stream: the board probe's accuracies."""
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    """'L<layer>/<space>[/<semantics>]' → the headline function's per-cell F1 and label counts."""
    positions: dict[str, int] = field(default_factory=dict)
    """Counts of fitting/test positions and games, dropped positions, unmatched documents."""


def model_name(store: Any) -> str:
    """A short name for a store's model: its directory name, or the run above ``model/``."""
    ident = str((store.manifest.get("model") or {}).get("id") or store.root)
    parts = Path(ident).parts
    if len(parts) >= 2 and parts[-1] == "model":
        return parts[-2]
    return parts[-1] if parts else ident


def spaces_to_score(store: Any, layer: int, asked: list[str], semantics: list[str]
                    ) -> list[tuple[str, str]]:
    """(space, semantics) pairs to score at a layer: the asked spaces the layer has (all unit
    spaces but whole-expert ones when none are asked); expert neurons once per semantics."""
    have = store.spaces(layer)
    if asked:
        missing = [s for s in asked if s not in have]
        if missing:
            raise StoreError(f"space {missing[0]!r} is not in the store at layer {layer}; it "
                             f"holds {', '.join(have)}")
        chosen = list(asked)
    else:
        chosen = [s for s in have if s not in NOT_UNITS]
    out = []
    for s in chosen:
        out += [(s, sem) for sem in semantics] if s == "expert" else [(s, "")]
    return out


def score_store(store: Any, games: list[str], labels: BoardLabels, cfg: Any,
                model: str | None = None) -> StoreScores:
    """Score one store as ``cfg`` asks (layers, spaces, semantics, functions, split, probe)."""
    layers = list(cfg.layers) or list(store.layers)
    missing = [l for l in layers if l not in store.layers]
    if missing:
        raise StoreError(f"layer {missing[0]} is not in the store {store.root}; it holds layers "
                         f"{store.layers}")
    plan = [(l, s, sem) for l in layers for s, sem in spaces_to_score(store, l, cfg.spaces,
                                                                         cfg.semantics)]
    pos = match_positions(store, games, labels, cfg.fit_fraction, cfg.seed)
    out = StoreScores(model or model_name(store))
    out.positions = {"n_fit": int(pos.fit_tokens.size), "n_test": int(pos.test_tokens.size),
                     "n_games_fit": pos.n_games_fit, "n_games_test": pos.n_games_test,
                     "n_dropped_positions": pos.n_dropped_positions,
                     "n_unmatched_documents": pos.n_unmatched_documents,
                     "n_skipped_games": labels.n_skipped}
    functions = {name: BSPLabels(labels.labels[name][pos.fit_rows],
                                 labels.labels[name][pos.test_rows],
                                 BSP_FUNCTIONS[name].cell_mask)
                 for name in (cfg.functions or list(BSP_FUNCTIONS))}
    bar = tqdm(plan, desc=f"boardgame {out.model}", unit="space", disable=cfg.quiet,
               file=sys.stderr, delay=1.0)
    for layer, space, sem in bar:
        scorer = BoardScorer(functions, cfg.chunk_units, cfg.labelling)
        for a_fit, a_test in unit_blocks(store, layer, space, sem, pos.fit_tokens,
                                         pos.test_tokens):
            scorer.add(a_fit, a_test)
        for fn, s in scorer.result().items():
            out.rows.append({
                "model": out.model, "layer": layer, "space": space, "semantics": sem,
                "function": fn, "coverage": s.coverage, "chance_coverage": s.chance_coverage,
                "coverage_threshold": s.coverage_threshold, "reconstruction": s.reconstruction,
                "reconstruction_threshold": s.reconstruction_threshold,
                "reconstruction_paper": s.reconstruction_paper,
                "chance_reconstruction": s.chance_reconstruction, "n_units": s.n_units,
                "n_alive": s.n_alive, "n_labelled": s.n_labelled, "n_cells": s.n_cells,
                "labelling": s.labelling, "n_fit": out.positions["n_fit"],
                "n_test": out.positions["n_test"]})
            if fn == HEADLINE:
                key = f"L{layer}/{space}" + (f"/{sem}" if sem else "")
                out.cells[key] = {"cell_index": s.cell_index.tolist(),
                                  "cell_f1": s.cell_f1.tolist(),
                                  "cell_labelled": s.cell_labelled.tolist()}
    if cfg.probe:
        out.probe_rows = probe_layers(store, layers, labels, pos, cfg.seed, out.model)
    return out


def probe_layers(store: Any, layers: list[int], labels: BoardLabels, pos: Any, seed: int,
                 model: str, steps: int = 300) -> list[dict[str, Any]]:
    """The residual board probe at every given layer that has ``resid``."""
    y = piece_classes(labels.labels["piece"])
    rows = []
    for layer in layers:
        if "resid" not in store.spaces(layer):
            continue
        r = fit_board_probe(store.dense(layer, "resid", tokens=pos.fit_tokens), y[pos.fit_rows],
                            store.dense(layer, "resid", tokens=pos.test_tokens),
                            y[pos.test_rows], seed=seed, steps=steps)
        rows.append({"model": model, "layer": layer, "accuracy": r.accuracy,
                     "accuracy_changed": r.accuracy_changed,
                     "majority_accuracy": r.majority_accuracy,
                     "majority_accuracy_changed": r.majority_accuracy_changed,
                     "test_loss": r.test_loss, "n_fit": r.n_fit, "n_test": r.n_test})
    return rows


def check_functions(names: list[str]) -> None:
    """Raise ConfigError naming an unknown BSP function."""
    unknown = [n for n in names if n not in BSP_FUNCTIONS]
    if unknown:
        raise ConfigError(f"unknown BSP function {unknown[0]!r}; choose from "
                          f"{', '.join(BSP_FUNCTIONS)}")


def headline_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the headline function (what the MoE-X tables call coverage/reconstruction)."""
    return [r for r in rows if r["function"] == HEADLINE]


def per_square(cells: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """8×8 grids from a cells record: the best unit's F1 for the square's best-covered piece
    class, and the number of piece classes with at least one labelled unit (row = rank,
    col = file)."""
    square = np.asarray(cells["cell_index"]) // 13
    f1 = np.zeros(64)
    covered = np.zeros(64, dtype=np.int64)
    np.maximum.at(f1, square, np.asarray(cells["cell_f1"], dtype=np.float64))
    np.add.at(covered, square, (np.asarray(cells["cell_labelled"]) > 0).astype(np.int64))
    return f1.reshape(8, 8), covered.reshape(8, 8)
