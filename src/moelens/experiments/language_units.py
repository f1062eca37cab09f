"""Stages of the language experiment that look at single units: the capture of every model, the
SAE on the dense MLP, MoE-X Fig. 8 (auto-interpretation of random neurons per activation
decile) and the 58-concept k-sparse probing with its controls.

Every stage calls a command's library with a typed config, in this process, into its own stage
folder; each of those libraries resumes what a killed attempt left (a capture its last shard, an
SAE its checkpoint, interpretation its finished units, probing its finished parts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FIG8_UNITS = {"dense_gelu": ("ffn", "routed", "dense GELU MLP neurons"),
              "sae": ("sae", "routed", "SAE latents on the dense MLP"),
              "moex": ("expert", "gated", "MoE-X wide-view neurons (gated)"),
              "switch": ("expert", "gated", "Switch expert neurons (gated)")}
"""Fig. 8's unit kinds: the model whose store holds them, (space, semantics, what they are)."""


def capture(stage: Path, model_dir: Path, files: list[Path], cfg: Any) -> dict[str, Any]:
    """Capture every layer's units (experts, router, FFN, residual) on shuffled corpus text."""
    from moelens.capture import job
    from moelens.capture.command import CaptureConfig

    c = cfg.corpus
    res = job.capture(CaptureConfig(
        model=str(model_dir), out=stage / "store", corpus=files, tokens=c.capture_tokens,
        ctx=c.capture_ctx, batch_size=8, shuffle=True, seed=cfg.seed,
        threads=cfg.lm.cpu_threads or None, quiet=cfg.quiet))
    return {"tokens": res.n_tokens, "shards": res.n_shards}


def train_sae(stage: Path, store: Path, cfg: Any) -> dict[str, Any]:
    """A TopK SAE on the dense model's MLP at the scored layer, saved as the store's ``sae``
    space (so its latents are read like any captured unit)."""
    from moelens.analysis.sae import SaeTrainConfig
    from moelens.analysis.sae import train_sae as train
    from moelens.rundir import atomic_write_json

    s = cfg.sae
    res = train(SaeTrainConfig(store=store, layer=cfg.scored_layer, space="ffn", kind="topk",
                               expansion=s.expansion, k=s.k, steps=s.steps,
                               batch_size=s.batch_size, seed=cfg.seed,
                               threads=cfg.lm.cpu_threads, quiet=cfg.quiet))
    held = res.metrics["heldout"]
    out = {"latents": res.settings.get("latents"), "k": s.k,
           **{k: held[k] for k in ("explained_variance", "fvu", "l0", "dead_fraction")}}
    atomic_write_json(stage / "results.json", out)
    return out


def random_neurons(store: Any, layer: int, space: str, n: int, seed: int,
                   alive_only: bool = True) -> tuple[list[str], int]:
    """``n`` distinct random neurons of (layer, space) as interpret unit names (``E:I`` for
    expert neurons, the wide view's num_experts x expert_width; ``I`` otherwise), drawn among
    the neurons that fire somewhere in the store when ``alive_only``; also the number of dead
    neurons of the space."""
    width = int(store.width(layer, space))
    dead = np.asarray(store.unit_stats(layer, space)["dead"], dtype=bool).reshape(-1)
    pool = np.flatnonzero(~dead) if alive_only else np.arange(dead.size)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(pool, size=min(n, pool.size), replace=False))
    if space == "expert":
        return [f"{int(i) // width}:{int(i) % width}" for i in pick], int(dead.sum())
    return [str(int(i)) for i in pick], int(dead.sum())


