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


def _boardgame(root: Path, models: list[str]) -> None:
    out = root / "boardgame"
    out.mkdir(parents=True)
    rows, probe = [], []
    for i, model in enumerate(models):
        moe = model != "dense-gelu"
        for layer in (0, 1):
            for function in ("piece_masked_blank_and_initial", "threat"):
                rows.append({"model": model, "layer": layer, "space": "expert" if moe else "ffn",
                             "semantics": "gated" if moe else "", "function": function,
                             "coverage": 0.1 + 0.1 * i + 0.01 * layer, "chance_coverage": 0.02,
                             "coverage_threshold": 0.5, "reconstruction": 0.2 + 0.1 * i,
                             "reconstruction_threshold": 0.5, "reconstruction_paper": 0.25,
                             "chance_reconstruction": 0.0, "n_units": 32, "n_alive": 30,
                             "n_labelled": 3, "n_cells": 768, "labelling": "corrected",
                             "n_fit": 100, "n_test": 100})
            probe.append({"model": model, "layer": layer, "accuracy": 0.8,
                          "accuracy_changed": 0.3, "majority_accuracy": 0.7,
                          "majority_accuracy_changed": 0.1, "test_loss": 1.0, "n_fit": 100,
                          "n_test": 100})
    pd.DataFrame(rows).to_csv(out / "boardgame.csv", index=False)
    pd.DataFrame(probe).to_csv(out / "probe.csv", index=False)
    positions = {"n_fit": 100, "n_test": 100, "n_games_fit": 5, "n_games_test": 5}
    (out / "summary.json").write_text(json.dumps({"positions": {m: positions for m in models}}))


def _interpret(root: Path, model: str, evil: str) -> None:
    out = root / "interpret" / model
    (out / "units").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"config": {"store": f"capture/{model}"}}))
    table = [{"scorer": "detection", "metric": "balanced_accuracy", "units": 8, "mean": 0.75,
              "ci_low": 0.7, "ci_high": 0.8, "baseline": 0.5, "baseline_kind": "all-yes",
              "failures": 0}]
    (out / "summary.json").write_text(json.dumps({"units": 8, "status": {"ok": 8},
                                                  "explanation_failures": 0, "table": table,
                                                  "deciles": []}))
    for layer in (0, 1):
        for e in range(4):
            label = ("castling moves" + (f" {evil}" if evil else "") if (layer, e) == (1, 2)
                     else f"files of layer {layer} expert {e}")
            tokens = [";", "1", ".", "e", "4", " ", evil or "O-O", " "]
            window = {"start": 0, "kind": "activating", "chunk": 0, "decile": 10, "fires": True,
                      "tokens": tokens, "token_ids": list(range(len(tokens))),
                      "acts": [0.0, 0.1, 0.0, 0.5, 1.0, 0.0, 2.0, 0.0]}
            rec = {"unit": {"name": f"L{layer}.expert_out.E{e}", "layer": layer,
                            "space": "expert_out", "expert": e, "index": -1},
                   "status": "ok", "explainer": "rules", "judge": "rules",
                   "promoted": ["O", evil or "-"], "examples": {
                       "status": "ok", "n_activating": 30, "max_act": 2.0, "explain": [window],
                       "test": [window]},
                   "explanation": {"text": label},
                   "scores": {"detection": {"metrics": {"balanced_accuracy": 0.7 + 0.01 * e}}}}
            (out / "units" / f"L{layer}.expert_out.E{e}.json").write_text(json.dumps(rec))


def _specialize(root: Path, model: str) -> None:
    out = root / "specialize" / model
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps({"store": f"capture/{model}",
                                                  "model": f"train-{model}/{model}/model",
                                                  "mean_specialization": {"input_K10": 0.03}}))
    pd.DataFrame([{"layer": l, "tokens": 100, "top_k": 2, "num_experts": 4,
                   "load_entropy_bits": 1.9} for l in (0, 1)]).to_csv(
        out / "routing_layers.csv", index=False)
    pd.DataFrame([{"layer": l, "expert": e, "routed_tokens": 50, "load": 0.05 + 0.1 * e,
                   "token_share": 0.5, "dead": False, "always_on": False}
                  for l in (0, 1) for e in range(4)]).to_csv(out / "routing_experts.csv",
                                                             index=False)
    pd.DataFrame([{"layer": l, "expert": e, "view": "input", "k": 10, "n": 50, "jsd": 0.1,
                   "null": 0.01, "specialization": 0.09, "status": "tested"}
                  for l in (0, 1) for e in range(4)]).to_csv(out / "specialization.csv",
                                                             index=False)


def make_run(root: Path, evil: bool = False, with_probe: bool = True,
             analyses: bool = True) -> Path:
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
    if analyses:
        (root / "legal").mkdir()
        pd.DataFrame([{"model": "dense-gelu", "legal_move_rate": 0.4, "n_prompts": 20},
                      {"model": moe_name, "legal_move_rate": 0.5, "n_prompts": 20}]).to_csv(
            root / "legal" / "legal_moves.csv", index=False)
        _boardgame(root, ["dense-gelu", moe_name])
        _interpret(root, moe_name, evil)
        _specialize(root, moe_name)
    summary = {"stages": {"data": {"wall_seconds": 1.0, "summary": {}},
                          "probe": {"wall_seconds": 2.0, "summary": {}}},
               "total_wall_seconds": 3.0, "notes": [f"a note {evil}"],
               "settings": {"games": 10, f"planted {evil}": evil}}
    (root / "summary.json").write_text(json.dumps(summary))
    return root
