"""Board-state metrics (``moelens boardgame``): coverage and board reconstruction of each model's
units, with their chance levels, the residual board probe, and the board diagrams.

Reads ``boardgame.csv`` (one row per model, layer, space, semantics and BSP function),
``probe.csv`` (the linear board probe per model and layer), ``summary.json`` (positions used)
and ``figures/``. The comparison table takes the headline function
(``piece_masked_blank_and_initial``) at each model's middle layer (the middle of the layers
scored, as the chess experiment does) for its main units: expert neurons in MoE-X's gated wide
view for an MoE, MLP neurons for a dense model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.report import figures
from moelens.report.html import Section, Table, paragraph
from moelens.report.results import Shared, read_json

ID, TITLE = "boardgame", "Board-state metrics"
HEADLINE = "piece_masked_blank_and_initial"
MAIN_UNITS = (("expert", "gated"), ("ffn", ""))
"""(space, semantics) of a model's main units, in order of preference."""
CAPTIONS = {"board": "Which squares the labelled units cover (headline function)",
            "functions": "Coverage and reconstruction per BSP function, models side by side"}


def detect(path: Path, files: set[str]) -> bool:
    return "boardgame.csv" in files and "summary.json" in files


@dataclass
class Boardgame:
    runs: list[tuple[Path, Any, Any, dict[str, Any]]] = field(default_factory=list)
    """(directory, boardgame.csv frame, probe.csv frame or None, summary)"""


def _csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError):
        return None


def headline_row(df, model: str) -> dict[str, Any] | None:
    """The model's headline function row at its middle layer, main units first."""
    d = df[(df["model"] == model) & (df["function"] == HEADLINE)]
    if d.empty:
        return None
    layers = sorted(int(l) for l in d["layer"].unique())
    d = d[d["layer"] == layers[len(layers) // 2]]
    sem = d["semantics"].fillna("").astype(str)
    for space, semantics in MAIN_UNITS:
        hit = d[(d["space"] == space) & (sem == semantics)]
        if not hit.empty:
            return hit.iloc[0].to_dict()
    return d.iloc[0].to_dict()


def read(dirs: list[Path], shared: Shared) -> Boardgame:
    out = Boardgame()
    for d in dirs:
        df = _csv(d / "boardgame.csv")
        if df is None or df.empty:
            continue
        probe = _csv(d / "probe.csv") if (d / "probe.csv").exists() else None
        out.runs.append((d, df, probe, read_json(d / "summary.json") or {}))
        for model in sorted(df["model"].astype(str).unique()):
            row = headline_row(df, model)
            if row is None:
                continue
            shared.model(model).update(
                coverage=row.get("coverage"), reconstruction=row.get("reconstruction"),
                chance_coverage=row.get("chance_coverage"),
                chance_reconstruction=row.get("chance_reconstruction"),
                board_units=f"layer {int(row['layer'])} {row['space']}"
                            + (f" ({row['semantics']})" if row.get("semantics") else ""))
    return out


def _fmt_sem(v: Any) -> str:
    return "" if v is None or v != v else str(v)


def render(data: Boardgame, shared: Shared) -> Section:
    if not data.runs:
        return Section(ID, TITLE, not_run="no board-state coverage or reconstruction results "
                                          "here (moelens boardgame)")
    body = [paragraph(
        "Coverage: for each cell of a board-state property function, the best F1 of any single "
        "unit firing above a threshold (relative to the unit's maximum), averaged over cells at "
        "the best shared threshold. Reconstruction: units labelled on the fitting games (precision "
        "at least 0.95 and at least 10 true positives; 'corrected' also requires the precision "
        "to beat the cell's base rate) predict the board of the test games. The chance level of "
        "each is beside it: a unit that fires on half the positions already scores the cell's "
        "base-rate F1.", "note")]
    for d, df, probe, summ in data.runs:
        head = df[df["function"] == HEADLINE]
        rows = [[r["model"], int(r["layer"]), r["space"], _fmt_sem(r.get("semantics")),
                 r["coverage"], r["chance_coverage"], r["reconstruction"],
                 r.get("reconstruction_paper"), r["chance_reconstruction"], int(r["n_alive"]),
                 int(r["n_labelled"])] for _, r in head.iterrows()]
        body.append(f"<h3>{HEADLINE} ({shared.rel(d)})</h3>")
        body.append(Table(f"boardgame-headline-{len(body)}", [
            "model", "layer", "space", "semantics", "coverage", "chance coverage",
            "reconstruction", "reconstruction (paper labelling)", "chance reconstruction",
            "alive units", "labelled units"],
            rows, page_size=30).render())
        positions = summ.get("positions") or {}
        if positions:
            p = next(iter(positions.values()))
            body.append(paragraph(f"Positions: {p.get('n_fit')} fitting ({p.get('n_games_fit')} "
                                  f"games), {p.get('n_test')} test ({p.get('n_games_test')} "
                                  "games) per model.", "note"))
        if probe is not None and not probe.empty:
            prow = [[r["model"], int(r["layer"]), r["accuracy"], r["majority_accuracy"],
                     r.get("accuracy_changed"), r.get("majority_accuracy_changed")]
                    for _, r in probe.iterrows()]
            body.append("<h3>Residual board probe</h3>")
            body.append(Table(f"boardgame-probe-{len(body)}", [
                "model", "layer", "accuracy", "majority guess", "accuracy on changed squares",
                "majority on changed squares"], prow,
                caption="A linear probe of the 8x8x13 board on the residual stream: the health "
                        "check that a model tracks the board at all.").render())
        for f in figures.figures_in(d / "figures"):
            kind, _, layer = f.caption.partition(" L")
            if kind in CAPTIONS:
                f.caption = CAPTIONS[kind] + (f", layer {layer}" if layer else "")
            body.append(f.render())
        every = [[r["model"], int(r["layer"]), r["space"], _fmt_sem(r.get("semantics")),
                  r["function"], r["coverage"], r["chance_coverage"], r["reconstruction"],
                  r["chance_reconstruction"]] for _, r in df.iterrows()]
        body.append("<h3>Every BSP function</h3>")
        body.append(Table(f"boardgame-all-{len(body)}", [
            "model", "layer", "space", "semantics", "function", "coverage", "chance coverage",
            "reconstruction", "chance reconstruction"], every, page_size=25).render())
    return Section(ID, TITLE, body="".join(body))
