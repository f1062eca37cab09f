"""Collect the rules-vs-SmolLM2 auto-interpretation runs into the files of this folder.

Usage: ``python experiments/autointerp/collect.py RUNS_DIR`` where RUNS_DIR holds the
``moelens interpret`` outputs named below (see EXPERIMENTS.md for the commands). Writes
``summary.csv`` (every condition's summary table), ``units.csv`` (per expert: both labels and
their scores) and ``auroc_by_expert.png``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONDITIONS = {
    "rules_rules": "rules labels, rules judge (predicate run directly)",
    "rules_smol": "rules labels, SmolLM2 judge",
    "smol_smol": "SmolLM2 labels, SmolLM2 judge",
    "planted_rules_smol": "control: planted store, rules labels, SmolLM2 judge",
}


def _metric(rec: dict, scorer: str, name: str):
    return ((rec["scores"].get(scorer) or {}).get("metrics") or {}).get(name)


def main(root: Path) -> None:
    rows = []
    for cond, what in CONDITIONS.items():
        path = root / cond / "summary.json"
        if not path.exists():
            continue
        for r in json.loads(path.read_text())["table"]:
            rows.append({"condition": cond, "description": what, **r})
    with open(HERE / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    units = []
    for f in sorted((root / "smol_smol" / "units").glob("*.json")):
        smol = json.loads(f.read_text())
        rules = json.loads((root / "rules_smol" / "units" / f.name).read_text())
        exact = json.loads((root / "rules_rules" / "units" / f.name).read_text())
        units.append({
            "expert": smol["unit"]["name"], "promoted": " ".join(smol["promoted"] or []),
            "rules_label": rules["explanation"]["text"], "smollm2_label": smol["explanation"]["text"],
            "smollm2_label_failure": smol["explanation"]["failure"],
            "rules_judge_detection_bal_acc": _metric(exact, "detection", "balanced_accuracy"),
            "rules_judge_binary_f1": _metric(exact, "binary", "f1"),
            "rules_label_smol_detection_auroc": _metric(rules, "detection", "auroc"),
            "smol_label_smol_detection_auroc": _metric(smol, "detection", "auroc"),
            "rules_label_smol_binary_f1": _metric(rules, "binary", "f1"),
            "smol_label_smol_binary_f1": _metric(smol, "binary", "f1"),
            "rules_label_embedding_auroc": _metric(rules, "embedding", "auroc"),
            "smol_label_embedding_auroc": _metric(smol, "embedding", "auroc"),
        })
    with open(HERE / "units.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(units[0]))
        w.writeheader()
        w.writerows(units)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = range(len(units))
    for key, label, marker in (("rules_label_smol_detection_auroc", "rules label, SmolLM2 judge", "o"),
                               ("smol_label_smol_detection_auroc", "SmolLM2 label, SmolLM2 judge", "s"),
                               ("rules_label_embedding_auroc", "rules label, MiniLM embedding", "^"),
                               ("smol_label_embedding_auroc", "SmolLM2 label, MiniLM embedding", "v")):
        ax.plot(list(x), [u[key] for u in units], marker, label=label, alpha=0.8)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xticks(list(x), [u["expert"].replace(".expert_out", "") for u in units], rotation=60, fontsize=7)
    ax.set_ylabel("AUROC, activating vs not")
    ax.set_ylim(0.2, 0.8)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("quickstart MoE-X experts: detection AUROC per expert")
    fig.savefig(HERE / "auroc_by_expert.png", dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
