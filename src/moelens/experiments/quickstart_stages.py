"""The stages of ``moelens quickstart`` that make the models and stores and probe them, each a
call into the library that owns the work (the legal-move rate and the analyses after probing
are in :mod:`.quickstart_analyses`, the run directory's
layout in :mod:`.quickstart_layout`).

Each stage resumes what an interrupted attempt left: games from their shards, training from its
last checkpoint, capture from its last shard, probing from its last (seed, layer) part.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from moelens.experiments.pipeline import Step
from moelens.experiments.quickstart_layout import (MOE_PRESETS, data_dir, model_dir, probe_dir,
                                                   report_path, store_dir)
from moelens.report.results import read_json

def _ckpt_interval(iters: int) -> int:
    """Checkpoints often enough that a killed run loses at most an eighth of its steps."""
    return max(1, iters // 8)


def _data_stage(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(_stage: Path) -> dict[str, Any]:
        from moelens.data.chess.dataset import build_chess
        from moelens.data.commands import ChessDataConfig

        g = cfg.games
        out = data_dir(root)
        build_chess(ChessDataConfig(out=out, n_games=g.n_games, seed=cfg.seed, workers=g.workers,
                                    player=g.player, val_fraction=g.val_fraction,
                                    max_plies=g.max_plies, block_size=g.block_size,
                                    quiet=cfg.quiet))
        meta = read_json(out / "meta.json") or {}
        return {"n_train_chars": meta.get("n_train"), "n_val_chars": meta.get("n_val"),
                "player": (meta.get("source") or {}).get("player")}
    return run


def train_config(cfg: Any, root: Path, name: str) -> Any:
    """The ``moelens train`` config of one model of the quickstart."""
    from moelens.training.command import ModelSpec, TrainConfig

    m, t = cfg.model, cfg.train
    spec = ModelSpec(preset=name, n_layer=m.n_layer, n_head=m.n_head, n_embd=m.n_embd)
    if name in MOE_PRESETS:
        spec.num_experts, spec.top_k, spec.expert_width = m.num_experts, m.top_k, m.expert_width
    else:  # dense: the activated width of top_k experts
        spec.ffn_width = m.top_k * m.expert_width
    return TrainConfig(data=data_dir(root), out=model_dir(root, name).parent, model=spec,
                       ctx=t.ctx, batch_size=t.batch_size, max_iters=t.max_iters, lr=t.lr,
                       min_lr=t.min_lr, warmup_iters=t.warmup_iters,
                       eval_interval=t.eval_interval, eval_iters=t.eval_iters,
                       ckpt_interval=_ckpt_interval(t.max_iters), device=t.device,
                       dtype=t.dtype, cpu_threads=cfg.threads, seed=cfg.seed, resume=True,
                       quiet=cfg.quiet)


def _train_stage(cfg: Any, root: Path, name: str) -> Callable[[Path], dict[str, Any]]:
    def run(_stage: Path) -> dict[str, Any]:
        from moelens.training.loop import train

        done = train(train_config(cfg, root, name))
        s = done.summary
        return {"val_loss": s.get("val_loss"), "parameters": s.get("parameters"),
                "tokens": s.get("tokens")}
    return run


def _capture_stage(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(_stage: Path) -> dict[str, Any]:
        from moelens.capture import job
        from moelens.capture.command import CaptureConfig

        out = {}
        for name in cfg.model.models:
            res = job.capture(CaptureConfig(
                model=str(model_dir(root, name)), out=store_dir(root, name),
                corpus=[data_dir(root) / "games_val.txt"], tokens=cfg.capture.tokens,
                ctx=cfg.capture.ctx, threads=cfg.threads or None, quiet=cfg.quiet))
            out[name] = res.n_tokens or None
        return {"tokens": out}
    return run


def _probe_stage(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(_stage: Path) -> dict[str, Any]:
        from moelens.analysis.probing import compare, figures
        from moelens.analysis.probing import run as probing
        from moelens.analysis.probing.command import ProbeConfig

        a = cfg.probe
        dense = next((n for n in cfg.model.models if n not in MOE_PRESETS), None)
        for name in cfg.model.models:
            moe = name in MOE_PRESETS
            probing.probe(ProbeConfig(
                store=store_dir(root, name), concepts=["chess"], out=probe_dir(root, name),
                model=name, seeds=list(a.seeds), ks=list(a.ks),
                budget=a.budget, bootstrap=a.bootstrap, device=a.device,
                dense_store=store_dir(root, dense) if (moe and dense and a.dense_baseline)
                else None, quiet=cfg.quiet))
        runs = [probe_dir(root, n) for n in cfg.model.models]
        if len(runs) < 2:
            return {}
        cmp = compare.compare(runs, n_boot=a.bootstrap)
        rows = compare.headline_rows(cmp)
        figures.compare_runs(cmp, root / "probe" / "compare")
        compare.write(cmp, root / "probe" / "compare", rows)
        return {"concepts": len(cmp.concepts), "left_out": sorted(cmp.left_out)}
    return run


def write_report(cfg: Any, root: Path) -> Any:
    """The HTML report of everything the run holds (:class:`moelens.report.build.Built`)."""
    from moelens.report.build import build

    return build(root, report_path(root), title="moelens quickstart: dense vs Switch vs MoE-X "
                                                "on chess")


def steps(cfg: Any) -> list[Step]:
    """The stages in order, each with the settings that decide its result (and only those, so
    that a stage added later, or a change to one analysis, leaves the others' results valid)."""
    root = Path(cfg.out)
    asdict = dataclasses.asdict
    g = {k: v for k, v in asdict(cfg.games).items() if k != "workers"}
    games = {"games": g, "seed": cfg.seed}  # workers do not change the games
    models = {**games, "model": asdict(cfg.model), "train": asdict(cfg.train)}
    captured = {**models, "capture": asdict(cfg.capture)}
    out = [Step("data", "generate chess games", _data_stage(cfg, root), games)]
    out += [Step(f"train-{n}", f"train {n}", _train_stage(cfg, root, n), models)
            for n in cfg.model.models]
    from moelens.experiments import quickstart_analyses

    out.append(quickstart_analyses.legal_step(cfg, models))
    out += [Step("capture", "capture every model on held-out games", _capture_stage(cfg, root),
                 captured),
            Step("probe", "k-sparse probing on chess concepts (MoE vs dense, controls)",
                 _probe_stage(cfg, root), {**captured, "probe": asdict(cfg.probe)})]
    return out + quickstart_analyses.steps(cfg, captured)
