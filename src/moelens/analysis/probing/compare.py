"""Comparing finished probe runs (``--compare``) on the concepts they all have.

Each run averages over its own concepts, and runs leave out different ones (an MoE run loses a
concept when no expert sees enough positives: castling, mate and promotion in a chess MoE-X,
only mate in its dense twin). Means drawn side by side must be over the same concepts, so the
comparison recomputes every mean from the runs' tables over the concepts every run has a result
for (registry duplicates counted once), and names the ones it left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from moelens.analysis.probing import controls, headline, table
from moelens.errors import DataError
from moelens.rundir import atomic_write_json


@dataclass
class RunView:
    """One finished run: its summary and its per-concept statistics (duplicates removed)."""

    path: Path
    summary: dict[str, Any]
    stats: pd.DataFrame = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.summary["model"]["name"])

    @property
    def kind(self) -> str:
        return str(self.summary["model"]["kind"])

    @property
    def main(self) -> str | None:
        return self.summary.get("main_family")

    def concepts(self) -> set[str]:
        """Concepts with a result of the run's own units."""
        s = self.stats[self.stats["family"] == self.main]
        return set(s.loc[s[headline.PAPER].notna(), "concept"])


@dataclass
class Comparison:
    runs: list[RunView]
    concepts: list[str]
    """concepts every run has a result for: every mean of the comparison is over these"""
    left_out: dict[str, list[str]]
    """concept -> the runs (by name) that have no result for it"""
    n_boot: int = 1000
    _cache: dict[tuple[int, str], list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def means(self, run: RunView, family: str, statistic: str) -> pd.DataFrame:
        """k, mean, ci_low, ci_high over the shared concepts (seeds averaged per concept)."""
        key = (id(run), family)
        if key not in self._cache:
            s = run.stats[(run.stats["family"] == family) & run.stats["concept"].isin(self.concepts)]
            self._cache[key] = controls.aggregate(s, n_boot=self.n_boot, seed=0)
        recs = [r for r in self._cache[key]
                if r["seed"] == "all" and r["statistic"] == statistic and r["mean"] is not None]
        return pd.DataFrame(recs).sort_values("k") if recs else pd.DataFrame()

    def note(self) -> str:
        """The figure footnote and stdout line: what the means are over, what was left out."""
        head = f"means over the {len(self.concepts)} concepts every run has"
        if not self.left_out:
            return head
        gone = "; ".join(f"{c} (none in {', '.join(r)})" for c, r in sorted(self.left_out.items()))
        return f"{head}; left out: {gone}"


def load(run_dir: Path) -> RunView:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        raise DataError(f"{run_dir} is not a finished probe run (no summary.json); run 'moelens probe' there first")
    summ = json.loads(path.read_text())
    stats = controls.concept_stats(table.read_table(run_dir))
    stats = stats[~stats["concept"].isin(list(summ.get("duplicates", {})))]
    return RunView(Path(run_dir), summ, stats)


def compare(run_dirs: list[Path], n_boot: int = 1000) -> Comparison:
    runs = [load(d) for d in run_dirs]
    have = [r.concepts() for r in runs]
    everything = set().union(*have)
    order = [c for r in runs for c in r.stats["concept"].drop_duplicates() if c in everything]
    order = list(dict.fromkeys(order))
    shared = [c for c in order if all(c in h for h in have)]
    left_out = {c: [r.name for r, h in zip(runs, have) if c not in h] for c in order if c not in shared}
    if not shared:
        raise DataError("the runs to compare have no concept with a result in all of them; "
                        "probe the same concepts in each run")
    return Comparison(runs, shared, left_out, n_boot)


def headline_rows(cmp: Comparison) -> dict[str, list[dict[str, Any]]]:
    """Each run's headline rows (see :mod:`.headline`) over the shared concepts."""
    rows = {}
    for r in cmp.runs:
        fams = [r.main] + [f for f in headline.BASELINES if f in set(r.stats["family"])]
        rows[r.name] = [headline.row(f, r.main, st,
                                     {str(int(k)): m for k, m in zip(d["k"], d["mean"])})
                        for f in fams for st in (headline.CORRECTED, headline.PAPER)
                        if not (d := cmp.means(r, f, st)).empty]
    return rows


def write(cmp: Comparison, out_dir: Path, rows: dict[str, list[dict[str, Any]]]) -> Path:
    """``compare.json``: the shared concepts, what was left out, each run's headline rows."""
    path = Path(out_dir) / "compare.json"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"runs": [str(r.path) for r in cmp.runs], "concepts": cmp.concepts,
                             "left_out": cmp.left_out, "note": cmp.note(), "headline": rows})
    return path
