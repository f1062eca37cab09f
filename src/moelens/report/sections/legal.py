"""Legal-move rate: does a chess model's greedy next move exist on the board?

Reads ``legal_moves.csv`` (one row per model: ``model``, ``legal_move_rate``, ``n_prompts``),
which ``moelens quickstart`` writes in its ``legal`` stage; the rate fills the comparison
table's column (MoE-X's Table 1 reports it only for its language-free chess models, so there is
no paper number beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.report.html import Section, Table, paragraph
from moelens.report.results import Shared

ID, TITLE = "legal", "Legal-move rate"


def detect(path: Path, files: set[str]) -> bool:  # noqa: ARG001
    return "legal_moves.csv" in files


def read(dirs: list[Path], shared: Shared) -> list[tuple[Path, list[dict[str, Any]]]]:
    import pandas as pd

    out = []
    for d in dirs:
        try:
            rows = pd.read_csv(d / "legal_moves.csv").to_dict("records")
        except (OSError, ValueError):
            continue
        rows = [r for r in rows if "model" in r and "legal_move_rate" in r]
        for r in rows:
            shared.model(str(r["model"])).update(legal_move_rate=float(r["legal_move_rate"]))
        out.append((d, rows))
    return out


def render(data: list[tuple[Path, list[dict[str, Any]]]], shared: Shared) -> Section:
    if not any(rows for _, rows in data):
        return Section(ID, TITLE, not_run="no legal-move rates here")
    body = [paragraph(
        "Each model continues held-out game prefixes greedily, one character at a time, until "
        "the end of a move; the move counts when it is legal on the board at that point. A "
        "model that tracks the board plays by the rules (Karvonen 2024: 99.8% for a "
        "well-trained 8-layer model).", "note")]
    for d, rows in data:
        body.append(Table(f"legal-{len(body)}", ["model", "legal-move rate", "prompts"],
                          [[str(r["model"]), r["legal_move_rate"], r.get("n_prompts")]
                           for r in rows],
                          caption=f"From {shared.rel(d)}.").render())
    return Section(ID, TITLE, body="".join(body))
