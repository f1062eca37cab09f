"""``moelens experiment chess``: the MoE-X chess comparison, one command, resumable stages.

Stages (each a folder of the run directory, see :mod:`.pipeline`): ``games`` (played games,
held-out games), ``random-games`` (the probe control's data), then per model ``train-<name>`` and
``eval-<name>`` (:mod:`.chess_models`, :mod:`.chess_eval`), the SAE baseline ``sae``
(:mod:`.chess_sae`), the language side ``lang-*``
(:mod:`.chess_language`), and last the report (:mod:`.chess_report`), rebuilt from the finished
stages on every run. A killed run continues where it stopped: finished stages are skipped,
a training run resumes from its last checkpoint, a capture from its last shard.

Examples::

    moelens experiment chess --out runs/chess-small          # preset chess-small (CPU)
    moelens experiment chess --preset chess-paper --out runs/chess-paper   # the paper's sizes
    moelens experiment chess --models dense_gelu moex --seeds 0 --language.enabled false
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.config import to_dict
from moelens.experiments.chess_config import ChessExperimentConfig
from moelens.experiments.pipeline import Step, run_pipeline

__all__ = ["ChessExperimentConfig", "run", "steps"]


def _eval_settings(cfg: ChessExperimentConfig, run: Any) -> dict[str, Any]:
    from moelens.experiments.chess_models import train_settings

    return {"train": train_settings(run, cfg), "score": to_dict(cfg.score),
            "layer": cfg.scored_layer}


def steps(cfg: ChessExperimentConfig) -> list[Step]:
    """Every stage of the experiment, in order."""
    from moelens.experiments import chess_data, chess_eval, chess_language
    from moelens.experiments import chess_models as cm

    root = Path(cfg.out)
    games = root / "games"
    runs = cm.roster(cfg)
    data_settings = {"games": to_dict(cfg.games), "max_chars": cfg.score.max_chars}
    out = [Step("games", "play the games and hold out the evaluation games",
                lambda p: chess_data.chess_games(p, cfg), data_settings)]
    if any(r.data == "random" for r in runs):
        out.append(Step("random-games", "random-move games (probe control)",
                        lambda p: chess_data.random_move_games(p, cfg), data_settings))
    first = cfg.seeds[0]
    for run in runs:
        data = root / ("random-games" if run.data == "random" else "games") / "data"
        base = root / f"train-{run.starts_from}" / "train" / "model" if run.starts_from else None
        model_dir = root / f"train-{run.name}" / "train" / "model"
        out.append(Step(f"train-{run.name}", f"train {run.name} ({cm.KINDS[run.kind]})",
                        lambda p, r=run, d=data, b=base: cm.train_model(r, cfg, d, p, b),
                        cm.train_settings(run, cfg)))
        probe_all = run.kind in cm.PROBE_ALL and run.seed == first
        keep = run.kind == cm.BASE and run.seed == first  # the SAE baseline reads its store
        out.append(Step(f"eval-{run.name}", f"evaluate {run.name}",
                        lambda p, r=run, d=data, m=model_dir, a=probe_all, k=keep:
                        chess_eval.evaluate_model(r.name, r.is_moe, m, d,
                                                  games / chess_data.EVAL_GAMES, p, cfg,
                                                  probe_all_layers=a, keep_store=k),
                        _eval_settings(cfg, run)))
    base = cm.ModelRun(cm.BASE, first)
    if cfg.sae.enabled and base in runs:
        out.append(Step("sae", f"SAE baseline on {base.name}'s MLP",
                        lambda p: _sae(p, cfg, base), {"sae": to_dict(cfg.sae),
                                                        "eval": _eval_settings(cfg, base)}))
    if cfg.language.enabled:
        lang = {"language": to_dict(cfg.language)}
        out.append(Step("lang-corpora", "offline prose + code corpora",
                        lambda p: chess_language.corpora(p, cfg), lang))
        out.append(Step("lang-data", "tokenize the corpora",
                        lambda p: chess_language.text_data(p, root / "lang-corpora", cfg), lang))
        for kind in chess_language.LANG_KINDS:
            out.append(Step(f"lang-{kind}", f"language model {kind}",
                            lambda p, k=kind: chess_language.train_language(
                                k, p, root / "lang-data" / "data", cfg),
                            chess_language.lang_settings(kind, cfg)))
    return out


def _sae(stage: Path, cfg: ChessExperimentConfig, base: Any) -> dict[str, Any]:
    """The SAE baseline in the base model's evaluation store (captured again if it is gone)."""
    from moelens.experiments import chess_data, chess_eval, chess_sae

    root = Path(cfg.out)
    games = root / "games" / chess_data.EVAL_GAMES
    store = root / f"eval-{base.name}" / "store"
    if not (store / "manifest.json").exists():
        store = stage / "store"
        chess_eval.capture_games(root / f"train-{base.name}" / "train" / "model", games, store,
                                 [cfg.scored_layer], ["ffn"], cfg)
    return chess_sae.train_and_score(stage, store, games, cfg, base.name)


def report(cfg: ChessExperimentConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """Rebuild ``report/`` from every finished stage."""
    from moelens.experiments import chess_eval, chess_report
    from moelens.experiments import chess_models as cm

    root = Path(cfg.out)
    runs, board, probe, cells, language = [], [], [], {}, []
    stages = summary["stages"]
    for run in cm.roster(cfg):
        if f"eval-{run.name}" not in stages:
            continue
        res, rows = chess_eval.load_results(root / f"eval-{run.name}")
        train = {**stages[f"train-{run.name}"]["summary"],
                 "seconds": stages[f"train-{run.name}"]["wall_seconds"]}
        runs.append(chess_report.run_row(run.name, run.kind, run.seed, res, rows,
                                         cfg.scored_layer, train))
        board += rows
        probe += res.get("probe", [])
        if run.seed == cfg.seeds[0] and run.kind in ("dense_gelu", "switch", "moex",
                                                     "moex_upcycled"):
            cells[run.name] = res["cells"]
    for kind in ("dense_gelu", "switch", "moex"):
        if f"lang-{kind}" in stages:
            language.append({"kind": kind, **stages[f"lang-{kind}"]["summary"]})
    sae = None
    if "sae" in stages:
        sae, rows = chess_eval.load_results(root / "sae")
        board += rows
        cells[sae["model"]] = sae.pop("cells")
    return chess_report.write_report(root / "report", runs, board, probe, language, cells, sae,
                                     cfg.scored_layer)


def run(cfg: ChessExperimentConfig) -> int:
    """Run (or resume) the experiment, then rebuild its report."""
    root = Path(cfg.out)
    if cfg.train.cpu_threads:
        import torch

        # evaluation runs in this process too; a busy machine punishes spare OpenMP threads
        torch.set_num_threads(cfg.train.cpu_threads)
    summary = run_pipeline(root, steps(cfg), overwrite=cfg.overwrite, quiet=cfg.quiet)
    rep = report(cfg, summary)
    print(f"experiment chess: {rep['models']} models evaluated in "
          f"{summary['total_wall_seconds'] / 60:.1f} min of stage time; tables in "
          f"{root / 'report' / 'tables.md'}")
    return 0
