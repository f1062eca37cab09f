"""The models of the chess comparison and how each is trained, in-process through the library.

Every model shares the sizes of :class:`~.chess_config.ModelSettings`, the data and the budget
(``max_iters`` steps from scratch). Two recipes start from the first dense GELU model and train
``continue_iters`` more steps (the paper's Table 4): dense continued training, and MoE-X upcycled
from it (each expert a slice of the dense MLP, :mod:`moelens.models.upcycle`).

The board probe has two controls: a dense GELU model trained on random-move games (the
reference's control, kept as the faithful one) and the same dense GELU model at its initial
random weights, never trained (the corrected one). A model trained on random legal moves still
has to track the board to predict a legal next move (Li et al.'s Othello model learned its board
from exactly such games), so it does not show what the probe reads without any learning;
untrained weights do (Karvonen 2024's baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.config import to_dict

KINDS = {
    "dense_gelu": "dense GELU MLP (the paper's GPT-2 baseline)",
    "dense_relu": "dense ReLU MLP",
    "switch": "Switch: GELU experts, softmax router",
    "moex": "MoE-X: ReLU experts, sparsity router",
    "relu_softmax": "ablation: ReLU experts, softmax router",
    "gelu_sparsity": "ablation: GELU experts, sparsity router",
    "moex_temp": "MoE-X at a low router temperature",
    "dense_continued": "dense GELU, continued training",
    "moex_upcycled": "MoE-X upcycled from the dense GELU model",
    "dense_random": "dense GELU trained on random-move games (probe control, as the reference)",
    "dense_untrained": "dense GELU at its initial random weights (probe control, corrected)",
}
"""Model kinds, in table order, with what each is."""

SEEDED = ("dense_gelu", "switch", "moex")
"""Kinds trained once per seed; the rest use the first seed."""

PRESET = {"dense_gelu": "dense-gelu", "dense_relu": "dense-relu", "switch": "switch",
          "moex": "moex", "relu_softmax": "ablation-relu-softmax",
          "gelu_sparsity": "ablation-gelu-sparsity", "moex_temp": "moex",
          "dense_random": "dense-gelu", "dense_untrained": "dense-gelu"}
PROBE_ALL = ("dense_gelu", "dense_random", "dense_untrained")
"""Kinds whose board probe reads every layer (the base model and its two controls)."""

BASE = "dense_gelu"
"""The kind the continued and upcycled models start from (its first seed)."""


@dataclass(frozen=True)
class ModelRun:
    """One trained model of the experiment."""

    kind: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.kind}-s{self.seed}"

    @property
    def is_moe(self) -> bool:
        return self.kind not in ("dense_gelu", "dense_relu", "dense_continued", "dense_random",
                                 "dense_untrained")

    @property
    def data(self) -> str:
        return "random" if self.kind == "dense_random" else "chess"

    @property
    def starts_from(self) -> str | None:
        return f"{BASE}-s{self.seed}" if self.kind in ("dense_continued", "moex_upcycled") \
            else None


def roster(cfg: Any) -> list[ModelRun]:
    """The models to train, in order: the first seed of the base, the probe controls, MoE-X and
    Switch first (the comparison's core, early), then everything else; a base model always
    comes before those that start from it."""
    kinds = set(cfg.models or KINDS)
    first = cfg.seeds[0]
    runs = [ModelRun(k, s) for k in KINDS if k in kinds
            for s in (cfg.seeds if k in SEEDED else [first])]
    if kinds & {"dense_continued", "moex_upcycled"} and ModelRun(BASE, first) not in runs:
        runs.insert(0, ModelRun(BASE, first))  # what they start from
    early = [ModelRun(k, first) for k in (BASE, "dense_random", "dense_untrained", "moex",
                                          "switch")]
    return [r for r in early if r in runs] + [r for r in runs if r not in early]


def model_spec(run: ModelRun, cfg: Any) -> dict[str, Any]:
    """``--model.*`` settings of a model trained from scratch."""
    m = cfg.model
    spec = {"preset": PRESET[run.kind], "n_layer": m.n_layer, "n_head": m.n_head,
            "n_embd": m.n_embd, "n_positions": cfg.train.ctx + 1}
    if run.is_moe:
        spec.update(num_experts=m.num_experts, top_k=m.top_k, expert_width=m.expert_width)
    else:
        spec["ffn_width"] = m.ffn_width
    if run.kind == "moex_temp":
        spec["router_temperature"] = m.temperature
    return spec


def upcycle_settings(cfg: Any) -> dict[str, Any]:
    """MoE settings of the upcycled MoE-X (the MoE-X preset at the experiment's sizes)."""
    from moelens.models.presets import model_settings
    from moelens.models.upcycle_command import MOE_FIELDS

    moe = {k: v for k, v in model_settings("moex").items() if k in MOE_FIELDS}
    moe.update(num_experts=cfg.model.num_experts, top_k=cfg.model.top_k,
               expert_width=cfg.model.expert_width)
    return moe


def train_config(run: ModelRun, cfg: Any, data: Path, out: Path, init_from: Path | None):
    """The :class:`~moelens.training.command.TrainConfig` of one model (resume always on)."""
    from moelens.training.command import ModelSpec, TrainConfig

    t = cfg.train
    iters = t.continue_iters if init_from is not None else t.max_iters
    spec = ModelSpec(preset="moex") if init_from is not None else ModelSpec(**model_spec(run, cfg))
    return TrainConfig(
        data=data, out=out, model=spec, init_from=init_from, ctx=t.ctx, batch_size=t.batch_size,
        max_iters=iters, lr=t.lr, min_lr=t.min_lr, warmup_iters=min(t.warmup_iters, iters - 1),
        eval_interval=0, eval_iters=t.eval_iters, log_interval=max(1, iters // 20),
        ckpt_interval=t.ckpt_interval, dtype=t.dtype, device=t.device, cpu_threads=t.cpu_threads,
        seed=run.seed, resume=True, quiet=cfg.quiet)


def train_settings(run: ModelRun, cfg: Any) -> dict[str, Any]:
    """What determines a trained model (the stage's settings): sizes, budget, seed, recipe."""
    settings = {"kind": run.kind, "seed": run.seed, "train": to_dict(cfg.train),
                "model": to_dict(cfg.model), "games": to_dict(cfg.games)}
    settings["train"].pop("device")
    settings["train"].pop("cpu_threads")
    return settings


def train_model(run: ModelRun, cfg: Any, data: Path, stage: Path, base_model: Path | None
                ) -> dict[str, Any]:
    """Train (or resume) one model in ``stage``; an upcycled model is first made from the base,
    the untrained control is only initialised and saved."""
    from moelens.hf_progress import quiet_hf_progress
    from moelens.rundir import atomic_dir, atomic_write_json
    from moelens.training.loop import train

    if run.kind == "dense_untrained":
        return save_untrained(run, cfg, data, stage)
    init = None
    if run.starts_from is not None:
        assert base_model is not None
        init = base_model
        if run.kind == "moex_upcycled":
            init = stage / "upcycled"
            if not (init / "config.json").exists():
                from moelens.models.upcycle import load_dense, upcycle_model

                moe = upcycle_settings(cfg)
                model = upcycle_model(load_dense(base_model), moe, run.seed)
                with atomic_dir(init) as tmp, quiet_hf_progress():
                    model.save_pretrained(tmp)
                    atomic_write_json(tmp / "upcycle.json", {"source": str(base_model),
                                                             "moe_settings": moe})
    outcome = train(train_config(run, cfg, data, stage / "train", init))
    s = outcome.summary
    return {"val_loss_train_log": s.get("val_loss"), "parameters": s.get("parameters"),
            "tokens": s.get("tokens"), "iters": s.get("iters"),
            "model": str(stage / "train" / "model")}


def save_untrained(run: ModelRun, cfg: Any, data: Path, stage: Path) -> dict[str, Any]:
    """The dense GELU model as training would start it (same sizes, same seed, so the same
    initial weights as ``dense_gelu`` of that seed), saved without a single step."""
    import torch

    from moelens.training.backend import build_model, open_tokens
    from moelens.training.stage import save_model_dir

    tokens = open_tokens(data)
    spec = train_config(run, cfg, data, stage / "train", None)
    with torch.random.fork_rng():
        torch.manual_seed(run.seed)  # as the trainer seeds the initialisation
        model = build_model(spec.model, int(tokens.meta["vocab_size"]), spec.ctx)
    path = save_model_dir(model, tokens, data, stage / "train",
                          {"ctx": spec.ctx, "data": str(data), "iters": 0, "tokens": 0})
    return {"val_loss_train_log": None, "iters": 0, "tokens": 0, "model": str(path),
            "parameters": sum(p.numel() for p in model.parameters())}
