"""Helpers for testing the CLI as a user sees it (importable as ``clitools`` from any test).

They live in their own module rather than in ``conftest.py`` because several test folders have
their own ``conftest.py``; ``from conftest import ...`` would then pick whichever was imported
first.

:func:`run_cli` runs ``python -m moelens`` in a subprocess that imports moelens from this
checkout's ``src`` (not from whatever is installed), so worktrees test their own code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m moelens ARGS`` and return the completed process (text mode)."""
    return subprocess.run([sys.executable, "-m", "moelens", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout, env=cli_env(env))


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: exit 2, exactly one line on stderr, no traceback, mentioning ``needles``."""
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]
