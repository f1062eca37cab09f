"""The headline: the corrected number first, the paper's number beside it, and the baselines
that say how much of a gap the token subsets alone explain.

The paper's number (best unit on the held-out split) is a maximum over many small-sample cells
and so biased upward; on random-weight models it shows an MoE beating a dense model, and on
trained ones most of the MoE's lead also appears when *dense* neurons are probed on each
expert's tokens (``routed_tokens``). Every place that prints or plots a headline therefore
shows, with these labels, the validation-selected test F1 (emphasised) and the paper protocol,
for the probed units and for each baseline family the run has.
"""

from __future__ import annotations

from typing import Any

CORRECTED = "val_selected_test_f1"
PAPER = "best_unit_f1"
LABELS = {CORRECTED: "validation-selected, test F1",
          PAPER: "paper protocol (best unit on the held-out split, biased upward)"}
"""Legend and table labels of the two protocols."""

BASELINES = {
    "routed_tokens": "routed-token baseline (dense units on each expert's tokens)",
    "random_routing": "size-matched baseline (dense units on random tokens, expert-sized)",
    "dense_store": "dense-model baseline (its FFN on random tokens, expert-sized)",
    "shuffled_labels": "shuffled-label null (each expert, labels permuted)",
}
"""Baseline families in the order they are shown, with what each one is."""


def family_label(family: str, main: str) -> str:
    return family if family == main else BASELINES.get(family, family)


def rows(summ: dict[str, Any]) -> list[dict[str, Any]]:
    """Headline rows of one run's summary: (family, statistic, label, {k: mean}), corrected
    number first, then the paper's, for the main family and then each baseline it has."""
    main = summ.get("main_family")
    if main is None:
        return []
    by_family = {main: summ.get("headline", {}), **summ.get("baselines", {})}
    out = []
    for fam in [main] + [f for f in BASELINES if f in by_family]:
        for stat in (CORRECTED, PAPER):
            values = by_family[fam].get(stat) or {}
            if any(v is not None for v in values.values()):
                out.append(row(fam, main, stat, values))
    return out


def row(family: str, main: str, statistic: str, values: dict[str, Any]) -> dict[str, Any]:
    """One headline row: what it is (``group``: the units or baseline, ``protocol``) and its
    mean F1 per k (keys are k as strings, as in summary.json)."""
    group, protocol = family_label(family, main), LABELS[statistic]
    return dict(family=family, statistic=statistic, group=group, protocol=protocol,
                label=f"{group}: {protocol}", values=values)


def table_lines(table: list[dict[str, Any]], ks: list[int]) -> list[str]:
    """Fixed-width text table, one column per k: each unit or baseline on its own line, its
    protocols indented under it (the corrected one first)."""
    if not table:
        return []
    width = max(len(r["protocol"]) for r in table) + 4
    lines = [" " * width + " ".join(f"{'k=' + str(k):>6}" for k in ks)]
    group = None
    for r in table:
        if r["group"] != group:
            group = r["group"]
            lines.append(f"  {group}")
        cells = [f"{v:6.3f}" if (v := r["values"].get(str(k))) is not None else f"{'-':>6}"
                 for k in ks]
        lines.append(f"    {r['protocol']:<{width - 4}}" + " ".join(cells))
    return lines
