"""The models of the language experiment: dense GELU, Switch, MoE-X, and Switch-style MoEs at
top-k in ``top_ks``, all with the same active FFN width and the same training budget.

Equal active parameters: the dense MLP has ``active_width`` hidden units and every MoE has
``num_experts`` experts of ``active_width / top_k`` units, so each token passes through the same
number of FFN neurons (top-1 of 8: one expert of the full width; top-4: four of a quarter). The
routing sparsity top_k / num_experts then runs from 0.125 to 0.5 at 8 experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.config import to_dict

DENSE, SWITCH, MOEX = "dense_gelu", "switch", "moex"


@dataclass(frozen=True)
class LanguageModel:
    """One trained model of the experiment."""

    name: str
    """stage suffix and table name (dense_gelu, switch, moex, switch_k<k>)"""
    preset: str
    """model preset it is built from"""
    top_k: int | None
    """experts per token (None: dense)"""
    seed: int | None = None
    """training seed of an extra-seed model (None: ``lm.seed``, the model every claim uses)"""

    @property
    def is_moe(self) -> bool:
        return self.top_k is not None

    @property
    def kind(self) -> str:
        """The name without its seed suffix (what the tables group seeds by)."""
        return split_seed(self.name)[0]


SEED_TAG = "-s"


def split_seed(name: str) -> tuple[str, int | None]:
    """``"moex-s2"`` -> ``("moex", 2)``; a name without a seed suffix -> ``(name, None)``."""
    base, tag, seed = name.rpartition(SEED_TAG)
    return (base, int(seed)) if tag and seed.isdigit() else (name, None)


def roster(cfg: Any) -> list[LanguageModel]:
    """Dense, Switch and MoE-X first (the comparison's core), then the top-k series."""
    lm = cfg.lm
    out = [LanguageModel(DENSE, "dense-gelu", None), LanguageModel(SWITCH, "switch", lm.top_k),
           LanguageModel(MOEX, "moex", lm.top_k)]
    out += [LanguageModel(f"switch_k{k}", "switch", k) for k in sorted(set(lm.top_ks))
            if k != lm.top_k]
    return out


def seeded(cfg: Any) -> list[LanguageModel]:
    """The extra-seed copies of the three main models (dense GELU, Switch, MoE-X), seed by
    seed; the top-k series and the SAE keep the one seed ``lm.seed``."""
    main = roster(cfg)[:3]
    seeds = [s for s in dict.fromkeys(cfg.lm.extra_seeds) if s != cfg.lm.seed]
    return [LanguageModel(f"{m.name}{SEED_TAG}{s}", m.preset, m.top_k, s)
            for s in seeds for m in main]


def sparsity_series(cfg: Any) -> list[LanguageModel]:
    """The Switch-style models of the routing-sparsity series, sparsest first."""
    return sorted([m for m in roster(cfg) if m.preset == "switch"], key=lambda m: m.top_k)


def spec(model: LanguageModel, cfg: Any) -> dict[str, Any]:
    """``--model.*`` settings of one model."""
    lm = cfg.lm
    out: dict[str, Any] = {"preset": model.preset, "n_layer": lm.n_layer, "n_head": lm.n_head,
                           "n_embd": lm.n_embd, "n_positions": max(lm.ctx, cfg.corpus.capture_ctx)}
    if model.is_moe:
        out.update(num_experts=lm.num_experts, top_k=model.top_k,
                   expert_width=lm.active_width // model.top_k)
    else:
        out["ffn_width"] = lm.active_width
    return out


def settings(model: LanguageModel, cfg: Any) -> dict[str, Any]:
    """What determines a trained model (its stage's settings)."""
    lm = to_dict(cfg.lm)
    for key in ("device", "cpu_threads", "top_ks", "extra_seeds"):
        lm.pop(key)
    corpus = {k: v for k, v in to_dict(cfg.corpus).items()
              if k in ("kinds", "sources", "max_docs_per_source", "vocab_size",
                       "system_root")}
    if model.seed is not None:
        lm["seed"] = model.seed
    return {"model": spec(model, cfg), "lm": lm, "corpus": corpus}


def train(model: LanguageModel, stage: Path, data: Path, cfg: Any) -> dict[str, Any]:
    """Train (or resume) one model in ``stage/train`` and measure its held-out perplexity."""
    from moelens.experiments.text_lm import Schedule, train_lm

    lm = cfg.lm
    sched = Schedule(ctx=lm.ctx, batch_size=lm.batch_size, max_iters=lm.max_iters, lr=lm.lr,
                     min_lr=lm.min_lr, warmup_iters=lm.warmup_iters, eval_iters=lm.eval_iters,
                     ckpt_interval=lm.ckpt_interval, dtype=lm.dtype, device=lm.device,
                     cpu_threads=lm.cpu_threads)
    seed = lm.seed if model.seed is None else model.seed
    res = train_lm(stage / "train", data, spec(model, cfg), sched, seed, cfg.quiet)
    return {**res, "top_k": model.top_k, "seed": seed,
            "routing_density": model.top_k / lm.num_experts if model.is_moe else None}
