"""Auto-interpretation (``moelens interpret``): each unit's label and scores, the score
distributions against their baselines, and detection per activation decile (MoE-X's Fig. 8).

Reads ``summary.json`` (per scorer and metric: mean over units, 95% interval, the all-yes or
chance baseline; per-decile rates), ``units/<unit>.json`` (the explanation, the windows it was
made from, the promoted tokens, per-scorer metrics) and ``figures/``. Expert-level units become
expert cards: the label, the scores, the strongest activating windows and a histogram of the
activations in the windows. The model is named after the store the run read (its folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moelens.report import figures
from moelens.report.html import Figure, Link, Section, Table, esc, paragraph
from moelens.report.results import Shared, read_json

ID, TITLE = "autointerp", "Auto-interpretation"
HEADLINE_METRICS = [("detection", "balanced_accuracy"), ("binary", "f1"), ("fuzzing",
                    "balanced_accuracy"), ("detection", "f1")]
"""The per-model score of the comparison table: the first of these the run has."""
CARD_METRICS = [("detection", "balanced_accuracy"), ("detection", "f1"),
                ("fuzzing", "balanced_accuracy"), ("binary", "f1"), ("embedding", "auroc"),
                ("simulation", "pearson")]
WINDOWS_ON_CARD = 4


def detect(path: Path, files: set[str]) -> bool:
    if "summary.json" not in files or not (path / "units").is_dir():
        return False
    return "table" in (read_json(path / "summary.json") or {})


@dataclass
class Run:
    path: Path
    model: str
    summary: dict[str, Any]
    units: list[dict[str, Any]] = field(default_factory=list)


def _model(path: Path) -> str:
    cfg = (read_json(path / "config.json") or {}).get("config") or {}
    store = cfg.get("store")
    return Path(str(store)).name if store else path.name


def _units(path: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted((path / "units").glob("*.json")):
        try:
            out.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def _metric(rec: dict[str, Any], scorer: str, metric: str) -> float | None:
    v = ((rec.get("scores") or {}).get(scorer) or {}).get("metrics", {}).get(metric)
    return float(v) if isinstance(v, (int, float)) else None


def _label(rec: dict[str, Any]) -> str | None:
    expl = rec.get("explanation") or {}
    if expl.get("text"):
        return str(expl["text"])
    if expl.get("failure"):
        return f"(no explanation: {expl['failure']})"
    if rec.get("status") not in (None, "ok"):
        return f"({rec['status']})"
    return None


def _card(shared: Shared, model: str, rec: dict[str, Any]) -> None:
    unit = rec.get("unit") or {}
    if int(unit.get("expert", -1)) < 0 or int(unit.get("index", -1)) >= 0:
        return  # only whole experts get cards; neurons are listed in the table
    e = shared.expert(model, int(unit["layer"]), int(unit["expert"]))
    e.label = _label(rec)
    e.label_source = f"{rec.get('explainer', '?')} explainer, {rec.get('judge', '?')} judge"
    for scorer, metric in CARD_METRICS:
        v = _metric(rec, scorer, metric)
        if v is not None:
            e.scores[f"{scorer} {metric.replace('_', ' ')}"] = v
    examples = rec.get("examples") or {}
    windows = [w for w in examples.get("explain") or [] if w.get("kind") == "activating"]
    windows.sort(key=lambda w: -max(w.get("acts") or [0.0]))
    e.windows = [{"tokens": w.get("tokens") or [], "acts": w.get("acts") or []}
                 for w in windows[:WINDOWS_ON_CARD]]
    acts = [a for w in windows + list(examples.get("test") or []) for a in (w.get("acts") or [])
            if isinstance(a, (int, float)) and a > 0]
    if acts:
        counts, edges = np.histogram(np.asarray(acts, dtype=np.float64), bins=20)
        e.histogram = {"counts": counts.tolist(), "edges": edges.tolist()}
    if rec.get("promoted"):
        e.promoted = [str(t) for t in rec["promoted"]]
    if examples.get("n_activating") is not None:
        e.facts["activating windows"] = examples["n_activating"]


def _means(run: Run) -> dict[tuple[str, str], float]:
    """(scorer, metric) -> mean over units, for the metrics some unit of the run has."""
    return {(r.get("scorer"), r.get("metric")): float(r["mean"])
            for r in run.summary.get("table") or []
            if r.get("mean") is not None and r.get("units")}


def read(dirs: list[Path], shared: Shared) -> list[Run]:
    runs = []
    for d in dirs:
        run = Run(d, _model(d), read_json(d / "summary.json") or {}, _units(d))
        runs.append(run)
        for rec in run.units:
            _card(shared, run.model, rec)
    # one metric for every model, so that the comparison's column compares like with like: the
    # first headline metric all runs have, else each run's first
    means = [_means(r) for r in runs]
    common = next((k for k in HEADLINE_METRICS if all(k in m for m in means)), None)
    for run, m in zip(runs, means):
        key = common or next((k for k in HEADLINE_METRICS if k in m), None)
        if key is not None:
            shared.model(run.model).update(interp_score=m[key],
                                           interp_metric=f"{key[0]} {key[1].replace('_', ' ')}")
    return runs


def _score_distributions(runs: list[Run]) -> str:
    """Histogram of the per-unit headline score of each model (one panel per scorer/metric)."""
    for scorer, metric in HEADLINE_METRICS:
        series = {r.model: [v for rec in r.units if (v := _metric(rec, scorer, metric)) is not None]
                  for r in runs}
        series = {k: v for k, v in series.items() if v}
        if series:
            uri = figures.histograms(series, f"{scorer} {metric.replace('_', ' ')} per unit",
                                     "units")
            return Figure(uri, f"Distribution over units of the {scorer} "
                               f"{metric.replace('_', ' ')}, per model").render()
    return ""


def render(runs: list[Run], shared: Shared) -> Section:
    if not runs:
        return Section(ID, TITLE, not_run="no auto-interpretation results here (moelens "
                                          "interpret)")
    body = [paragraph(
        "Each unit is explained from its activating windows and the explanation is scored on "
        "held-out windows: detection (does the explanation tell activating from non-activating "
        "windows), fuzzing (are the highlighted tokens the right ones), binary (the expert-level "
        "paper's protocol). Each mean has its 95% interval and the baseline of answering 'yes' "
        "everywhere (or chance) beside it.", "note")]
    dist = _score_distributions(runs)
    if dist:
        body.append(dist)
    for run in runs:
        status = ", ".join(f"{n} {k}" for k, n in (run.summary.get("status") or {}).items())
        body.append(f"<h3>{esc(run.model)} ({esc(shared.rel(run.path))})</h3>")
        body.append(paragraph(f"{run.summary.get('units', len(run.units))} units: {status}; "
                              f"{run.summary.get('explanation_failures', 0)} explanations "
                              "failed."))
        rows = [[r.get("scorer"), r.get("metric"), r.get("units"), r.get("mean"),
                 r.get("ci_low"), r.get("ci_high"), r.get("baseline"), r.get("baseline_kind"),
                 r.get("failures")] for r in run.summary.get("table") or []]
        body.append(Table(f"interp-summary-{len(body)}", [
            "scorer", "metric", "units", "mean", "95% low", "95% high", "baseline",
            "baseline kind", "failed judgements"], rows, page_size=30).render())
        for f in figures.figures_in(run.path / "figures"):
            f.caption = "Detection per activation decile and on non-activating windows " \
                        "(pooled over units, 95% Wilson intervals)" if "decile" in f.caption \
                else f.caption
            body.append(f.render())
        unit_rows = []
        for rec in run.units:
            u = rec.get("unit") or {}
            name = str(u.get("name", "?"))
            if int(u.get("expert", -1)) >= 0 and int(u.get("index", -1)) < 0:
                name = Link(name, shared.expert_href(run.model, int(u["layer"]), int(u["expert"])))
            unit_rows.append([name, _label(rec), _metric(rec, "detection", "balanced_accuracy"),
                              _metric(rec, "fuzzing", "balanced_accuracy"),
                              _metric(rec, "binary", "f1"), rec.get("status")])
        body.append(Table(f"interp-units-{len(body)}", [
            "unit", "explanation", "detection balanced accuracy", "fuzzing balanced accuracy",
            "binary F1", "status"], unit_rows, page_size=25).render())
    return Section(ID, TITLE, body="".join(body))
