"""``moelens causal ablate`` as a library call: a resumable, rank-splittable ablation sweep.

The cells' groups (:func:`~moelens.analysis.causal.sweep.groups`) are dealt out to the
``torchrun`` processes (group i to rank i mod world size); each finished group is saved as a part
under ``parts/<settings hash>/`` so a killed run resumes where it stopped, and rank 0 assembles the
table once every part is there. A group's rows do not depend on the other cells or the number of
processes, so one process and several give the same table.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.analysis.causal import common, figures
from moelens.analysis.causal.means import mean_outputs
from moelens.analysis.causal.sweep import Cell, groups, sweep


@dataclass
class AblateResult:
    path: Path
    skipped: bool = False
    rank: int = 0
    rows: list[dict[str, Any]] | None = None
    summary: dict[str, Any] | None = None


def _part_name(group: list[Cell]) -> str:
    return f"L{group[0].layer}_E{group[0].expert}.json"


def ablate(cfg: Any) -> AblateResult:
    """Run (or resume) the sweep of ``cfg`` into the stage ``cfg.out``."""
    from moelens.rundir import Stage

    placement = cfg.placement()  # bad placement flags and concept names fail before anything else
    concepts = common.concepts_of(cfg.concepts, cfg.concept_variant)
    with common.process_group() as ranks:
        stage = Stage(Path(cfg.out))
        if stage.done and not cfg.overwrite:
            common.check_done(stage.path, cfg, "causal ablate")
            return AblateResult(stage.path, skipped=True, rank=ranks.rank)
        with common.loaded(cfg, placement, say=ranks.rank == 0) as (model, tok, adapter):
            return _ablate(cfg, placement, ranks, stage, model, tok, adapter, concepts)


def _ablate(cfg: Any, placement: Any, ranks: Any, stage: Any, model: Any, tok: Any, adapter: Any,
            concepts: list[Any]) -> AblateResult:
    from moelens.rundir import atomic_write_json

    cells = common.choose_cells(adapter, cfg.layers, cfg.experts)
    windows = common.windows_of(cfg, tok, concepts)
    if ranks.rank == 0:
        _warn_empty(windows)
        stage.begin(cfg, overwrite=cfg.overwrite)
    ranks.barrier()
    parts = stage.path / "parts" / common.settings_key(cfg, placement)
    all_groups = groups(cells, cfg.group_size)
    mine = [g for i, g in enumerate(all_groups) if i % ranks.world == ranks.rank
            and not (parts / _part_name(g)).exists()]
    if mine:
        _run(cfg, model, adapter, windows, mine, parts, ranks.rank)
    ranks.barrier()
    if ranks.rank != 0:
        return AblateResult(stage.path, rank=ranks.rank)
    rows = [r for g in all_groups for r in json.loads((parts / _part_name(g)).read_text())]
    common.write_csv(rows, stage.path / "ablate.csv")
    summary = _summary(cfg, rows, windows)
    atomic_write_json(stage.path / "summary.json", summary)
    if cfg.figures:
        every_token = [r for r in rows if r["concept"] == "all"]
        figures.ablation_heatmap(every_token, stage.path / "figures" / "ablation_heatmap.png")
    shutil.rmtree(stage.path / "parts", ignore_errors=True)
    stage.finish({"rows": len(rows)})
    return AblateResult(stage.path, rows=rows, summary=summary)


def _run(cfg: Any, model: Any, adapter: Any, windows: Any, mine: list[list[Cell]], parts: Path, rank: int) -> None:
    from moelens.rundir import atomic_write_json

    layers = sorted({g[0].layer for g in mine})
    total = len(windows.batches) * (len(mine) + (len(layers) if cfg.ablation == "mean" else 0))
    with common.progress(total, f"ablate (rank {rank})" if rank else "ablate", cfg.quiet) as bar:
        means = None
        if cfg.ablation == "mean":  # every MoE layer hooked alike on every rank: the same means
            got = mean_outputs(model, adapter, windows.batches, adapter.moe_layers(),
                               tick=lambda: bar.update(len(layers)))
            means = {l: v[0] for l, v in got.items()}
        for layer in layers:  # one layer at a time: a killed run loses at most one layer's groups
            todo = [g for g in mine if g[0].layer == layer]
            rows = sweep(model, adapter, windows, [c for g in todo for c in g], ablation=cfg.ablation,
                         group_size=cfg.group_size, means=means, tail_tokens=cfg.tail_tokens,
                         tick=lambda: bar.update(1))
            for g in todo:
                keep = {(c.layer, c.expert) for c in g}
                atomic_write_json(parts / _part_name(g), [r for r in rows if (r["layer"], r["expert"]) in keep])


def _warn_empty(windows: Any) -> None:
    """A concept no scored token of the corpus carries gets only untested rows. That is a warning,
    not an error: with a group or 'all' some concepts are absent from any one corpus, and the
    rows say so truthfully (untested, NaN), so the other concepts' sweep is not refused for it;
    it comes before the sweep, so a mistyped pattern can still be stopped at once."""
    import sys

    empty = [name for name, n in zip(windows.concepts, windows.concept_tokens()) if n == 0]
    if empty:
        print(f"warning: {len(empty)} concept(s) label no scored token of this corpus ({', '.join(empty[:8])}"
              f"{', ...' if len(empty) > 8 else ''}): their rows will be untested; check the names or "
              "give a corpus that has them", file=sys.stderr, flush=True)


def _summary(cfg: Any, rows: list[dict[str, Any]], windows: Any) -> dict[str, Any]:
    overall = [r for r in rows if r["domain"] == "all" and r["concept"] == "all"]
    tested = [r for r in overall if r["status"] == "tested"]
    top = sorted(tested, key=lambda r: -r["delta_loss"])[:10]
    return {"model": cfg.model, "ablation": cfg.ablation, "cells": len(overall), "tested": len(tested),
            "untested": len(overall) - len(tested), "tokens": int(overall[0]["tokens"]) if overall else 0,
            "domains": windows.domains,
            "concepts": dict(zip(windows.concepts, windows.concept_tokens())),
            "top": [{k: r[k] for k in ("layer", "expert", "delta_loss", "kl", "tokens_routed")} for r in top]}
