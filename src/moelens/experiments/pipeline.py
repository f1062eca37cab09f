"""A run made of resumable stages: what ``moelens quickstart`` and ``moelens experiment …`` share.

An experiment is a list of :class:`Step` s, each owning one stage directory
``<run>/<step.name>/`` (see :class:`moelens.rundir.Stage`). :func:`run_pipeline` walks them in
order and, for each, prints one line saying what it does, then either

- skips it, when its ``DONE`` marker exists and its recorded settings are those asked for now;
- refuses, when it is done but was made with other settings (a silent reuse would mix two
  experiments in one table), naming the stage and asking for ``--overwrite`` or another run
  directory;
- or runs it. A step's function receives its stage directory and resumes whatever an interrupted
  earlier attempt left there (a killed training run continues from its checkpoint, a capture from
  its last shard); only when it returns is the stage marked done. An unfinished stage left by
  an attempt with other settings is cleared first.

Each stage's wall time is kept in its marker, so ``summary.json`` (written after every stage, so a
killed run still has one) reports the time of each stage as it was first computed, not the ~0 s of
a skip.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from moelens.config import to_dict
from moelens.errors import ConfigError
from moelens.rundir import DONE_MARKER, Stage, atomic_write_json


@dataclass(frozen=True)
class Step:
    """One stage of an experiment."""

    name: str
    """Stage directory name under the run directory (also the key in ``summary.json``)."""
    title: str
    """What the stage does, in a few words (printed on its progress line)."""
    run: Callable[[Path], dict[str, Any] | None]
    """Does the work in the given stage directory, resuming what is already there; returns the
    stage's headline numbers (JSON-safe) or None."""
    settings: Any = None
    """Everything that determines the stage's result (a config dataclass or a dict); a done stage
    is reused only when these are unchanged."""


def _recorded_settings(stage: Stage) -> Any:
    try:
        return json.loads((stage.path / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None


def _marker(stage: Stage) -> dict[str, Any]:
    try:
        return json.loads((stage.path / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return {}


def run_pipeline(root: Path, steps: list[Step], *, overwrite: bool = False,
                 quiet: bool = False, echo: Callable[[str], None] = print,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) every step under ``root``; returns what ``summary.json`` holds.

    ``overwrite`` redoes every stage from scratch. Progress lines go to ``echo`` unless ``quiet``.
    ``extra`` (JSON-safe) is written into ``summary.json`` beside the stages from the start, so
    that later stages (a report) can read it.
    """
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"step names must be unique: {names}")
    root = Path(root)
    summary: dict[str, Any] = {"stages": {}, "total_wall_seconds": 0.0, **(extra or {})}
    say = (lambda _msg: None) if quiet else echo
    for i, step in enumerate(steps, 1):
        stage = Stage(root / step.name)
        wanted = to_dict(step.settings)
        head = f"[{i}/{len(steps)}] {step.title}"
        if stage.done and not overwrite and _recorded_settings(stage) != wanted:
            raise ConfigError(f"stage {step.name!r} in {root} was made with other settings; rerun "
                              f"with --overwrite to redo the run, or choose another run directory")
        if not stage.done and _recorded_settings(stage) not in (None, wanted):
            shutil.rmtree(stage.path)  # an unfinished attempt with other settings is of no use
        if not stage.begin(step.settings, overwrite=overwrite):
            marker = _marker(stage)
            say(f"{head} ... done before ({marker.get('wall_seconds', 0.0):.1f} s), skipped")
        else:
            say(f"{head} ...")
            start = time.perf_counter()
            result = step.run(stage.path) or {}
            seconds = time.perf_counter() - start
            stage.finish({"wall_seconds": seconds, "summary": result})
            marker = _marker(stage)
            say(f"{head} ... done in {seconds:.1f} s")
        summary["stages"][step.name] = {"wall_seconds": marker.get("wall_seconds", 0.0),
                                        "summary": marker.get("summary", {})}
        summary["total_wall_seconds"] = sum(s["wall_seconds"] for s in summary["stages"].values())
        atomic_write_json(root / "summary.json", summary)
    return summary
