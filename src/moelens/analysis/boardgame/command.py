"""``moelens boardgame``: coverage and board reconstruction of stores' units, and the board probe.

Thin: the typed config and its checks; :func:`write_run` does the work (labels of the games file,
cached; every store scored by :func:`moelens.analysis.boardgame.run.score_store`; the tidy
tables, ``summary.json`` and figures written into a run stage) and :func:`run` prints where the
results went.

Examples::

    moelens boardgame --store runs/dense/store runs/moex/store --games data/games_eval.txt
    moelens boardgame --store S --games G --layers 2 --spaces expert ffn --semantics gated
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moelens.errors import ConfigError

SEMANTICS = ("gated", "zero_filled")


@dataclass
class BoardgameConfig:
    store: list[Path] = field(default_factory=list)
    """activation store(s) captured on the games file, one per model (required)"""
    games: Path | None = None
    """games file the stores were captured on: one ';1.e4 e5 ...' game per line (required);
    its board labels are cached beside it"""
    names: list[str] = field(default_factory=list)
    """model names for the tables and figures, one per store (default: from each manifest)"""
    out: Path = Path("runs/boardgame")
    """output directory (a run stage: config.json, boardgame.csv, probe.csv, cells.json,
    summary.json, figures/)"""
    layers: list[int] = field(default_factory=list)
    """layers to score (default: every layer in the store)"""
    spaces: list[str] = field(default_factory=list)
    """unit spaces to score: expert, ffn, resid, shared, sae, expert_gate, expert_out (default:
    every space the layer has except the whole-expert ones)"""
    semantics: list[Literal["gated", "zero_filled"]] = field(
        default_factory=lambda: ["gated", "zero_filled"])
    """readings of expert neurons: gated (router weight x activation, MoE-X's z) and/or
    zero_filled (the ungated activation); both are 0 where the expert was not routed"""
    functions: list[str] = field(default_factory=list)
    """BSP functions to score (default: all 23)"""
    labelling: Literal["corrected", "paper"] = "corrected"
    """unit labelling for reconstruction: paper (precision >= 0.95, >= 10 true positives) or
    corrected (also significantly above the cell's base rate); both are in the table"""
    fit_fraction: float = 0.5
    """share of the games used to fit labels; the rest test them"""
    seed: int = 0
    """seed of the fitting/test split of the games and of the board probe"""
    max_positions: int = 20
    """scored positions per game (the "." characters, the position before White's move)"""
    max_chars: int = 256
    """only "." characters at an index below this count"""
    probe: bool = True
    """fit the linear board probe on the residual stream at every scored layer that has resid"""
    chunk_units: int = 256
    """units counted at a time (memory: chunk_units x 11 x cells floats)"""
    figures: bool = True
    """draw figures (PNG and SVG) into OUT/figures"""
    overwrite: bool = False
    """redo a finished run in OUT"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        if not 0.0 < self.fit_fraction < 1.0:
            raise ConfigError(f"--fit_fraction must lie strictly between 0 and 1, got "
                              f"{self.fit_fraction}")
        for name in ("max_positions", "max_chars", "chunk_units"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if any(l < 0 for l in self.layers):
            raise ConfigError(f"layers must be non-negative, got {self.layers}")
        if not self.semantics:
            raise ConfigError("--semantics needs at least one of gated, zero_filled")
        from moelens.analysis.boardgame.run import check_functions

        check_functions(self.functions)

    def check_inputs(self) -> None:
        """Required paths are given (checked at run time so presets may leave them out)."""
        if not self.store:
            raise ConfigError("no store given; pass --store DIR [DIR ...] (from 'moelens capture' "
                              "on a games file)")
        if self.games is None:
            raise ConfigError("no games file given; pass --games FILE, the games the stores were "
                              "captured on")
        if self.names and len(self.names) != len(self.store):
            raise ConfigError(f"{len(self.names)} --names for {len(self.store)} stores; give one "
                              "name per store or none")


def write_run(cfg: BoardgameConfig) -> dict[str, Any] | None:
    """Score every store and write the run stage; None when it was already done."""
    from moelens.analysis.boardgame import output
    from moelens.analysis.boardgame.run import score_store
    from moelens.data.chess.labels import labels_for_file, read_games
    from moelens.rundir import Stage
    from moelens.store import ActivationStore

    cfg.check_inputs()
    stores = [ActivationStore.open(p) for p in cfg.store]  # every store checked before work
    stage = Stage(Path(cfg.out))
    output.check_rerun(stage, cfg)
    if not stage.begin(cfg, overwrite=cfg.overwrite):
        return None
    games = read_games(cfg.games)
    labels = labels_for_file(cfg.games, max_positions=cfg.max_positions,
                             max_chars=cfg.max_chars)
    results = [score_store(s, games, labels, cfg, cfg.names[i] if cfg.names else None)
               for i, s in enumerate(stores)]
    summary = output.write_results(Path(cfg.out), results, cfg.figures)
    stage.finish(summary)
    return summary


def run(cfg: BoardgameConfig) -> int:
    """Run (or skip) the scoring and say where the results are."""
    summary = write_run(cfg)
    if summary is None:
        print(f"boardgame: {cfg.out} is already done; pass --overwrite to redo it")
        return 0
    for line in summary["headline_lines"]:
        print(line)
    skipped = summary["skipped_games"]
    if skipped:
        print(f"boardgame: {skipped} illegal game(s) in {cfg.games} were skipped")
    print(f"boardgame: wrote {Path(cfg.out) / 'boardgame.csv'} ({summary['rows']} rows)"
          + (f" and figures in {Path(cfg.out) / 'figures'}" if cfg.figures else ""))
    return 0

