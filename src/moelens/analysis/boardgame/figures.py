"""Figures of a boardgame run (matplotlib Agg, no LaTeX; each saved as PNG and SVG).

- ``functions_L<layer>``: coverage (top) and reconstruction (bottom) per BSP function, one bar
  per scored series (model · space · semantics) side by side; coverage's chance level as a black
  tick on each bar, reconstruction's always-on guess likewise.
- ``board_L<layer>``: one 8×8 board per series for the headline function: colour = the best
  unit's F1 for the square's best-covered piece class, number = piece classes of the square that
  at least one labelled unit predicts (which squares the units cover).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from moelens.plotting import pyplot, save_figures

FILES = "abcdefgh"
DPI = 110


def series_label(row: dict[str, Any]) -> str:
    sem = f" ({row['semantics']})" if row.get("semantics") else ""
    return f"{row['model']} · {row['space']}{sem}"


def _functions_figure(plt, rows: list[dict[str, Any]], layer: int):
    functions = list(dict.fromkeys(r["function"] for r in rows))
    series = list(dict.fromkeys(series_label(r) for r in rows))
    at = {(series_label(r), r["function"]): r for r in rows}
    width = 0.8 / len(series)
    width_in = min(18.0, 6.0 + 0.12 * len(functions) * len(series))
    fig, axes = plt.subplots(2, 1, figsize=(width_in, 7), sharex=True)
    x = np.arange(len(functions))
    for panel, (ax, value, chance, title) in enumerate(zip(
            axes, ("coverage", "reconstruction"), ("chance_coverage", "chance_reconstruction"),
            ("coverage (tick: chance level)", "reconstruction (tick: always-on guess)"))):
        for i, s in enumerate(series):
            vals = [at[(s, f)][value] if (s, f) in at else np.nan for f in functions]
            ticks = [at[(s, f)][chance] if (s, f) in at else np.nan for f in functions]
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, vals, width, label=s if panel == 0 else None)
            ax.scatter(pos, ticks, marker="_", color="black", s=60, zorder=3)
        ax.set_ylabel(title)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(functions, rotation=60, ha="right", fontsize=8)
    axes[0].legend(fontsize=7, ncol=min(3, len(series)), loc="upper right")
    axes[0].set_title(f"board-state properties at layer {layer}")
    return fig


def _board_figure(plt, boards: list[tuple[str, dict[str, Any]]], layer: int):
    from moelens.analysis.boardgame.run import per_square

    n = len(boards)
    cols = min(n, 4)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols + 1.0, 3.3 * nrows),
                             squeeze=False, layout="constrained")
    image = None
    for ax, (label, cells) in zip(axes.flat, boards):
        f1, covered = per_square(cells)
        image = ax.imshow(f1, origin="lower", vmin=0, vmax=1, cmap="viridis")
        for r in range(8):
            for c in range(8):
                if covered[r, c]:
                    ax.text(c, r, str(covered[r, c]), ha="center", va="center", fontsize=7,
                            color="white" if f1[r, c] < 0.6 else "black")
        ax.set_xticks(range(8))
        ax.set_xticklabels(list(FILES), fontsize=7)
        ax.set_yticks(range(8))
        ax.set_yticklabels([str(i + 1) for i in range(8)], fontsize=7)
        ax.set_title(label, fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.7, label="best unit F1 (best piece class)")
    fig.suptitle(f"layer {layer}: squares covered (number: piece classes with a labelled unit)",
                 fontsize=9)
    return fig


def draw_all(out_dir: Path, rows: list[dict[str, Any]], cells: dict[str, dict[str, Any]]
             ) -> list[Path]:
    """Every figure of a run; returns the written paths."""
    plt = pyplot()
    paths: list[Path] = []
    for layer in sorted({r["layer"] for r in rows}):
        mine = [r for r in rows if r["layer"] == layer]
        fig = _functions_figure(plt, mine, layer)
        paths += save_figures(fig, out_dir, f"functions_L{layer}", dpi=DPI)
        boards = []
        for model, per_key in cells.items():
            for key, rec in per_key.items():
                m = re.fullmatch(r"L(\d+)/(\w+)(?:/(\w+))?", key)
                if m and int(m.group(1)) == layer:
                    sem = f" ({m.group(3)})" if m.group(3) else ""
                    boards.append((f"{model} · {m.group(2)}{sem}", rec))
        if boards:
            fig = _board_figure(plt, boards, layer)
            paths += save_figures(fig, out_dir, f"board_L{layer}", dpi=DPI)
    return paths
