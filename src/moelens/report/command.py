"""``moelens report RUN_DIR``: one self-contained HTML page of everything a run directory holds.

Thin: the typed config and a call to :func:`moelens.report.build.build`, which finds the
results, renders each section (or marks it "not run") and writes the page atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from moelens.errors import ConfigError


@dataclass
class ReportConfig:
    """Write the HTML report of a run directory."""

    POSITIONAL: ClassVar[str] = "run_dir"

    run_dir: Path | None = None
    """run directory holding analysis results (e.g. runs/quickstart); searched recursively"""
    out: Path | None = None
    """the HTML file to write (default: RUN_DIR/report.html)"""
    title: str = ""
    """page title (default: 'moelens report: ' and the run directory's name)"""
    quiet: bool = False
    """print nothing but errors"""

    def __post_init__(self) -> None:
        if self.out is not None and Path(self.out).is_dir():
            raise ConfigError(f"--out {self.out} is a directory; give the HTML file to write")


def run(cfg: ReportConfig) -> int:
    from moelens.report.build import build

    if cfg.run_dir is None:
        raise ConfigError("give the run directory: moelens report RUN_DIR")
    done = build(Path(cfg.run_dir), cfg.out, cfg.title)
    if not cfg.quiet:
        have = [k for k, v in done.sections.items() if v]
        missing = [k for k, v in done.sections.items() if not v]
        print(f"report: {done.path} ({', '.join(have)}"
              + (f"; not run: {', '.join(missing)}" if missing else "") + ")")
    return 0
