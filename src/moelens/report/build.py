"""Build the report of a run directory: find results, let each section read and render, write
one self-contained HTML file atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from moelens import __version__
from moelens.errors import DataError
from moelens.report import html
from moelens.report.results import Shared, walk
from moelens.report.sections import ORDER
from moelens.rundir import atomic_write_text


@dataclass
class Built:
    """What :func:`build` wrote and which sections had results."""

    path: Path
    sections: dict[str, bool] = field(default_factory=dict)
    """section id -> whether it had results (False: shown as "not run")"""
    shared: Shared | None = None


def collect(run_dir: Path) -> tuple[Shared, list[html.Section]]:
    """Read every result under ``run_dir`` and render the sections (no file written)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is not a directory; give a run directory (e.g. "
                        "runs/quickstart) that holds analysis results")
    shared = Shared(run_dir)
    found = walk(run_dir, {m.ID: m.detect for m in ORDER})
    if not any(found.values()):
        raise DataError(f"no results found under {run_dir}: run an analysis there first (e.g. "
                        "moelens quickstart, or moelens probe --out DIR/probe)")
    data = {m.ID: m.read(found[m.ID], shared) for m in ORDER}
    rendered = {m.ID: m.render(data[m.ID], shared) for m in ORDER}
    sections = [rendered[m.ID] for m in ORDER]
    return shared, sections


def build(run_dir: Path, out: Path | None = None, title: str = "") -> Built:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``)."""
    run_dir = Path(run_dir)
    shared, sections = collect(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    title = title or f"moelens report: {run_dir.resolve().name}"
    page = html.page(title, f"{len(shared.models)} models, {len(shared.experts)} experts · "
                            f"moelens {__version__}", sections)
    atomic_write_text(out, page)
    return Built(out, {s.id: not s.not_run for s in sections}, shared)
