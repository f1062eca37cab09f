"""Where the quickstart puts things in its run directory (``cfg.out``)::

    data/chess/                 token data (train.bin, val.bin, games_val.txt)
    train-<model>/<model>/      a training run; its model in model/
    capture/<model>/            the activation store of each model on held-out games
    legal/legal_moves.csv       the legal-move rate of each model
    probe/<model>/, probe/compare/
    boardgame/                  board-state coverage and reconstruction of every model's units
    interpret/<model>/          auto-interpretation of each MoE's experts
    specialize/<model>/         routing statistics and specialization of each MoE
    report/report.html
    summary.json                stage wall times, settings, headline numbers, notes

A model's training run is named after the model, so that every result of it carries the model's
name (see the report's model-name rule in docs/interfaces.md).
"""

from __future__ import annotations

from pathlib import Path

MOE_PRESETS = ("switch", "moex", "ablation-relu-softmax", "ablation-gelu-sparsity")


def data_dir(root: Path) -> Path:
    return Path(root) / "data" / "chess"


def model_dir(root: Path, name: str) -> Path:
    return Path(root) / f"train-{name}" / name / "model"


def store_dir(root: Path, name: str) -> Path:
    return Path(root) / "capture" / name


def probe_dir(root: Path, name: str) -> Path:
    return Path(root) / "probe" / name


def report_path(root: Path) -> Path:
    return Path(root) / "report" / "report.html"
