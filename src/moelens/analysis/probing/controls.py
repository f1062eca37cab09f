"""Aggregates of the results table: the paper's number and the controls beside it.

Per (seed, family, concept, k), over all units of the family (all layers, all experts):

- ``best_unit_f1``: max F1 on the paper's 25% test split -- the paper's "best-layer F1". It is a
  maximum over hundreds of small-sample cells for an MoE, so it is biased upwards.
- ``val_selected_test_f1``: the unit (layer and expert) with the best F1 on the *validation half*
  of the held-out split, scored on the other (*test*) half. Nested rather than a fresh three-way
  split: the probe is fitted once on the paper's 75% train split, so the paper's number and this
  one come from the same fits. ``best_unit_test_f1`` is the max on that same test half, for a
  like-for-like view of the selection bias.
- ``mean_expert_f1_at_best_layer`` / ``median_expert_f1_at_best_layer``: the distribution over
  units at the best unit's layer; ``mean_expert_f1_best_mean_layer``: the layer chosen by its
  mean unit; ``experts_within_95``: units of the best layer with F1 >= 0.95 x the best.

A family is the probed space for real units (``expert``, ``shared``, ``ffn``) or the control's
name for baselines (``routed_tokens``, ``random_routing``, ``shuffled_labels``). Across concepts
each statistic gets its mean and a percentile bootstrap 95% interval (resampling concepts), per
seed and for ``seed="all"`` (per-concept values averaged over seeds first; ``seed_sd`` is the
standard deviation of the per-seed means).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

UNIT = ["layer", "space", "expert"]
KEYS = ["seed", "family", "concept", "k"]
STATS = ["best_unit_f1", "val_selected_test_f1", "best_unit_test_f1",
         "mean_expert_f1_at_best_layer", "median_expert_f1_at_best_layer",
         "mean_expert_f1_best_mean_layer", "experts_within_95"]


def with_family(df: pd.DataFrame) -> pd.DataFrame:
    """Only fitted rows, with the ``family`` column added."""
    d = df[df["status"] == "ok"].copy()
    d["family"] = np.where(d["control"] == "none", d["space"], d["control"])
    return d


def concept_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, family, concept, k) with every statistic of the module doc."""
    d = with_family(df)
    if d.empty:
        return pd.DataFrame(columns=KEYS + STATS)
    paper = d[d["selection"] == "paper"]
    best = paper.loc[paper.groupby(KEYS)["f1"].idxmax(), KEYS + ["layer", "f1"]]
    best = best.rename(columns={"f1": "best_unit_f1", "layer": "best_layer"}).set_index(KEYS)
    val = d[d["selection"] == "val"]
    test = d[d["selection"] == "test"].set_index(KEYS + UNIT)["f1"]
    chosen = val.loc[val.groupby(KEYS)["f1"].idxmax(), KEYS + UNIT].set_index(KEYS + UNIT)
    chosen["val_selected_test_f1"] = test.reindex(chosen.index).to_numpy()
    chosen = chosen.reset_index().set_index(KEYS)[["val_selected_test_f1"]]
    best_test = test.groupby(KEYS).max().rename("best_unit_test_f1")
    per_layer = paper.groupby(KEYS + ["layer"])["f1"].agg(["mean", "median"])
    at_best = per_layer.reindex(pd.MultiIndex.from_frame(
        best.reset_index()[KEYS + ["best_layer"]])).to_numpy()
    best["mean_expert_f1_at_best_layer"] = at_best[:, 0]
    best["median_expert_f1_at_best_layer"] = at_best[:, 1]
    best_mean = per_layer["mean"].groupby(KEYS).max().rename("mean_expert_f1_best_mean_layer")
    p = paper.merge(best.reset_index()[KEYS + ["best_layer", "best_unit_f1"]], on=KEYS)
    near = p[(p["layer"] == p["best_layer"]) & (p["f1"] >= 0.95 * p["best_unit_f1"])]
    within = near.groupby(KEYS).size().rename("experts_within_95")
    out = best.join([chosen, best_test, best_mean, within])
    return out.reset_index()[KEYS + STATS]


def bootstrap_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of the mean of ``values`` (resampled with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1 or n_boot <= 0:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def aggregate(stats: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Mean over concepts with bootstrap CIs, per seed and over all seeds (tidy records)."""
    records: list[dict[str, Any]] = []
    if stats.empty:
        return records
    long = stats.melt(id_vars=KEYS, value_vars=STATS, var_name="statistic")
    for (seed_, fam, k, stat), g in long.groupby(["seed", "family", "k", "statistic"]):
        lo, hi = bootstrap_ci(g["value"].to_numpy(), n_boot, seed)
        records.append(dict(seed=int(seed_), family=fam, k=int(k), statistic=stat,
                            mean=float(np.nanmean(g["value"])) if g["value"].notna().any() else None,
                            ci_low=lo, ci_high=hi, n_concepts=int(g["value"].notna().sum())))
    per_seed = long.groupby(["seed", "family", "k", "statistic"])["value"].mean()
    avg = long.groupby(["family", "concept", "k", "statistic"])["value"].mean().reset_index()
    for (fam, k, stat), g in avg.groupby(["family", "k", "statistic"]):
        lo, hi = bootstrap_ci(g["value"].to_numpy(), n_boot, seed)
        sd = per_seed.xs((fam, k, stat), level=["family", "k", "statistic"]).std(ddof=0)
        records.append(dict(seed="all", family=fam, k=int(k), statistic=stat,
                            mean=float(np.nanmean(g["value"])) if g["value"].notna().any() else None,
                            ci_low=lo, ci_high=hi, n_concepts=int(g["value"].notna().sum()),
                            seed_sd=float(sd) if np.isfinite(sd) else None))
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in records]


def headline(records: list[dict[str, Any]], family: str) -> dict[str, dict[str, Any]]:
    """{statistic: {k: mean}} of one family over all seeds: the numbers to read first."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["seed"] == "all" and r["family"] == family:
            out.setdefault(r["statistic"], {})[str(r["k"])] = r["mean"]
    return out
