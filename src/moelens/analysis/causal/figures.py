"""Figures of the causal commands (matplotlib Agg, PNG): the ablation heatmap, knowledge-control
curves and the trigger test's rank table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moelens.plotting import pyplot, save_figure


DPI = 120


def ablation_heatmap(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Δ loss (all domains) per layer × expert; untested cells are left blank (grey)."""
    plt = pyplot()
    rows = [r for r in rows if r["domain"] == "all"]
    layers = sorted({r["layer"] for r in rows})
    n_exp = max(r["expert"] for r in rows) + 1
    grid = np.full((len(layers), n_exp), np.nan)
    for r in rows:
        grid[layers.index(r["layer"]), r["expert"]] = r["delta_loss"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * n_exp + 2), 0.4 * len(layers) + 1.5))
    ax.set_facecolor("0.85")
    lim = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_yticks(range(len(layers)), [str(l) for l in layers])
    ax.set_xlabel("expert")
    ax.set_ylabel("layer")
    ax.set_title("Δ loss when the expert is ablated (grey: never routed, untested)")
    fig.colorbar(im, ax=ax, label="Δ cross-entropy (nats)")
    return save_figure(fig, path, dpi=DPI)


def knowledge_curve(rows: Sequence[dict[str, Any]], target: str, path: Path) -> Path:
    """Δ loss vs n on the target domain and the others: top-n ranked (solid) vs random (dashed,
    mean over draws)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    domains = sorted({r["domain"] for r in rows})
    for i, dom in enumerate(domains):
        color = f"C{i}"
        for selection, style in (("ranked", "-"), ("random", "--")):
            sel = [r for r in rows if r["target_domain"] == target and r["domain"] == dom
                   and r["selection"] == selection]
            ns = sorted({r["n"] for r in sel})
            means = [np.mean([r["delta_loss"] for r in sel if r["n"] == n]) for n in ns]
            width = 2.2 if dom == target else 1.0
            ax.plot(ns, means, style, color=color, marker="o", markersize=3, linewidth=width,
                    label=f"{dom} ({'top-n for ' + target if selection == 'ranked' else 'random n'})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("experts ablated (n)")
    ax.set_ylabel("Δ loss (nats)")
    ax.set_title(f"knowledge control: {target}")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_figure(fig, path, dpi=DPI)


def rank_bars(table: Sequence[dict[str, Any]], categories: Sequence[str], path: Path) -> Path:
    """Stacked shares of each rank category for matched vs control prompts."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    left = np.zeros(len(table))
    labels = [t["kind"] for t in table]
    for i, cat in enumerate(categories):
        vals = np.array([t[cat] if t["n"] else 0.0 for t in table])
        ax.barh(labels, vals, left=left, color=f"C{i}", label=cat)
        left += vals
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of (prompt, expert) tests")
    ax.set_title("trigger → target: rank of the tested expert")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_figure(fig, path, dpi=DPI)
