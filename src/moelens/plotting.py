"""Headless figures: matplotlib on the Agg backend, and figure files written atomically.

Every part of moelens that draws (the analyses, the report, the experiments) runs on machines
without a display and must never leave a half-written PNG that looks finished, so the backend
choice and the temp-file-then-rename save live here once. matplotlib is imported only when a
figure is drawn, so importing moelens (and every ``--help``) stays light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moelens.rundir import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, with text drawn by matplotlib (no LaTeX) and
    kept as text in SVG files (searchable, accessible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["text.usetex"] = False
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def _write(fig: Any, path: Path, dpi: int, bbox_inches: str | None) -> Path:
    # The temporary name hides the extension, so the format is named from the final one.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=dpi, bbox_inches=bbox_inches)
    return path


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int,
                bbox_inches: str | None = "tight") -> Path:
    """Write ``fig`` to ``path`` (format from its extension; the folder is created) through a
    temporary file renamed into place, then close the figure. ``bbox_inches=None`` keeps the
    figure's own size (for figures laid out with ``tight_layout``)."""
    try:
        return _write(fig, Path(path), dpi, bbox_inches)
    finally:
        pyplot().close(fig)


def save_figures(fig: Any, out_dir: str | os.PathLike, name: str, *, dpi: int,
                 formats: Sequence[str] = ("png", "svg"),
                 bbox_inches: str | None = "tight") -> list[Path]:
    """Write ``fig`` once per format as ``out_dir/<name>.<format>``, each atomically, then close
    the figure; returns the paths in the order of ``formats``."""
    try:
        return [_write(fig, Path(out_dir) / f"{name}.{ext}", dpi, bbox_inches) for ext in formats]
    finally:
        pyplot().close(fig)
