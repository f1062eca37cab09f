"""The run's summary.json: model facts, headline numbers, every aggregate, convergence (how many
fits failed the relative gradient test of :mod:`.optimality`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from moelens.analysis.probing import controls, headline
from moelens.analysis.probing.optimality import GRAD_TOL


def model_facts(store: Any, layers: list[int], name: str) -> dict[str, Any]:
    """Model name, MoE or dense, and routing density top_k / num_experts (mean over MoE layers)."""
    moe = [l for l in layers if "expert" in store.spaces(l)]
    if not moe:
        return {"name": name, "kind": "dense", "routing_density": None, "top_k": None,
                "num_experts": None}
    top_k = [int(store.top_k(l)) for l in moe]
    n_exp = [int(store.num_experts(l)) for l in moe]
    return {"name": name, "kind": "moe",
            "routing_density": float(np.mean([t / e for t, e in zip(top_k, n_exp)])),
            "top_k": top_k[0], "num_experts": n_exp[0]}


def build(df: pd.DataFrame, facts: dict[str, Any], n_boot: int, seed: int,
          extra: dict[str, Any] | None = None,
          duplicates: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a report or ``--compare`` needs, without rereading the table.

    ``duplicates`` ({name: canonical name}, see :func:`.concepts.duplicates`) are left out of
    every mean and count over concepts; their rows stay in the table."""
    duplicates = dict(duplicates or {})
    stats = controls.concept_stats(df)
    stats = stats[~stats["concept"].isin(list(duplicates))]
    records = controls.aggregate(stats, n_boot=n_boot, seed=seed)
    families = sorted(set(stats["family"])) if not stats.empty else []
    main = next((f for f in ("expert", "ffn", "shared") if f in families), None)
    fitted = df[df["status"] == "ok"]
    conv = fitted["converged"].astype("float64")
    fits = fitted[fitted["selection"] == "paper"]  # one row per (unit, k) fit
    within: dict[str, dict[str, float]] = {}
    if main is not None:  # one value per concept: the mean over seeds (seeds are not concepts)
        s = stats[(stats["family"] == main)]
        for k, g in s.groupby("k"):
            per = g.assign(n=g["experts_within_95"].fillna(0)).groupby("concept")["n"].mean()
            within[str(int(k))] = {str(c): float(v) for c, v in per.items()}
    n_concepts = max((r["n_concepts"] for r in records if r["seed"] == "all"
                      and r["family"] == main), default=0)
    summ = {
        "model": facts,
        "main_family": main,
        "headline": controls.headline(records, main) if main else {},
        "baselines": {f: controls.headline(records, f) for f in families if f != main},
        "experts_within_95_per_concept": within,
        "rows": int(len(df)),
        "units_fitted": int(len(fitted[fitted["selection"] == "paper"])),
        "units_not_enough_samples": int((df["status"] == "not enough samples").sum()),
        "fraction_converged": float(conv.mean()) if len(conv) else None,
        "fits_not_converged": int((fits["converged"] == False).sum()),  # noqa: E712 (nullable)
        "convergence_tol": GRAD_TOL,
        "aggregates": records,
        "duplicates": duplicates,
        "n_concepts": int(n_concepts),
        **(extra or {}),
    }
    summ["headline_table"] = headline.rows(summ)
    return summ
