"""What a ``moelens boardgame`` run writes: tidy tables, per-cell records, summary, figures.

``boardgame.csv``  one row per (model, layer, space, semantics, BSP function): coverage with its
                   chance level and best threshold, reconstruction (corrected and paper
                   labelling) with the always-on guess beside it, units alive and labelled
``probe.csv``      one row per (model, layer): the residual board probe's accuracies
``cells.json``     per model and scored space, the headline function's per-cell F1 and label
                   counts (the board diagram's data)
``summary.json``   positions used per model and the headline rows
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from moelens.config import to_dict
from moelens.errors import ConfigError
from moelens.rundir import Stage, atomic_path, atomic_write_json

IGNORED = ("overwrite", "quiet", "figures")
"""Settings that do not change the numbers (a rerun that differs only in these is a skip)."""


def _settings(cfg: Any) -> dict[str, Any]:
    return {k: v for k, v in to_dict(cfg).items() if k not in IGNORED}


def check_rerun(stage: Stage, cfg: Any) -> None:
    """Refuse a finished run made with other settings unless ``--overwrite``."""
    if not stage.done or cfg.overwrite:
        return
    try:
        old = json.loads((stage.path / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        old = None
    if old is None or {k: v for k, v in old.items() if k not in IGNORED} != _settings(cfg):
        raise ConfigError(f"{stage.path} holds a finished boardgame run with other settings; "
                          "pass --overwrite to redo it or choose another --out")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def headline_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One printed line per scored space: the headline function's two numbers and their chance."""
    from moelens.analysis.boardgame.run import headline_of

    lines = []
    for r in headline_of(rows):
        sem = f"/{r['semantics']}" if r["semantics"] else ""
        lines.append(f"boardgame: {r['model']} L{r['layer']} {r['space']}{sem}: coverage "
                     f"{r['coverage']:.3f} (chance {r['chance_coverage']:.3f}), reconstruction "
                     f"{r['reconstruction']:.3f} (paper labelling {r['reconstruction_paper']:.3f})"
                     f", {r['n_labelled']} labelled of {r['n_alive']} alive units")
    return lines


def write_results(out: Path, results: list[Any], figures: bool) -> dict[str, Any]:
    """Write every file of a run from the per-store results; returns the summary."""
    from moelens.analysis.boardgame import figures as fig
    from moelens.analysis.boardgame.run import headline_of

    rows = [r for res in results for r in res.rows]
    probe_rows = [r for res in results for r in res.probe_rows]
    write_csv(out / "boardgame.csv", rows)
    if probe_rows:
        write_csv(out / "probe.csv", probe_rows)
    atomic_write_json(out / "cells.json", {res.model: res.cells for res in results})
    summary = {"rows": len(rows), "positions": {res.model: res.positions for res in results},
               "headline": headline_of(rows), "probe": probe_rows,
               "headline_lines": headline_lines(rows),
               "skipped_games": max((res.positions["n_skipped_games"] for res in results),
                                    default=0)}
    if figures and rows:
        summary["figures"] = [str(p.relative_to(out)) for p in
                              fig.draw_all(out / "figures", rows, {r.model: r.cells
                                                                   for r in results})]
    atomic_write_json(out / "summary.json", summary)
    return summary
