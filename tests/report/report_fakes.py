"""A small run directory written by hand in the formats the analyses write (training run,
probe runs with their tidy tables, a comparison, a pipeline summary), for report tests that need
no training. ``evil`` is planted wherever text from a corpus, a user or a path can reach the
page: a model name (a run folder), a concept name (a user concept), a note."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
EVIL_NAME = '<img src=x onerror="window.__pwned = 3">'
"""For names that become folder names (no slash)."""
COLUMNS = ["model", "concept", "group", "layer", "space", "expert", "control", "k", "selection",
           "f1", "precision", "recall", "n_pos", "n_neg", "status", "semantics", "seed",
           "fitter", "converged"]


def _training(root: Path, name: str, moe: bool, val_loss: float) -> None:
    run = root / f"train-{name}" / name
    (run / "model").mkdir(parents=True)
    config = ({"model_type": "moelens", "ffn": "moe", "expert_act": "relu", "router": "sparsity",
               "num_experts": 4, "top_k": 2, "expert_width": 8} if moe else
              {"model_type": "moelens", "ffn": "dense", "ffn_act": "gelu", "ffn_width": 16})
    (run / "model" / "config.json").write_text(json.dumps(config))
    summary = {"iters": 20, "tokens": 2000, "val_loss": val_loss, "val_loss_start": 3.4,
               "model": str(run / "model"), "parameters": 1234}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "DONE").write_text(json.dumps(summary))
    lines = []
    for it in (10, 20):
        rec = {"iter": it, "tokens": it * 100, "loss": 3.0, "val_loss": val_loss + (20 - it) / 10}
        if moe:
            rec["moe"] = {str(l): {"load": [0.4, 0.3, 0.2, 0.1], "router_entropy": 1.2, "l0": 5.0}
                          for l in (0, 1)}
        lines.append(json.dumps(rec))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def _probe(root: Path, name: str, moe: bool, concepts: list[str]) -> Path:
    out = root / "probe" / name
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    units = [(l, e) for l in (0, 1) for e in range(4)] if moe else [(0, -1), (1, -1)]
    for concept in concepts:
        for layer, expert in units:
            for k in (1, 2):
                for sel in ("paper", "val", "test"):
                    f1 = float(rng.uniform(0.5, 1.0))
                    rows.append([name, concept, "user", layer, "expert" if moe else "ffn", expert,
                                 "none", k, sel, f1, f1, f1, 60, 60, "ok", "routed", 42,
                                 "newton", True])
    pd.DataFrame(rows, columns=COLUMNS).to_parquet(out / "probe.parquet")
    main = "expert" if moe else "ffn"
    values = {"1": 0.8 if moe else 0.7, "2": 0.85 if moe else 0.75}
    table = [{"family": main, "statistic": "val_selected_test_f1", "group": main,
              "protocol": "validation-selected, test F1", "values": values},
             {"family": main, "statistic": "best_unit_f1", "group": main,
              "protocol": "paper protocol", "values": {k: v + 0.05 for k, v in values.items()}}]
    summary = {"model": {"name": name, "kind": "moe" if moe else "dense"}, "main_family": main,
               "ks": [1, 2], "headline_table": table, "n_concepts": len(concepts)}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def make_run(root: Path, evil: bool = False, with_probe: bool = True) -> Path:
    """A finished run at ``root``: a dense and an MoE model; with ``evil``, markup planted in the
    MoE's name (a folder), a user concept's name, the notes and the settings."""
    root = Path(root)
    moe_name = f"moex{EVIL_NAME}" if evil else "moex"
    evil = EVIL if evil else ""
    _training(root, "dense-gelu", moe=False, val_loss=2.1)
    _training(root, moe_name, moe=True, val_loss=2.0)
    concepts = ["move_dot", f"regex:{evil}" if evil else "piece_letter"]
    if with_probe:
        runs = [_probe(root, "dense-gelu", False, concepts), _probe(root, moe_name, True, concepts)]
        cmp_dir = root / "probe" / "compare"
        cmp_dir.mkdir()
        headline = {p.name: json.loads((p / "summary.json").read_text())["headline_table"]
                    for p in runs}
        (cmp_dir / "compare.json").write_text(json.dumps({
            "runs": [str(p) for p in runs], "concepts": concepts, "left_out": {},
            "note": f"means over {len(concepts)} concepts {evil}", "headline": headline}))
    summary = {"stages": {"data": {"wall_seconds": 1.0, "summary": {}},
                          "probe": {"wall_seconds": 2.0, "summary": {}}},
               "total_wall_seconds": 3.0, "notes": [f"a note {evil}"],
               "settings": {"games": 10, f"planted {evil}": evil}}
    (root / "summary.json").write_text(json.dumps(summary))
    return root
