"""Figures of probe runs (matplotlib Agg backend, no LaTeX; each saved as PNG and SVG, the SVG
with its text kept as text).

Every F1 figure shows the corrected number with emphasis (solid: validation-selected, test F1)
and the paper's beside it (dashed: paper protocol, best unit on the held-out split, biased
upward), with the baselines of :mod:`.headline` (dotted / dash-dot), labelled in the legend.

One run: mean F1 vs k with 95% intervals for its units and every baseline, and the histogram of
units within 95% of the best (one value per concept: the mean over seeds). ``--compare``
(:mod:`.compare`, means over the concepts every run has, the left-out ones named in a footnote):
mean F1 vs k per run; per-concept MoE vs dense scatter at k=1 (first MoE run against first
dense run); k=1 F1 against routing density top_k / num_experts (dense models drawn at density
1); within-95% histograms per MoE run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from moelens.analysis.probing import headline
from moelens.analysis.probing.compare import Comparison
from moelens.plotting import pyplot, save_figures

STYLE = {headline.CORRECTED: dict(linestyle="-", linewidth=2.0),
         headline.PAPER: dict(linestyle="--", linewidth=1.0, alpha=0.8)}
BASELINE_STYLE = {"routed_tokens": ":", "random_routing": "-.", "dense_store": (0, (5, 1, 1, 1)),
                  "shuffled_labels": (0, (1, 3))}
DPI = 120


def _series(summ: dict[str, Any], family: str, statistic: str) -> pd.DataFrame:
    rows = [r for r in summ["aggregates"] if r["seed"] == "all" and r["family"] == family
            and r["statistic"] == statistic and r["mean"] is not None]
    return pd.DataFrame(rows).sort_values("k") if rows else pd.DataFrame()


def _line(ax, s: pd.DataFrame, label: str, color=None, band: bool = True, **kw):
    if s.empty:
        return color
    (line,) = ax.plot(s["k"], s["mean"], marker="o", markersize=3, label=label, color=color, **kw)
    if band:
        ax.fill_between(s["k"], s["ci_low"].astype(float), s["ci_high"].astype(float), alpha=0.12,
                        color=line.get_color())
    return line.get_color()


def _f1_axes(ax, title: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (neurons per probe)")
    ax.set_ylabel("mean F1 over concepts")
    ax.set_title(title)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _footnote(fig, text: str) -> None:
    fig.text(0.0, -0.02, text, fontsize=6, ha="left", va="top", wrap=True)


def _count_bins(values: list[float]) -> list[float]:
    """Unit-wide bins centred on whole counts (means over seeds fall between them)."""
    return [i - 0.5 for i in range(0, int(max(values)) + 3)]


def _seed_note(summ: dict[str, Any]) -> str:
    n = len(summ.get("seeds") or [])
    return f"\nmean over {n} seeds per concept" if n > 1 else ""


def _families(summ: dict[str, Any]) -> list[str]:
    return [f for f in headline.BASELINES if f in summ.get("baselines", {})]


def run_figures(df: pd.DataFrame, summ: dict[str, Any], out_dir: Path) -> list[Path]:
    """Figures of one probe run."""
    plt = pyplot()
    main = summ.get("main_family")
    paths: list[Path] = []
    if main is None:
        return paths
    fig, ax = plt.subplots(figsize=(5, 3.5))
    color = None
    for stat in (headline.CORRECTED, headline.PAPER):
        color = _line(ax, _series(summ, main, stat), f"{main}: {headline.LABELS[stat]}",
                      color=color, **STYLE[stat])
    _line(ax, _series(summ, main, "mean_expert_f1_at_best_layer"), f"{main}: mean unit, best layer",
          band=False, linestyle=(0, (3, 2)), linewidth=0.8)
    for fam in _families(summ):
        _line(ax, _series(summ, fam, headline.CORRECTED),
              f"{headline.BASELINES[fam]}: {headline.LABELS[headline.CORRECTED]}",
              linestyle=BASELINE_STYLE[fam], linewidth=1.2)
    _f1_axes(ax, f"{summ['model']['name']}: k-sparse probing")
    _footnote(fig, f"means over {summ.get('n_concepts', '?')} concepts, 95% bootstrap intervals")
    paths += save_figures(fig, out_dir, "f1_vs_k", dpi=DPI)
    within = list((summ.get("experts_within_95_per_concept", {}).get("1") or {}).values())
    if within:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(within, bins=_count_bins(within))
        ax.set_xlabel("units of the best layer within 95% of the best (k=1)" + _seed_note(summ))
        ax.set_ylabel("concepts")
        paths += save_figures(fig, out_dir, "experts_within_95", dpi=DPI)
    return paths


def compare_runs(cmp: Comparison, out_dir: Path) -> list[Path]:
    """Comparison figures of several finished runs (e.g. MoE vs dense), over shared concepts."""
    plt = pyplot()
    note = cmp.note()
    paths: list[Path] = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in cmp.runs:
        if r.main is None:
            continue
        color = None
        for stat in (headline.CORRECTED, headline.PAPER):
            color = _line(ax, cmp.means(r, r.main, stat), f"{r.name} ({r.kind}): {headline.LABELS[stat]}",
                          color=color, **STYLE[stat])
        for fam in (f for f in ("routed_tokens", "random_routing", "dense_store")
                    if f in set(r.stats["family"])):
            _line(ax, cmp.means(r, fam, headline.CORRECTED),
                  f"{r.name}: {headline.BASELINES[fam]}: {headline.LABELS[headline.CORRECTED]}",
                  color=color, band=False, linestyle=BASELINE_STYLE[fam], linewidth=1.2)
    _f1_axes(ax, "mean F1 vs k (95% CI over concepts)")
    _footnote(fig, note)
    paths += save_figures(fig, out_dir, "compare_f1_vs_k", dpi=DPI)

    moe = next((r for r in cmp.runs if r.kind == "moe"), None)
    dense = next((r for r in cmp.runs if r.kind == "dense"), None)
    if moe and dense:
        fig, ax = plt.subplots(figsize=(4, 4))
        lo = 0.5
        for stat, kw in ((headline.CORRECTED, dict(s=14)),
                         (headline.PAPER, dict(s=14, facecolors="none", edgecolors="grey"))):
            pick = lambda r: (r.stats[(r.stats.family == r.main) & (r.stats.k == 1)  # noqa: E731
                                      & r.stats.concept.isin(cmp.concepts)]
                              .groupby("concept")[stat].mean())
            m = pd.concat([pick(moe).rename("moe"), pick(dense).rename("dense")], axis=1).dropna()
            ax.scatter(m["dense"], m["moe"], label=headline.LABELS[stat], **kw)
            lo = float(min(m.min().min(), lo)) if len(m) else lo
        ax.plot([lo, 1], [lo, 1], color="grey", linewidth=0.8)
        ax.set_xlabel(f"{dense.name} F1 (k=1)")
        ax.set_ylabel(f"{moe.name} F1 (k=1)")
        ax.legend(fontsize=6, loc="upper left")
        _footnote(fig, note)
        paths += save_figures(fig, out_dir, "compare_scatter_k1", dpi=DPI)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in cmp.runs:
        if r.main is None:
            continue
        density = r.summary["model"]["routing_density"] if r.kind == "moe" else 1.0
        shape = "o" if r.kind == "moe" else "s"
        points = [(headline.CORRECTED, r.main, dict(marker=shape)),
                  (headline.PAPER, r.main, dict(marker=shape, facecolors="none", edgecolors="grey")),
                  (headline.CORRECTED, "routed_tokens", dict(marker="x", color="black"))]
        at = None
        for stat, fam, kw in points:
            d = cmp.means(r, fam, stat) if fam in set(r.stats["family"]) else pd.DataFrame()
            d = d[d["k"] == 1] if not d.empty else d
            if d.empty:
                continue
            label = (f"{headline.BASELINES[fam]}: " if fam != r.main else "") + headline.LABELS[stat]
            y = float(d["mean"].iloc[0])
            ax.scatter([density], [y], label=label, **kw)
            at = y if at is None else at
        if at is not None:
            ax.annotate(r.name, (density, at), fontsize=7)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_xscale("log")
    ax.set_xlabel("routing density top_k / num_experts (dense = 1)")
    ax.set_ylabel("mean F1 at k=1")
    _footnote(fig, note)
    paths += save_figures(fig, out_dir, "compare_density_k1", dpi=DPI)

    moes = [r for r in cmp.runs if r.kind == "moe"
            and r.summary.get("experts_within_95_per_concept", {}).get("1")]
    if moes:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for r in moes:
            per = r.summary["experts_within_95_per_concept"]["1"]
            w = [v for c, v in per.items() if c in cmp.concepts]
            if w:
                ax.hist(w, bins=_count_bins(w), alpha=0.5, label=r.name)
        ax.set_xlabel("experts of the best layer within 95% of the best (k=1)\n"
                      "per concept, mean over each run's seeds")
        ax.set_ylabel("concepts")
        ax.legend(fontsize=7)
        _footnote(fig, note)
        paths += save_figures(fig, out_dir, "compare_experts_within_95", dpi=DPI)
    return paths
