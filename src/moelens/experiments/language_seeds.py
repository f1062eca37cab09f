"""The language experiment's numbers over training seeds, and SmolLM2's Fig. 8 row.

Every interval of the single-model tables is over units or concepts of one trained model: it
says how sure a number is for that model, not whether another training seed would give the same
order. With ``lm.extra_seeds`` the three main models (dense GELU, Switch, MoE-X) are trained,
auto-interpreted and probed once more per seed; here each claim's headline number is computed per
seed (per seed the MoE is compared with the dense model of the same seed) and then summarised by
its mean, sample sd and range over seeds. The probing means are over the concepts every seeded run
has, so they can differ a little from the single-model table's (over the concepts of all runs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from moelens.experiments.language_models import DENSE, MOEX, SWITCH, split_seed
from moelens.experiments.seed_stats import mean_sd

MAIN = (DENSE, SWITCH, MOEX)
"""The models trained at every seed."""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def seed_of(name: str, base_seed: int) -> tuple[str, int]:
    """Model kind and training seed of a stage suffix (no suffix: the base seed)."""
    kind, seed = split_seed(name)
    return kind, base_seed if seed is None else seed


def fmt(values: Any, digits: int = 3) -> str:
    """'m ± sd (n=k)' over seeds; the value alone for one seed, marked (n=1); '-' for none."""
    return mean_sd(values, digits, single="{:.{d}f} (n=1)", none="-")


def summarize(per_seed: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: number of seeds, and mean, sd (ddof 1), min, max of each column."""
    if per_seed.empty:
        return pd.DataFrame()
    rows = []
    for key, g in per_seed.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = int(g["seed"].nunique())
        for c in columns:
            v = pd.to_numeric(g[c], errors="coerce").dropna() if c in g else pd.Series([], dtype=float)
            row[f"{c}_mean"] = float(v.mean()) if len(v) else None
            row[f"{c}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
            row[f"{c}_min"] = float(v.min()) if len(v) else None
            row[f"{c}_max"] = float(v.max()) if len(v) else None
        rows.append(row)
    return pd.DataFrame(rows)


def fig8_per_seed(root: Path, stages: dict[str, Any], base_seed: int) -> pd.DataFrame:
    """Rules Fig. 8 of the main models' unit kinds, one row per (kind, seed): mean balanced
    accuracy over neurons with its bootstrap interval."""
    rows = []
    for name in stages:
        if not name.startswith("neurons-") or name.startswith("neurons-hf-"):
            continue
        kind, seed = seed_of(name.removeprefix("neurons-"), base_seed)
        if kind not in MAIN:
            continue
        summ = _json(root / name / "interpret" / "summary.json") or {}
        row: dict[str, Any] = {"units": kind, "seed": seed,
                               "scored": (summ.get("status") or {}).get("ok", 0)}
        for t in summ.get("table", []):
            if t["metric"] == "balanced_accuracy" and t["scorer"] in ("detection", "fuzzing"):
                row[t["scorer"]] = t["mean"]
                row[f"{t['scorer']}_ci_low"], row[f"{t['scorer']}_ci_high"] = \
                    t["ci_low"], t["ci_high"]
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["units", "seed"], kind="stable") if len(df) else df


def probe_per_seed(root: Path, stages: dict[str, Any], base_seed: int,
                   stats: tuple[str, ...]) -> tuple[pd.DataFrame, Any]:
    """Probing means of the main models, one row per (model, seed, family, statistic, k), over
    the concepts every one of those runs has; and the comparison (None before any run)."""
    from moelens.analysis.probing import compare, headline

    names = [n for n in stages if n.startswith("probe-")
             and split_seed(n.removeprefix("probe-"))[0] in MAIN
             and (root / n / "probe" / "summary.json").exists()]
    if not names:
        return pd.DataFrame(), None
    cmp = compare.compare([root / n / "probe" for n in names], n_boot=200)
    rows = []
    for run in cmp.runs:
        kind, seed = seed_of(run.name, base_seed)
        fams = [run.main] + [f for f in headline.BASELINES if f in set(run.stats["family"])]
        for fam in fams:
            for stat in stats:
                for _, r in cmp.means(run, fam, stat).iterrows():
                    rows.append({"model": kind, "seed": seed, "family": fam, "statistic": stat,
                                 "k": int(r["k"]), "mean": r["mean"],
                                 "concepts": int(r["n_concepts"])})
    return pd.DataFrame(rows), cmp


def gaps_per_seed(per_seed: pd.DataFrame, gaps_fn: Any) -> pd.DataFrame:
    """The probing gaps (``gaps_fn``: the report's ``probe_gaps``) computed within each seed:
    each MoE against the dense model trained with the same seed."""
    if per_seed.empty:
        return pd.DataFrame()
    frames = [gaps_fn(g).assign(seed=s) for s, g in per_seed.groupby("seed")]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


