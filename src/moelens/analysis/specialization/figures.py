"""Figures of ``moelens specialize`` (matplotlib Agg, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moelens.plotting import pyplot, save_figure


DPI = 110


def specialization_vs_layer(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Mean specialization over experts vs layer, one line per K, one panel per view."""
    plt = pyplot()
    views = sorted({r["view"] for r in rows})
    fig, axes = plt.subplots(1, len(views), figsize=(4.2 * len(views), 3.2), squeeze=False)
    for ax, view in zip(axes[0], views):
        for i, k in enumerate(sorted({r["k"] for r in rows})):
            sel = [r for r in rows if r["view"] == view and r["k"] == k and r["specialization"] == r["specialization"]]
            layers = sorted({r["layer"] for r in sel})
            means = [np.mean([r["specialization"] for r in sel if r["layer"] == l]) for l in layers]
            ax.plot(layers, means, marker="o", markersize=3, color=f"C{i}", label=f"K={k}")
        ax.set_xlabel("layer")
        ax.set_ylabel("specialization (JSD − null, bits)")
        ax.set_title(f"{view} view")
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=DPI)


def heatmap(matrix: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str,
            yticks: Sequence[Any] | None = None) -> Path:
    plt = pyplot()
    h, w = matrix.shape
    fig, ax = plt.subplots(figsize=(max(3.5, 0.18 * w + 2), max(2.5, 0.18 * h + 1.5)))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis")
    if yticks is not None:
        ax.set_yticks(range(len(yticks)), [str(t) for t in yticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    return save_figure(fig, path, dpi=DPI)


def pathways(layers: Sequence[int], probs: dict[tuple[int, int], np.ndarray], path: Path, top: int = 40) -> Path:
    """Routing pathways: experts as nodes in one column per layer, the ``top`` strongest
    transitions P(expert j at the next layer | expert i) of each layer pair as lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(layers) + 2, 4.5))
    for col, (a, b) in enumerate(zip(layers, layers[1:])):
        p = probs[(a, b)]
        flat = np.argsort(p, axis=None)[::-1][:top]
        for idx in flat:
            i, j = np.unravel_index(idx, p.shape)
            ax.plot([col, col + 1], [i / max(p.shape[0] - 1, 1), j / max(p.shape[1] - 1, 1)],
                    color="C0", alpha=min(1.0, 0.15 + float(p[i, j])), linewidth=0.5 + 4 * float(p[i, j]))
    for col, l in enumerate(layers):
        ax.scatter([col] * 2, [0, 1], s=4, color="0.3")
    ax.set_xticks(range(len(layers)), [f"layer {l}" for l in layers])
    ax.set_yticks([0, 1], ["expert 0", "last expert"])
    ax.set_title(f"routing pathways: the {top} strongest transitions per layer pair (width ∝ P)")
    return save_figure(fig, path, dpi=DPI)
