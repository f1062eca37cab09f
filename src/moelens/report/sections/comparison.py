"""The model comparison table, laid out like MoE-X's Table 1, with the paper's numbers beside
ours. Built from what the other sections found per model (``Shared.models``), so it needs no
files of its own; :func:`rows` is also what ``moelens quickstart`` prints at the end.
"""

from __future__ import annotations

from typing import Any

from moelens.report import figures, paper
from moelens.report.html import Figure, Section, Table, paragraph
from moelens.report.results import Shared

ID, TITLE = "comparison", "Model comparison"

TABLE1 = [
    ("model", "model"), ("paper_row", "paper's row"),
    ("val_loss", "val loss"), ("paper_val_loss", "paper"),
    ("coverage", "coverage"), ("chance_coverage", "chance"), ("paper_coverage", "paper"),
    ("reconstruction", "reconstruction"), ("chance_reconstruction", "chance"),
    ("paper_reconstruction", "paper"),
    ("legal_move_rate", "legal-move rate"),
]
"""(key, heading) of the columns in the layout of MoE-X's Table 1."""

UNITS = [
    ("model", "model"),
    ("probe_k1", "probe F1 k=1 (val-selected)"), ("probe_k1_paper", "k=1 (paper protocol)"),
    ("probe_k64", "k=64 (val-selected)"), ("probe_k64_paper", "k=64 (paper protocol)"),
    ("probe_routed_k1", "routed-token dense control k=1"),
    ("interp_score", "mean auto-interp score"),
]
"""(key, heading) of the unit-level columns: probing and auto-interpretation."""

COLUMNS = TABLE1 + UNITS[1:]
"""(key, heading) of each column, in order."""


def detect(path, files) -> bool:  # noqa: ARG001 (the table has no files of its own)
    return False


def read(dirs, shared: Shared) -> None:  # noqa: ARG001
    return None


def rows(shared: Shared) -> list[dict[str, Any]]:
    """One dict per model (keys of :data:`COLUMNS`), trained models first in name order."""
    out = []
    for name in sorted(shared.models, key=lambda n: (shared.models[n].get("val_loss") is None, n)):
        m = shared.models[name]
        p_loss, p_cov, p_rec = paper.paper_numbers(m.get("paper_row"))
        row = {key: m.get(key) for key, _ in COLUMNS}
        row.update(model=name, paper_val_loss=p_loss, paper_coverage=p_cov,
                   paper_reconstruction=p_rec, interp_metric=m.get("interp_metric"))
        out.append(row)
    return out


def render(_data: None, shared: Shared) -> Section:
    table_rows = rows(shared)
    if not table_rows:
        return Section(ID, TITLE, not_run="no model results here")
    body = [paragraph(
        "Ours beside MoE-X's Table 1 (Yang et al. 2025: 8 layers, d=512, up to 600k steps on "
        "16M games; its MoE-X is upcycled from the dense model, so a MoE-X trained from scratch "
        "is set beside the paper's from-scratch row of Table 4, and the ablations beside Table "
        "3). Our models are far smaller and trained for minutes: compare the ordering of the "
        "models, not the values. Coverage and reconstruction are the board-state metrics of "
        "piece_masked_blank_and_initial; probe F1 is the mean over the chess concepts every "
        "model has.", "note"),
        Table("comparison-table", [h for _, h in TABLE1],
              [[r[key] for key, _ in TABLE1] for r in table_rows], page_size=40,
              caption="Validation loss in nats per character. 'chance': what units that fire "
                      "without regard to the board score (each cell's base rate); 'paper': the "
                      "matching row of the MoE-X paper; '–' where a result was not computed "
                      "for that model.").render(),
        Table("comparison-units", [h for _, h in UNITS],
              [[r[key] for key, _ in UNITS] for r in table_rows], page_size=40,
              caption="Mean F1 of k-sparse probes on the chess concepts (validation-selected "
                      "unit, scored on test; the paper protocol's best unit beside it), the "
                      "dense units probed on each expert's own tokens, and the mean over a "
                      "model's experts of its auto-interpretation labels' score ("
                      + (", ".join(sorted({r["interp_metric"] for r in table_rows
                                           if r.get("interp_metric")})) or "none")
                      + "; 0.5 is chance for a balanced accuracy).").render()]
    have = [r for r in table_rows if r.get("coverage") is not None and r.get("paper_row")]
    if have:
        groups = [r["model"] for r in have]
        uri = figures.grouped_bars(groups, {
            "coverage (ours)": [r["coverage"] for r in have],
            "coverage (paper)": [r["paper_coverage"] for r in have],
            "reconstruction (ours)": [r["reconstruction"] for r in have],
            "reconstruction (paper)": [r["paper_reconstruction"] for r in have]},
            "score", "Board-state metrics: ours and the paper's matching model")
        body.append(Figure(uri, "Coverage and reconstruction, ours beside the paper's").render())
    return Section(ID, TITLE, body="".join(body))
