"""The quickstart's stages that score the trained models and their captured units, each a call
into the library that owns the work:

- ``legal``: each model's legal-move rate on held-out game prefixes
  (:func:`moelens.training.legal_moves.legal_move_rate`), written to ``legal/legal_moves.csv``;
- ``boardgame``: board-state coverage and reconstruction of every model's units (dense MLP
  neurons, expert neurons in MoE-X's gated wide view) and the residual board probe on the
  held-out games they were captured on, written as ``moelens boardgame`` writes its tables;
- ``interpret``: every expert of each MoE labelled by the offline ``rules`` explainer and
  scored as ``moelens interpret`` does (``interpret/<model>/``), after its promoted tokens
  (``moelens lens``, into the store);
- ``specialize``: routing statistics and specialization of each MoE (``moelens specialize``).

Every analysis writes its own run stage, which the report reads; a finished analysis run (one
model's interpretation, say) is skipped when an interrupted stage is rerun.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from moelens.experiments.pipeline import Step
from moelens.experiments.quickstart_layout import MOE_PRESETS, data_dir, model_dir, store_dir
from moelens.report.results import read_json
from moelens.rundir import atomic_path


def moe_models(cfg: Any) -> list[str]:
    return [n for n in cfg.model.models if n in MOE_PRESETS]


def _legal(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(stage: Path) -> dict[str, Any]:
        import pandas as pd

        from moelens.data.chess.labels import read_games
        from moelens.models.saved import load_saved_model
        from moelens.training.legal_moves import legal_move_rate

        games = read_games(data_dir(root) / "games_val.txt")
        device = "cuda" if cfg.train.device == "cuda" else "cpu"
        rows = []
        for name in tqdm(cfg.model.models, desc="legal moves", unit="model", disable=cfg.quiet,
                         file=sys.stderr):
            model = load_saved_model(model_dir(root, name)).eval().to(device)
            res = legal_move_rate(model, games, cfg.board.legal_prompts, seed=cfg.seed,
                                  max_chars=cfg.train.ctx, device=device)
            rows.append({"model": name, **res})
        with atomic_path(stage / "legal_moves.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        return {r["model"]: r["legal_move_rate"] for r in rows}
    return run


def _boardgame(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    """Each model's main units (MLP neurons; expert neurons in the asked readings) scored at
    every layer and the residual board probe at the middle layer (the one the comparison
    reads), all models in one set of the tables ``moelens boardgame`` writes. Only the main
    units are scored: the residual stream's own coverage costs as much again, and the probe is
    the better reading of it."""
    def run(stage: Path) -> dict[str, Any]:
        from moelens.analysis.boardgame import output
        from moelens.analysis.boardgame.command import BoardgameConfig
        from moelens.analysis.boardgame.run import probe_layers, score_store
        from moelens.analysis.boardgame.units import match_positions
        from moelens.data.chess.labels import labels_for_file, read_games
        from moelens.store import ActivationStore

        b = cfg.board
        games_file = data_dir(root) / "games_val.txt"
        games = read_games(games_file)
        labels = labels_for_file(games_file, max_positions=b.max_positions)
        results = []
        for name in cfg.model.models:
            store = ActivationStore.open(store_dir(root, name))
            space = "expert" if name in MOE_PRESETS else "ffn"
            bg = BoardgameConfig(store=[store_dir(root, name)], games=games_file, names=[name],
                                 layers=[l for l in store.layers if space in store.spaces(l)],
                                 spaces=[space], semantics=list(b.semantics),
                                 max_positions=b.max_positions, probe=False, seed=cfg.seed,
                                 quiet=cfg.quiet)
            res = score_store(store, games, labels, bg, name)
            if b.probe:
                pos = match_positions(store, games, labels, bg.fit_fraction, bg.seed)
                middle = [list(store.layers)[len(store.layers) // 2]]  # what the table reads
                res.probe_rows = probe_layers(store, middle, labels, pos, cfg.seed, name,
                                              b.probe_steps)
            results.append(res)
        output.write_results(stage, results, figures=True)
        return {"positions": {r.model: r.positions.get("n_test") for r in results}}
    return run


def _interpret(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(stage: Path) -> dict[str, Any]:
        from moelens.analysis.autointerp.command import InterpretConfig
        from moelens.analysis.autointerp.run import interpret
        from moelens.capture import lens

        a = cfg.interpret
        out = {}
        for name in moe_models(cfg):
            store = store_dir(root, name)
            if a.lens and not (store / "lens.json").exists():
                lens.run(lens.LensConfig(model=str(model_dir(root, name)), store=store,
                                         quiet=True))
            interpret(InterpretConfig(
                store=store, out=stage / name, level="expert", explainer="rules",
                window=a.window, scorers=list(a.scorers), n_explain=a.n_explain, n_test=a.n_test,
                n_negative=a.n_negative, rules_concepts=["chess"], bootstrap=a.bootstrap,
                seed=cfg.seed, quiet=cfg.quiet))
            done = read_json(stage / name / "summary.json") or {}  # also when done before
            table = {(r["scorer"], r["metric"]): r["mean"] for r in done.get("table") or []}
            out[name] = table.get(("detection", "balanced_accuracy"))
        return out
    return run


def _specialize(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(_stage: Path) -> dict[str, Any]:
        from moelens.analysis.specialization.command import SpecializeConfig
        from moelens.analysis.specialization.run import specialize

        out = {}
        for name in moe_models(cfg):
            res = specialize(SpecializeConfig(
                store=store_dir(root, name), model=str(model_dir(root, name)),
                ks=list(cfg.specialize.ks), seed=cfg.seed, out=root / "specialize" / name,
                quiet=cfg.quiet))
            out[name] = (res.summary or {}).get("mean_specialization")
        return out
    return run


def legal_step(cfg: Any, models: dict[str, Any]) -> Step:
    """The legal-move stage (it needs the trained models, not the stores)."""
    return Step("legal", "legal-move rate of each model", _legal(cfg, Path(cfg.out)),
                {**models, "legal_prompts": cfg.board.legal_prompts})


def steps(cfg: Any, captured: dict[str, Any]) -> list[Step]:
    """The analysis stages after probing, each with the settings that decide its result."""
    root = Path(cfg.out)
    asdict = dataclasses.asdict
    board = {k: v for k, v in asdict(cfg.board).items() if k != "legal_prompts"}
    out = [Step("boardgame", "board-state coverage and reconstruction of every model's units",
                _boardgame(cfg, root), {**captured, "board": board})]
    if not moe_models(cfg):
        return out
    return out + [
        Step("interpret", "auto-interpretation of the experts (rules explainer)",
             _interpret(cfg, root), {**captured, "interpret": asdict(cfg.interpret)}),
        Step("specialize", "specialization and routing statistics", _specialize(cfg, root),
             {**captured, "specialize": asdict(cfg.specialize)})]