def neurons(stage: Path, store: Path, unit_kind: str, cfg: Any, explainer: str
            ) -> dict[str, Any]:
    """Fig. 8 for one unit kind: explain random neurons (rules or SmolLM2) and score them by
    detection and fuzzing, per activation decile and on non-activating windows.

    With SmolLM2 (``hf``) the judge is SmolLM2 too, and it answers "yes" to nearly every window;
    so the stage also scores the explanations by the MiniLM embedding scorer, which no LLM
    judges, and scores the rules explanations of the same neurons on the same windows by it
    (``rules_embedding/``): that pair says something about the explanations themselves."""
    from moelens.analysis.autointerp.command import HFBackend, InterpretConfig
    from moelens.analysis.autointerp.run import interpret
    from moelens.store import ActivationStore

    space, semantics, _ = FIG8_UNITS[unit_kind]
    n = cfg.neurons
    hf = explainer == "hf"
    names, dead = random_neurons(ActivationStore.open(store), cfg.scored_layer, space,
                                 n.n_neurons, cfg.seed, n.alive_only)
    names = names[:min(n.n_neurons, n.smollm2_neurons)] if hf else names

    def run(out: str, how: str, scorers: list[str]) -> None:
        interpret(InterpretConfig(
            store=store, out=stage / out, layer=[cfg.scored_layer], level="neuron",
            units=names, space=space, semantics=semantics, explainer=how,
            scorers=scorers, window=n.window, sampling="quantile",
            n_explain=n.smollm2_n_explain if hf else n.n_explain,
            n_test=n.smollm2_n_test if hf else n.n_test,
            n_negative=n.smollm2_n_negative if hf else n.n_negative,
            min_examples=n.min_examples, negatives=["random"],
            hf=HFBackend(threads=cfg.lm.cpu_threads or None), seed=cfg.seed, quiet=cfg.quiet))

    scorers = ("detection", "fuzzing") + (("embedding",) if hf else ())
    if hf:
        run("rules_embedding", "rules", ["embedding"])
    run("interpret", explainer, list(scorers))
    # read back from the file: a rerun after a kill finds the run done and returns no summary
    out = {**headline(read_json(stage / "interpret" / "summary.json"), scorers,
                      "balanced_accuracy"), "dead_in_space": dead}
    if hf:
        emb = headline(read_json(stage / "interpret" / "summary.json"), ("embedding",), "auroc")
        rules = headline(read_json(stage / "rules_embedding" / "summary.json"), ("embedding",),
                         "auroc")
        out["embedding_auroc"] = emb.get("embedding")
        out["rules_embedding_auroc"] = rules.get("embedding")
    return out


def read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text())


def headline(summary: dict[str, Any], scorers: tuple[str, ...], metric: str) -> dict[str, Any]:
    """Units, their status counts and each scorer's ``metric`` (mean and 95% interval)."""
    out: dict[str, Any] = {"units": summary.get("units"), "status": summary.get("status")}
    for row in summary.get("table", []):
        if row["scorer"] in scorers and row["metric"] == metric:
            out[row["scorer"]] = {k: row[k] for k in ("units", "mean", "ci_low", "ci_high",
                                                       "baseline")}
    return out


def probe(stage: Path, store: Path, dense_store: Path | None, name: str, cfg: Any
          ) -> dict[str, Any]:
    """k-sparse probing of every layer's experts (or dense MLP) on the configured concepts; for
    an MoE with the routed-token, size-matched, dense-model and shuffled-label controls."""
    from moelens.analysis.probing.command import ProbeConfig
    from moelens.analysis.probing.run import probe as run_probe

    p = cfg.probe
    moe = dense_store is not None
    run_probe(ProbeConfig(
        store=store, out=stage / "probe", model=name, concepts=list(p.concepts),
        spaces=["expert"] if moe else ["ffn"],
        ks=list(p.ks), seeds=list(p.seeds), budget=p.budget, min_samples=p.min_samples,
        baselines=moe, null=moe, bootstrap=p.bootstrap, dense_store=dense_store,
        quiet=cfg.quiet))
    summ = read_json(stage / "probe" / "summary.json")
    return {"concepts": summ.get("n_concepts"), "main_family": summ.get("main_family"),
            "headline": summ.get("headline")}
