"""Figures of probe runs (matplotlib Agg backend, no LaTeX; each saved as PNG and SVG).

One run: mean best-unit F1 vs k with 95% intervals for the units and every control, and the
histogram of experts within 95% of the best. ``--compare``: mean best F1 vs k per run; per-concept
MoE vs dense scatter at k=1 (first MoE run against first dense run); k=1 F1 against routing
density top_k / num_experts (dense models drawn at density 1); within-95% histograms per MoE run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from moelens.analysis.probing import controls, table
from moelens.errors import DataError
from moelens.rundir import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["text.usetex"] = False
    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight")
        paths.append(path)
    _plt().close(fig)
    return paths


def _series(summ: dict[str, Any], family: str, statistic: str) -> pd.DataFrame:
    rows = [r for r in summ["aggregates"] if r["seed"] == "all" and r["family"] == family
            and r["statistic"] == statistic and r["mean"] is not None]
    return pd.DataFrame(rows).sort_values("k") if rows else pd.DataFrame()


def _line(ax, s: pd.DataFrame, label: str, **kw) -> None:
    if s.empty:
        return
    (line,) = ax.plot(s["k"], s["mean"], marker="o", label=label, **kw)
    ax.fill_between(s["k"], s["ci_low"].astype(float), s["ci_high"].astype(float), alpha=0.15,
                    color=line.get_color())


def _f1_axes(ax, title: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (neurons per probe)")
    ax.set_ylabel("mean F1 over concepts")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _count_bins(values: list[float]) -> list[float]:
    """Unit-wide bins centred on whole counts (means over seeds fall between them)."""
    return [i - 0.5 for i in range(0, int(max(values)) + 3)]


def _seed_note(summ: dict[str, Any]) -> str:
    n = len(summ.get("seeds") or [])
    return f"\nmean over {n} seeds per concept" if n > 1 else ""


def run_figures(df: pd.DataFrame, summ: dict[str, Any], out_dir: Path) -> list[Path]:
    """Figures of one probe run."""
    plt = _plt()
    main = summ.get("main_family")
    paths: list[Path] = []
    if main is None:
        return paths
    fig, ax = plt.subplots(figsize=(5, 3.5))
    _line(ax, _series(summ, main, "best_unit_f1"), f"{main}: best unit (paper)")
    _line(ax, _series(summ, main, "val_selected_test_f1"), f"{main}: validation-selected, test")
    _line(ax, _series(summ, main, "mean_expert_f1_at_best_layer"), f"{main}: mean unit, best layer")
    for fam in summ.get("baselines", {}):
        _line(ax, _series(summ, fam, "best_unit_f1"), f"{fam}: best unit", linestyle="--")
    _f1_axes(ax, f"{summ['model']['name']}: k-sparse probing")
    paths += _save(fig, out_dir, "f1_vs_k")
    within = list((summ.get("experts_within_95_per_concept", {}).get("1") or {}).values())
    if within:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(within, bins=_count_bins(within))
        ax.set_xlabel("units of the best layer within 95% of the best (k=1)"
                      + _seed_note(summ))
        ax.set_ylabel("concepts")
        paths += _save(fig, out_dir, "experts_within_95")
    return paths


def _load(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        raise DataError(f"{run_dir} is not a finished probe run (no summary.json); run 'moelens probe' there first")
    return json.loads(path.read_text())


def compare_runs(run_dirs: list[Path], out_dir: Path) -> list[Path]:
    """Comparison figures of several finished runs (e.g. MoE vs dense)."""
    plt = _plt()
    runs = [(Path(d), _load(d)) for d in run_dirs]
    paths: list[Path] = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for _, s in runs:
        if s.get("main_family"):
            _line(ax, _series(s, s["main_family"], "best_unit_f1"),
                  f"{s['model']['name']} ({s['model']['kind']})")
    _f1_axes(ax, "mean best-unit F1 vs k (95% CI over concepts)")
    paths += _save(fig, out_dir, "compare_f1_vs_k")

    moe = next(((d, s) for d, s in runs if s["model"]["kind"] == "moe"), None)
    dense = next(((d, s) for d, s in runs if s["model"]["kind"] == "dense"), None)
    if moe and dense:
        a, b = (controls.concept_stats(table.read_table(d)) for d, _ in (moe, dense))
        pick = lambda st, s: (st[(st.family == s["main_family"]) & (st.k == 1)]  # noqa: E731
                              .groupby("concept")["best_unit_f1"].mean())
        m = pd.concat([pick(a, moe[1]).rename("moe"), pick(b, dense[1]).rename("dense")],
                      axis=1).dropna()
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(m["dense"], m["moe"], s=12)
        lo = float(min(m.min().min(), 0.5)) if len(m) else 0.5
        ax.plot([lo, 1], [lo, 1], color="grey", linewidth=0.8)
        ax.set_xlabel(f"{dense[1]['model']['name']} best F1 (k=1)")
        ax.set_ylabel(f"{moe[1]['model']['name']} best F1 (k=1)")
        paths += _save(fig, out_dir, "compare_scatter_k1")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for _, s in runs:
        k1 = (s.get("headline", {}).get("best_unit_f1") or {}).get("1")
        if k1 is None:
            continue
        density = s["model"]["routing_density"] if s["model"]["kind"] == "moe" else 1.0
        ax.scatter([density], [k1], marker="o" if s["model"]["kind"] == "moe" else "s")
        ax.annotate(s["model"]["name"], (density, k1), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("routing density top_k / num_experts (dense = 1)")
    ax.set_ylabel("mean best-unit F1 at k=1")
    paths += _save(fig, out_dir, "compare_density_k1")

    moes = [(d, s) for d, s in runs if s["model"]["kind"] == "moe"
            and s.get("experts_within_95_per_concept", {}).get("1")]
    if moes:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for _, s in moes:
            w = list(s["experts_within_95_per_concept"]["1"].values())
            ax.hist(w, bins=_count_bins(w), alpha=0.5, label=s["model"]["name"])
        ax.set_xlabel("experts of the best layer within 95% of the best (k=1)\n"
                      "per concept, mean over each run's seeds")
        ax.set_ylabel("concepts")
        ax.legend(fontsize=7)
        paths += _save(fig, out_dir, "compare_experts_within_95")
    return paths
