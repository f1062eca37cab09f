"""The tidy results table: one row per (concept, layer, unit, control, k, selection, seed).

Written whole, atomically, as parquet and csv (a rerun replaces both; rows are never appended
to an old table). Columns beyond the issue's list: ``control`` (which unit or baseline a row is,
see :mod:`.dataset`), ``fitter`` (``newton`` = fast path, ``saga`` = the paper's reference) and
``converged`` (whether that fit passed the relative gradient test of :mod:`.optimality` where
it stopped; saga often stops early, far from the optimum, on small activations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moelens.rundir import atomic_path

COLUMNS = ["model", "concept", "group", "layer", "space", "expert", "control", "k", "selection",
           "f1", "precision", "recall", "n_pos", "n_neg", "status", "semantics", "seed",
           "fitter", "converged"]
"""Column order of ``probe.parquet`` / ``probe.csv``."""

TABLE_NAME = "probe"


def to_frame(records: list[dict[str, Any]], model: str, semantics: str) -> pd.DataFrame:
    """Records from :func:`moelens.analysis.probing.core.probe_units` -> the tidy table."""
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=COLUMNS)
    df["model"] = model
    df["semantics"] = semantics
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan
    df = df[COLUMNS]
    df["converged"] = df["converged"].astype("boolean")
    for col in ("layer", "expert", "k", "n_pos", "n_neg", "seed"):
        df[col] = df[col].astype("int64")
    for col in ("f1", "precision", "recall"):
        df[col] = df[col].astype("float64")
    return df.reset_index(drop=True)


def write_table(df: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """Atomically (re)write ``probe.parquet`` and ``probe.csv`` in ``out_dir``."""
    out_dir = Path(out_dir)
    pq, csv = out_dir / f"{TABLE_NAME}.parquet", out_dir / f"{TABLE_NAME}.csv"
    with atomic_path(pq) as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    return pq, csv


def read_table(out_dir: Path) -> pd.DataFrame:
    """The table of a finished probe run."""
    return pd.read_parquet(Path(out_dir) / f"{TABLE_NAME}.parquet")
