"""Finding the results in a run directory, and what the sections share while they read them.

The report reads result files only (tidy tables, ``summary.json``, figures an analysis drew),
never an analysis's code: each section module says which directories are its own
(``detect``), and the walk below hands them over. Stores are not entered (they hold activations,
not results), nor are hidden, checkpoint or model directories.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SKIP_DIRS = {"ckpt", "parts", "shards", "model", "figures", "__pycache__", "cache"}
"""Directory names never searched for results (their parents are what matters)."""

MAX_DEPTH = 5


def read_json(path: Path) -> Any:
    """A JSON file, or None when it is missing or unreadable (a run may be half done)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_name(model_id: Any, fallback: str = "") -> str:
    """The short model name results are joined on.

    The same rule everywhere: a hub id ``owner/name`` stays whole, a local path becomes its last
    part, or the run folder's name for moelens's ``<run>/model`` layout (so a training run, the
    store captured from its model and every analysis of that store share one name).
    """
    text = str(model_id or "").strip()
    if not text:
        return fallback
    parts = [p for p in Path(text).parts if p not in ("/", ".", "..")]
    if len(parts) == 2 and not text.startswith((".", "/", "~")) and parts[-1] != "model":
        return text
    if not parts:
        return fallback
    if parts[-1] == "model" and len(parts) > 1:
        return parts[-2]
    return parts[-1]


def walk(root: Path, detectors: dict[str, Callable[[Path, set[str]], bool]]
         ) -> dict[str, list[Path]]:
    """Directories under ``root`` (itself included) claimed by each detector, in sorted order."""
    found: dict[str, list[Path]] = {name: [] for name in detectors}
    root = Path(root)
    base = len(root.parts)
    for here, dirs, files in os.walk(root):
        path = Path(here)
        names = set(files)
        depth = len(path.parts) - base
        if "manifest.json" in names and path != root:  # an activation store: no results inside
            dirs[:] = []
            continue
        for name, detect in detectors.items():
            if detect(path, names):
                found[name].append(path)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                         and depth < MAX_DEPTH)
    return found


@dataclass
class Expert:
    """What the sections know about one expert (a card of the expert browser)."""

    model: str
    layer: int
    expert: int
    label: str | None = None
    label_source: str = ""
    scores: dict[str, float | None] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)
    """top activating windows: {"tokens": [str], "acts": [float]}"""
    histogram: dict[str, list[float]] | None = None
    """{"edges": [...], "counts": [...]} of the expert's activations"""
    promoted: list[str] = field(default_factory=list)
    load: float | None = None
    concepts: list[tuple[str, float]] = field(default_factory=list)
    """concepts this expert probes best for: (concept, F1)"""
    facts: dict[str, Any] = field(default_factory=dict)
    """anything else worth a line on the card (specialization, board-state labels)"""


@dataclass
class Shared:
    """What the sections fill in for the comparison table and the expert browser."""

    root: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    """model name -> comparison column -> value"""
    experts: dict[tuple[str, int, int], Expert] = field(default_factory=dict)

    def model(self, name: str) -> dict[str, Any]:
        return self.models.setdefault(name, {})

    def expert(self, model: str, layer: int, expert: int) -> Expert:
        key = (model, int(layer), int(expert))
        if key not in self.experts:
            self.experts[key] = Expert(model, int(layer), int(expert))
        return self.experts[key]

    def expert_href(self, model: str, layer: int, expert: int) -> str:
        from moelens.report.html import slug

        return "#" + slug("expert", model, f"l{int(layer)}", f"e{int(expert)}")

    def rel(self, path: Path) -> str:
        """A result's path relative to the run directory (for captions)."""
        try:
            return str(Path(path).relative_to(self.root)) or "."
        except ValueError:
            return str(path)
