"""What was run: the stages of a pipeline run (``moelens quickstart``) with their wall times,
and the notes the run left for its reader (what a longer run would change).

Reads the run directory's own ``summary.json`` when it is a pipeline summary (``stages``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.report.html import Section, Table, esc, paragraph
from moelens.report.results import Shared, read_json

ID, TITLE = "overview", "Run"


def detect(path: Path, files: set[str]) -> bool:
    if "summary.json" not in files:
        return False
    return isinstance((read_json(path / "summary.json") or {}).get("stages"), dict)


def read(dirs: list[Path], shared: Shared) -> dict[str, Any] | None:
    own = [d for d in dirs if d == shared.root] or dirs[:1]
    return read_json(own[0] / "summary.json") if own else None


def render(summary: dict[str, Any] | None, shared: Shared) -> Section:
    if not summary:
        return Section(ID, TITLE, body=paragraph(
            f"Results found under {shared.root.name}; no pipeline summary (summary.json with "
            "stages), so no stage timings."))
    stages = summary.get("stages") or {}
    rows = [[name, (s or {}).get("wall_seconds")] for name, s in stages.items()]
    total = summary.get("total_wall_seconds")
    body = [paragraph(f"{len(stages)} stages, {float(total or 0):.0f} s of computation in all "
                      "(each stage timed when it ran; a rerun skips finished stages).")]
    for note in summary.get("notes") or []:
        body.append(paragraph(str(note), "note"))
    body.append(Table("stages", ["stage", "wall seconds"], rows, page_size=40).render())
    settings = summary.get("settings") or {}
    if settings:
        items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in settings.items())
        body.append(f'<h3>Settings</h3><dl class="kv">{items}</dl>')
    return Section(ID, TITLE, body="".join(body))
