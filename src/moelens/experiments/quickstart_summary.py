"""What ``moelens quickstart`` says at the end: the headline table (one row per model), the
notes on what a longer run would change, and ``summary.json`` holding both beside the stages'
wall times.

The headline numbers are the report's comparison rows (:func:`moelens.report.sections.
comparison.rows`), read from the results the stages wrote, so the table printed, the summary
and the report always agree.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from moelens.rundir import atomic_write_json

HEADLINE = [
    ("model", "model", 12, None), ("val_loss", "val loss", 8, 3),
    ("legal_move_rate", "legal", 6, 3), ("coverage", "cover", 6, 3),
    ("reconstruction", "recon", 6, 3), ("probe_k1", "F1 k=1", 7, 3),
    ("probe_k1_paper", "(paper)", 7, 3), ("probe_k64", "F1 k=64", 7, 3),
    ("probe_k64_paper", "(paper)", 7, 3),
    ("probe_routed_k1", "routed", 7, 3), ("interp_score", "interp", 6, 3),
]
"""(key, heading, width, digits) of the printed table's columns."""

LEGEND = ("val loss: nats/char on held-out games; legal: legal-move rate; cover / recon: "
          "board-state coverage and reconstruction (middle layer); F1 k=1, k=64: mean probe "
          "F1 over the chess concepts, validation-selected unit scored on test, (paper): the "
          "paper's best-unit protocol (best test F1 over units), biased upward; routed: dense "
          "units probed on each expert's own tokens; interp: mean over the experts of their "
          "auto-interpretation score (the rules explainer's labels; detection balanced "
          "accuracy, 0.5 = chance, unless the summary names another); '-': not computed")


def settings(cfg: Any) -> dict[str, Any]:
    """The few settings a reader of the report needs to know the scale of the run."""
    g, m, t = cfg.games, cfg.model, cfg.train
    return {"games": g.n_games, "held-out fraction": g.val_fraction, "player": g.player,
            "models": ", ".join(m.models),
            "model size": f"{m.n_layer} layers, d={m.n_embd}, {m.num_experts} experts of "
                          f"width {m.expert_width}, top-{m.top_k}; dense width "
                          f"{m.top_k * m.expert_width}",
            "training": f"{t.max_iters} steps x {t.batch_size} x {t.ctx} characters",
            "captured characters per model": cfg.capture.tokens, "seed": cfg.seed}


def extra(cfg: Any) -> dict[str, Any]:
    """Written into ``summary.json`` from the first stage on (the report shows it)."""
    from moelens.experiments.quickstart_notes import notes

    return {"settings": settings(cfg), "notes": notes(cfg, [])}


def finish(cfg: Any, root: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Add the headline rows and the notes they support to ``summary.json``, then write the
    report (every run: it is cheap and must show what a rerun added) and add its time and path;
    returns the new summary."""
    from moelens.experiments.quickstart_notes import notes
    from moelens.experiments.quickstart_stages import write_report
    from moelens.report.build import collect
    from moelens.report.sections import comparison

    root = Path(root)
    summary = dict(summary)
    summary["headline"] = comparison.rows(collect(root)[0])
    summary["notes"] = notes(cfg, summary["headline"])
    atomic_write_json(root / "summary.json", summary)
    head = "[report] write the HTML report"
    if not cfg.quiet:
        print(f"{head} ...", flush=True)
    start = time.perf_counter()
    done = write_report(cfg, root)
    seconds = time.perf_counter() - start
    if not cfg.quiet:
        print(f"{head} ... done in {seconds:.1f} s", flush=True)
    summary["stages"] = {**summary.get("stages", {}),
                         "report": {"wall_seconds": seconds,
                                    "summary": {"sections": done.sections}}}
    summary["total_wall_seconds"] = sum(s["wall_seconds"] for s in summary["stages"].values())
    summary["report"] = str(done.path)
    atomic_write_json(root / "summary.json", summary)
    return summary


def _cell(value: Any, width: int, digits: int | None) -> str:
    if value is None:
        text = "-"
    elif digits is not None and isinstance(value, (int, float)):
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return text[:width].rjust(width) if digits is not None else text[:width].ljust(width)


def headline_lines(summary: dict[str, Any], root: Path) -> list[str]:
    """The table printed at the end, its legend, the notes, the total time and the report's
    path."""
    rows = summary.get("headline") or []
    lines = ["quickstart: " + " ".join(h.ljust(w) if d is None else h.rjust(w)
                                         for _, h, w, d in HEADLINE)]
    for r in rows:
        lines.append("quickstart: " + " ".join(_cell(r.get(k), w, d) for k, _, w, d in HEADLINE))
    lines.append(f"quickstart: {LEGEND}")
    lines += [f"quickstart: {note}" for note in summary.get("notes") or []]
    lines.append(f"quickstart: {len(summary.get('stages', {}))} stages, "
                 f"{summary.get('total_wall_seconds', 0.0):.0f} s of computation; "
                 f"summary in {Path(root) / 'summary.json'}")
    lines.append(f"quickstart: report: {summary.get('report')}")
    return lines
