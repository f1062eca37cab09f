"""``moelens causal knowledge`` as a library call: rank experts per domain, ablate the top n,
compare with random experts; one part per target domain, so a killed run resumes."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.analysis.causal import common, figures, knowledge
from moelens.analysis.causal.sweep import sweep
from moelens.errors import ConfigError


@dataclass
class KnowledgeResult:
    path: Path
    skipped: bool = False
    summary: list[dict[str, Any]] | None = None


def run(cfg: Any) -> KnowledgeResult:
    from moelens.rundir import Stage, atomic_write_json

    stage = Stage(Path(cfg.out))
    if stage.done and not cfg.overwrite:
        common.check_done(stage.path, cfg, "causal knowledge")
        return KnowledgeResult(stage.path, skipped=True)
    model, tok, adapter = common.load(cfg.model, cfg.model_dtype, cfg.threads)
    cells = common.choose_cells(adapter, cfg.layers, ["all"])
    windows = common.windows_of(cfg, tok)
    if len(windows.domains) < 2:
        raise ConfigError(f"knowledge control needs at least two domains; the corpus has "
                          f"{windows.domains}: label documents by file name or a 'domain' field")
    targets = list(cfg.domains) or list(windows.domains)
    unknown = [d for d in targets if d not in windows.domains]
    if unknown:
        raise ConfigError(f"unknown domain(s) {unknown}; the corpus has {', '.join(windows.domains)}")
    if max(cfg.ns) > len(cells):
        raise ConfigError(f"--ns goes up to {max(cfg.ns)} but the chosen layers have {len(cells)} experts")
    stage.begin(cfg, overwrite=cfg.overwrite, seed=cfg.seed)
    parts = stage.path / "parts" / common.settings_key(cfg)
    layers = sorted({c.layer for c in cells})
    steps = len(targets) * len(cfg.ns) * (1 + cfg.controls) + 1
    with common.progress(steps, "knowledge", cfg.quiet) as bar:
        rankings = _rankings(cfg, model, adapter, windows, cells, layers, parts, bar)
        base = knowledge.domain_losses(model, adapter, windows, [], cfg.ablation)
        bar.update(1)
        rows = []
        for target in targets:
            part = parts / f"{target}.json"
            if not part.exists():
                d = windows.domains.index(target)
                got = knowledge.curve(model, adapter, windows, rankings[d], target, cfg.ns, cfg.controls,
                                      cfg.seed + d, cfg.ablation, base=base, tick=lambda: bar.update(1))
                atomic_write_json(part, got)
            else:
                bar.update(len(cfg.ns) * (1 + cfg.controls))
            rows += json.loads(part.read_text())
    common.write_csv(rows, stage.path / "knowledge.csv")
    summary = knowledge.summarise(rows)
    atomic_write_json(stage.path / "summary.json", {"rank": cfg.rank, "ablation": cfg.ablation,
                                                    "domains": windows.domains, "curves": summary})
    if cfg.figures:
        for target in targets:
            figures.knowledge_curve(rows, target, stage.path / "figures" / f"knowledge_{target}.png")
    shutil.rmtree(stage.path / "parts", ignore_errors=True)
    stage.finish({"rows": len(rows)})
    return KnowledgeResult(stage.path, summary=summary)


def _rankings(cfg: Any, model: Any, adapter: Any, windows: Any, cells: list, layers: list[int],
              parts: Path, bar: Any) -> list[list]:
    """Per domain index: cells most specific to it first (by routing, or by an ablation sweep)."""
    from moelens.rundir import atomic_write_json

    n = len(windows.domains)
    if cfg.rank == "routing":
        shares = knowledge.routing_shares(model, adapter, windows, layers)
        return [knowledge.rank_by_routing(shares, d) for d in range(n)]
    path = parts / "sweep.json"
    if path.exists():
        rows = json.loads(path.read_text())
    else:
        rows = sweep(model, adapter, windows, cells, ablation=cfg.ablation, group_size=cfg.group_size)
        atomic_write_json(path, rows)
    return [knowledge.rank_by_attribution(rows, windows.domains, d) for d in range(n)]