GAP_COLUMNS = ("moe_paper", "dense_paper", "gap_paper", "moe_corrected", "dense_corrected",
               "gap_corrected", "dense_store_paper", "moe_minus_dense_store",
               "dense_store_corrected", "moe_minus_dense_store_corrected", "routed_tokens_paper",
               "moe_minus_routed_tokens", "moe_mean_unit_at_best_layer")


def seed_markdown(fig8: pd.DataFrame, gaps: pd.DataFrame) -> list[str]:
    """The two seed tables of ``tables.md``: 'mean ± sd (n=seeds)' per model kind."""
    lines: list[str] = []
    if len(fig8):
        lines += ["Fig. 8 (rules) over training seeds: balanced accuracy, mean ± sd over seeds "
                  "of the per-model means (per seed in `fig8_seeds.csv`):", "",
                  "| units | seeds | detection | fuzzing | per seed (detection / fuzzing) |",
                  "|---|---|---|---|---|"]
        for kind, g in fig8.groupby("units", sort=False):
            each = "; ".join(f"s{int(r.seed)}: {_f(r.get('detection'))} / "
                             f"{_f(r.get('fuzzing'))}" for _, r in g.iterrows())
            lines.append(f"| {kind} | {g['seed'].nunique()} | "
                         f"{fmt(g.get('detection', []))} | {fmt(g.get('fuzzing', []))} | "
                         f"{each} |")
        lines.append("")
    if len(gaps):
        lines += ["Probing over training seeds (each MoE minus the dense model of its seed; "
                  "per seed in `probe_gaps_seeds.csv`):", "",
                  "| model | k | seeds | MoE (paper) | dense (paper) | gap (paper) | "
                  "gap (val.-selected) | MoE minus size-matched dense MLP (paper) | "
                  "MoE minus size-matched (val.-selected) | MoE minus routed tokens (paper) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for (model, k), g in gaps.groupby(["model", "k"], sort=False):
            cells = [fmt(g[c]) for c in ("moe_paper", "dense_paper", "gap_paper",
                                         "gap_corrected", "moe_minus_dense_store",
                                         "moe_minus_dense_store_corrected",
                                         "moe_minus_routed_tokens")]
            lines.append(f"| {model} | {k} | {g['seed'].nunique()} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _f(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.3f}"


def smollm2_table(root: Path, stages: dict[str, Any]) -> pd.DataFrame:
    """SmolLM2's Fig. 8 stages: its explanations judged by itself (detection, fuzzing) and by
    the MiniLM embedding scorer, beside the rules explanations of the same neurons on the same
    windows under that scorer."""
    from moelens.experiments.language_units import FIG8_UNITS

    rows = []
    for name in stages:
        if not name.startswith("neurons-hf-"):
            continue
        kind = name.removeprefix("neurons-hf-")
        summ = _json(root / name / "interpret" / "summary.json") or {}
        rules = _json(root / name / "rules_embedding" / "summary.json") or {}
        row: dict[str, Any] = {"units": FIG8_UNITS[kind][2], "neurons": summ.get("units"),
                               "scored": (summ.get("status") or {}).get("ok", 0)}
        for tag, s, wanted in (("smollm2", summ, (("detection", "balanced_accuracy"),
                                                  ("detection", "auroc"),
                                                  ("fuzzing", "balanced_accuracy"),
                                                  ("embedding", "auroc"))),
                               ("rules", rules, (("embedding", "auroc"),))):
            for t in s.get("table", []):
                if (t["scorer"], t["metric"]) in wanted:
                    col = f"{tag}_{t['scorer']}_{t['metric']}"
                    row[col] = t["mean"]
                    row[f"{col}_ci"] = f"[{_f(t['ci_low'])}, {_f(t['ci_high'])}]"
        row.update(_smollm2_behaviour(root / name / "interpret"))
        rows.append(row)
    return pd.DataFrame(rows)


def _smollm2_behaviour(interpret_dir: Path) -> dict[str, Any]:
    """What SmolLM2 did, from its unit records: the share of windows its detection judge called
    activating, and how many explanations are distinct or copy the prompt's worked example (or
    a piece of it, case aside)."""
    from moelens.experiments.language_experts import unit_records

    yes = answered = copied = 0
    texts = []
    for rec in unit_records(interpret_dir) if interpret_dir.exists() else []:
        m = ((rec.get("scores") or {}).get("detection") or {}).get("metrics") or {}
        yes += int(m.get("tp", 0) or 0) + int(m.get("fp", 0) or 0)
        answered += int(m.get("answered", 0) or 0)
        expl = rec.get("explanation") or {}
        text = (expl.get("text") or "").strip()
        if not text:
            continue
        texts.append(text.lower())
        shown = " ".join(str(msg.get("content", "")) for msg in (expl.get("prompt") or [])[:-1]
                         if msg.get("role") == "assistant")
        copied += text.lower().rstrip(".") in shown.lower()  # the example, or a piece of it
    return {"judge_yes_share": yes / answered if answered else None, "explanations": len(texts),
            "distinct_explanations": len(set(texts)), "explanations_copying_example": copied}

