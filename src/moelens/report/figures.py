"""Figures of the report: matplotlib charts as PNG data URIs, the figures analyses already drew,
and small inline SVG histograms for the expert cards (numbers only, no text from the data)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable, Sequence

from moelens.plotting import pyplot
from moelens.report.html import Figure, data_uri

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def png(fig: Any) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return data_uri(buf.getvalue(), "image/png")


def from_file(path: Path, caption: str) -> Figure | None:
    """A figure an analysis saved (PNG preferred); None if it is not there."""
    path = Path(path)
    if path.suffix.lower() not in MIME or not path.is_file():
        return None
    return Figure(data_uri(path.read_bytes(), MIME[path.suffix.lower()]), caption)


def figures_in(folder: Path, captions: dict[str, str] | None = None,
               default_caption: str = "") -> list[Figure]:
    """Every figure of a folder, one format per name (PNG over SVG), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    by_stem: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".png", ".svg") and (p.stem not in by_stem or p.suffix == ".png"):
            by_stem[p.stem] = p
    out = []
    for stem, p in sorted(by_stem.items()):
        caption = (captions or {}).get(stem) or default_caption or stem.replace("_", " ")
        fig = from_file(p, caption)
        if fig is not None:
            out.append(fig)
    return out


def lines(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
          ylabel: str, title: str, logx: bool = False) -> str:
    """One line per named series (x, y) -> PNG data URI."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), marker="o", markersize=2.5, linewidth=1.4, label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)


def grouped_bars(groups: list[str], series: dict[str, list[float | None]], ylabel: str,
                 title: str) -> str:
    """Bars per group (x) for each named series (e.g. ours vs the paper) -> PNG data URI."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    n = max(len(series), 1)
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def histograms(series: dict[str, list[float]], xlabel: str, ylabel: str) -> str:
    """Overlaid histograms, one per named series, on shared bins -> PNG data URI."""
    plt = pyplot()
    values = [v for vs in series.values() for v in vs]
    lo, hi = min(values), max(values)
    bins = 20 if hi > lo else 1
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for name, vs in series.items():
        ax.hist(vs, bins=bins, range=(lo, hi if hi > lo else lo + 1e-9), alpha=0.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def svg_histogram(counts: Iterable[float], width: int = 220, height: int = 48) -> str:
    """A bar histogram as inline SVG: bar heights relative to the largest count."""
    counts = [max(float(c), 0.0) for c in counts]
    if not counts or max(counts) <= 0:
        return ""
    top = max(counts)
    bar = width / len(counts)
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - c / top * height:.1f}" '
        f'width="{max(bar - 1, 1):.1f}" height="{c / top * height:.1f}" fill="#2f5fb3"/>'
        for i, c in enumerate(counts))
    return (f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img">{rects}</svg>')
