"""Training runs (``moelens train``): validation loss, size, router statistics and loss curves.

Reads a run's ``summary.json`` (written when training finished), ``metrics.jsonl`` (one line per
logged step, with per-layer expert load, router entropy and L0 for MoE models) and the saved
model's ``config.json`` (which architecture it is, so the paper's matching row can be found).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.report import figures, paper
from moelens.report.html import Figure, Section, Table
from moelens.report.results import Shared, read_json

ID, TITLE = "training", "Training"


def detect(path: Path, files: set[str]) -> bool:
    if not {"summary.json", "DONE", "metrics.jsonl"} <= files:
        return False
    summ = read_json(path / "summary.json") or {}
    return "val_loss" in summ and "model" in summ


@dataclass
class Run:
    name: str
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        c = self.config
        if c.get("ffn") == "moe":
            return (f"MoE {c.get('expert_act')} experts, {c.get('router')} router, "
                    f"top-{c.get('top_k')} of {c.get('num_experts')} x {c.get('expert_width')}")
        if c.get("ffn") == "dense":
            return f"dense {c.get('ffn_act')} MLP, width {c.get('ffn_width')}"
        return str(c.get("model_type", "?"))

    def last_moe(self) -> dict[str, Any]:
        for rec in reversed(self.metrics):
            if rec.get("moe"):
                return rec["moe"]
        return {}


def _metrics(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        for line in (path / "metrics.jsonl").read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return out


def read(dirs: list[Path], shared: Shared) -> list[Run]:
    runs = []
    for d in dirs:
        summ = read_json(d / "summary.json") or {}
        name = d.name  # = model_name(<run>/model): what captures and analyses of it are called
        config = read_json(d / "model" / "config.json") \
            or read_json(Path(str(summ.get("model"))) / "config.json") or {}
        run = Run(name, d, summ, config, _metrics(d))
        runs.append(run)
        provenance = (read_json(d / "config.json") or {}).get("config") or {}
        row = paper.paper_row(config, initialised=bool(provenance.get("init_from")))
        m = shared.model(name)
        m.update(kind=run.kind, paper_row=row, val_loss=summ.get("val_loss"),
                 parameters=summ.get("parameters"), iters=summ.get("iters"),
                 tokens=summ.get("tokens"), moe=config.get("ffn") == "moe")
        for layer, stats in run.last_moe().items():
            for e, load in enumerate(stats.get("load") or []):
                card = shared.expert(name, int(layer), e)
                if card.load is None:
                    card.load = float(load)
                    card.facts.setdefault("load measured on", "training batches (last logged step)")
    return runs


def render(runs: list[Run], shared: Shared) -> Section:
    if not runs:
        return Section(ID, TITLE, not_run="no finished training run here (moelens train)")
    rows = []
    for r in runs:
        moe = r.last_moe()
        ent = [s.get("router_entropy") for s in moe.values() if s.get("router_entropy") is not None]
        l0 = [s.get("l0") for s in moe.values() if s.get("l0") is not None]
        rows.append([r.name, r.kind, r.summary.get("parameters"), r.summary.get("iters"),
                     r.summary.get("tokens"), r.summary.get("val_loss_start"),
                     r.summary.get("val_loss"),
                     sum(ent) / len(ent) if ent else None, sum(l0) / len(l0) if l0 else None])
    table = Table("training-runs", ["model", "architecture", "parameters", "steps", "tokens",
                                    "val loss at start", "val loss", "router entropy (nats)",
                                    "L0 (active units per token)"], rows,
                  caption="Validation loss in nats per character (cross-entropy). Router entropy "
                          "and L0 are the means over MoE layers at the last logged step.")
    curves = {}
    for r in runs:
        pts = [(m["tokens"], m["val_loss"]) for m in r.metrics if m.get("val_loss") is not None]
        if len(pts) >= 2:
            curves[r.name] = ([p[0] for p in pts], [p[1] for p in pts])
    body = table.render()
    if curves:
        body += Figure(figures.lines(curves, "training tokens", "validation loss (nats/char)",
                                     "Validation loss during training"),
                       "Validation loss against training tokens, per model").render()
    return Section(ID, TITLE, body=body)
