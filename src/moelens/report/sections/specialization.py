"""Specialization and routing (``moelens specialize``): load, router entropy, co-activation,
routing pathways, vocabulary specialization, and each expert's input and output specialization
(null-corrected JSD over clusters of the unembedding).

Reads ``routing_layers.csv`` (one row per layer), ``routing_experts.csv`` (one per expert),
``specialization.csv`` (per layer, expert, view and K), ``summary.json`` and ``figures/``. Each
expert card gets its load on the captured tokens (replacing the training-batch load) and its
specialization scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.report import figures
from moelens.report.html import Link, Section, Table, esc, paragraph
from moelens.report.results import Shared, model_name, read_json

ID, TITLE = "specialization", "Specialization and routing"
CAPTIONS = {"load": "Load per expert and layer (share of routed slots)",
            "pathways": "Routing pathways: expert-to-expert transitions between layers",
            "specialization_vs_layer": "Input and output specialization against layer, per K",
            "coactivation": "Expert co-activation (tokens routed to both)"}


def detect(path: Path, files: set[str]) -> bool:
    return "routing_layers.csv" in files and "summary.json" in files


@dataclass
class Run:
    path: Path
    model: str
    summary: dict[str, Any]
    layers: Any
    experts: Any
    spec: Any = None
    figures: list = field(default_factory=list)


def _csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path) if path.exists() else None
    except (OSError, ValueError):
        return None


def _spec_columns(spec) -> list[tuple[str, int]]:
    if spec is None or spec.empty:
        return []
    return sorted({(str(v), int(k)) for v, k in zip(spec["view"], spec["k"])})


def read(dirs: list[Path], shared: Shared) -> list[Run]:
    runs = []
    for d in dirs:
        summ = read_json(d / "summary.json") or {}
        name = model_name(summ.get("model"), "") or model_name(summ.get("store"), d.name)
        run = Run(d, name, summ, _csv(d / "routing_layers.csv"), _csv(d / "routing_experts.csv"),
                  _csv(d / "specialization.csv"))
        runs.append(run)
        if run.experts is not None:
            for _, r in run.experts.iterrows():
                card = shared.expert(name, int(r["layer"]), int(r["expert"]))
                card.load = float(r["load"])
                card.facts["load measured on"] = "the captured tokens"
                if bool(r.get("dead")) or bool(r.get("always_on")):
                    card.facts["routing"] = "dead" if bool(r.get("dead")) else "always on"
        if run.spec is not None and not run.spec.empty:
            for _, r in run.spec.iterrows():
                value = r.get("specialization")
                if r.get("status") == "tested" and value == value:  # NaN: not tested
                    card = shared.expert(name, int(r["layer"]), int(r["expert"]))
                    card.scores[f"{r['view']} specialization K={int(r['k'])}"] = \
                        float(r["specialization"])
    return runs


def render(runs: list[Run], shared: Shared) -> Section:
    if not runs:
        return Section(ID, TITLE, not_run="no specialization or routing statistics here "
                                          "(moelens specialize)")
    body = [paragraph(
        "Specialization: the Jensen-Shannon divergence (bits) between the distribution of an "
        "expert's tokens over clusters of the unembedding and its layer's, minus the same "
        "divergence for random draws of the same size, so that 0 means no more specialised "
        "than chance; input = the tokens routed to the expert, output = the tokens its output "
        "promotes. Vocabulary specialization: the share of a token id's occurrences routed to "
        "its most frequent expert.", "note")]
    for run in runs:
        body.append(f"<h3>{esc(run.model)} ({esc(shared.rel(run.path))})</h3>")
        means = run.summary.get("mean_specialization") or {}
        if means:
            body.append(paragraph("Mean specialization: " + ", ".join(
                f"{k.replace('_', ' ')} {v:.3f}" for k, v in means.items() if v is not None)))
        if run.layers is not None:
            cols = [c for c in run.layers.columns]
            body.append(Table(f"spec-layers-{len(body)}", [c.replace("_", " ") for c in cols],
                              run.layers.values.tolist(), page_size=30).render())
        if run.experts is not None:
            views = _spec_columns(run.spec)
            spec = {}
            if views:
                for _, r in run.spec.iterrows():
                    spec[(int(r["layer"]), int(r["expert"]), str(r["view"]), int(r["k"]))] = \
                        r["specialization"] if r.get("status") == "tested" else None
            rows = []
            for _, r in run.experts.iterrows():
                l, e = int(r["layer"]), int(r["expert"])
                rows.append([Link(f"layer {l} expert {e}", shared.expert_href(run.model, l, e)),
                             int(r["routed_tokens"]), float(r["load"]), float(r["token_share"]),
                             str(bool(r["dead"])).lower(), str(bool(r["always_on"])).lower()]
                            + [spec.get((l, e, v, k)) for v, k in views])
            body.append(Table(f"spec-experts-{len(body)}", [
                "expert", "routed tokens", "load", "token share", "dead", "always on"]
                + [f"{v} specialization K={k}" for v, k in views], rows, page_size=24).render())
        for f in figures.figures_in(run.path / "figures"):
            stem = f.caption.replace(" ", "_")
            key = next((k for k in CAPTIONS if stem.startswith(k)), None)
            if key:
                f.caption = CAPTIONS[key] + (f", {stem[len(key) + 1:]}" if stem != key else "")
            body.append(f.render())
    return Section(ID, TITLE, body="".join(body))
