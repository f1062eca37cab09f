"""Wall time of the default ``moelens quickstart`` from an empty run directory.

Claim checked: the whole quickstart (games, three models, capture, probing, the analyses, the
report) finishes within 15 minutes on 2 CPU cores without Stockfish (goal: 10). The baseline is
that bar: ``quickstart_vs_15_min_bar`` is the wall time over 900 s (below 1 passes). Run it as a
new user would, in a fresh process (imports included), from the repository root:

    PYTHONPATH=src python benchmarks/quickstart.py [--keep DIR] [extra quickstart flags ...]

``--keep DIR`` runs into ``DIR`` (which must not exist yet) and keeps it, report included.

Prints ``name: value`` lines: the wall time, each stage's seconds (from ``summary.json``), the
load average before and after (other work on a shared machine slows every stage), and the
headline numbers of the run, so a slow figure can be told apart from a slow machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAR_SECONDS = 15 * 60
GOAL_SECONDS = 10 * 60


def main(extra: list[str]) -> int:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if shutil.which("stockfish") or Path("/usr/games/stockfish").exists():
        extra = ["--games.player", "builtin", *extra]  # the bar is for a machine without it
    keep = None
    if extra[:1] == ["--keep"] and len(extra) > 1:
        keep, extra = Path(extra[1]), extra[2:]
        if keep.exists():
            print(f"--keep {keep}: the run directory must not exist yet", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="moelens-quickstart-bench-"))
    out = keep or work / "quickstart"
    print(f"cpus: {os.cpu_count()}")
    print(f"load_average_before: {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "moelens", "quickstart", "--out", str(out),
                           "--quiet", *extra], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(f"load_average_after: {os.getloadavg()[0]:.2f}")
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    summary = json.loads((out / "summary.json").read_text())
    print(f"quickstart_wall_seconds: {wall:.1f}")
    for name, stage in summary["stages"].items():
        print(f"quickstart_stage_{name.replace('-', '_')}_seconds: {stage['wall_seconds']:.1f}")
    print(f"quickstart_vs_15_min_bar: {wall / BAR_SECONDS:.3f}")
    print(f"quickstart_vs_10_min_goal: {wall / GOAL_SECONDS:.3f}")
    for row in summary.get("headline", []):
        cells = ", ".join(f"{k}={v:.3f}" for k, v in row.items()
                          if isinstance(v, float) and not k.startswith("paper_"))
        print(f"headline_{row['model']}: {cells}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
