"""``moelens experiment language``: both papers' language-side claims on our own models, one
command, resumable stages.

Stages (each a folder of the run directory, see :mod:`.pipeline`): ``corpora`` and ``data`` (the
offline prose, code and LaTeX corpora and their BPE tokens, :mod:`.text_lm`), ``train-<model>``
for dense GELU, Switch, MoE-X and the top-k series (:mod:`.language_models`), ``capture-<model>``
(every layer's units on shuffled corpus text), ``sae`` (on the dense MLP), then the claims:

1. MoE-X Fig. 8: ``neurons-<kind>`` (and, at the end, ``neurons-hf-<kind>`` with SmolLM2) for
   dense neurons, SAE latents, MoE-X and Switch wide-view neurons (:mod:`.language_units`);
2. The Expert Strikes Back §2: ``probe-<model>`` for every model;
3. §3-5: ``labels-<moe>`` (and, at the end, ``labels-hf-<moe>``), ``trigger-<moe>``, ``specialize-<moe>`` and
   ``knowledge-<moe>`` for every MoE (:mod:`.language_experts`);

then, with ``lm.extra_seeds``, ``train-``, ``capture-``, ``neurons-`` and ``probe-<model>-s<seed>``
of dense GELU, Switch and MoE-X per extra seed (the tables over seeds: :mod:`.language_seeds`);
then the SmolLM2 stages (the slowest); and last ``report/`` (:mod:`.language_report`), rebuilt
from the finished stages on every run.
A killed run continues where it stopped: finished stages are skipped, and the stage it was in
resumes (training from its checkpoint, capture from its last shard, interpretation and probing
from their finished units).

Examples::

    moelens experiment language --out runs/language            # preset language-small (CPU)
    moelens experiment language --preset language-tiny --out runs/lang-tiny
    moelens experiment language --neurons.smollm2 --experts.smollm2   # add SmolLM2's labels
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.config import to_dict
from moelens.experiments.language_config import LanguageExperimentConfig
from moelens.experiments.pipeline import Step, run_pipeline

__all__ = ["LanguageExperimentConfig", "run", "steps"]


def _store(root: Path, name: str) -> Path:
    return root / f"capture-{name}" / "store"


def _model(root: Path, name: str) -> Path:
    return root / f"train-{name}" / "train" / "model"


def domain_files(cfg: LanguageExperimentConfig) -> list[Path]:
    """The corpus files (one per non-empty domain) once the corpora stage is done."""
    from moelens.experiments.text_lm import corpus_files

    return corpus_files(Path(cfg.out) / "corpora" / "corpora", cfg.corpus.kinds)


def steps(cfg: LanguageExperimentConfig) -> list[Step]:
    """Every stage of the experiment, in order."""
    from moelens.experiments import language_experts as lx
    from moelens.experiments import language_models as lmod
    from moelens.experiments import language_units as lu
    from moelens.experiments import text_lm

    root, c = Path(cfg.out), cfg.corpus
    corpus = {"corpus": {k: v for k, v in to_dict(c).items()
                         if k in ("kinds", "sources", "max_docs_per_source", "system_root")}}
    data = {**corpus, "vocab_size": c.vocab_size}
    out = [Step("corpora", "offline prose + code + LaTeX corpora",
                lambda p: text_lm.build_corpora(p / "corpora", c.kinds, c.sources, c.install,
                                                c.max_docs_per_source, cfg.quiet,
                                                system_root=c.system_root), corpus),
           Step("data", "BPE tokenizer and token data",
                lambda p: text_lm.tokenize(p / "data", domain_files(cfg), c.vocab_size,
                                           cfg.quiet), data)]
    models = lmod.roster(cfg)
    for m in models:
        out.append(Step(f"train-{m.name}", f"train {m.name}",
                        lambda p, m=m: lmod.train(m, p, root / "data" / "data", cfg),
                        lmod.settings(m, cfg)))
    cap = {"capture_tokens": c.capture_tokens, "capture_ctx": c.capture_ctx, "seed": cfg.seed}
    for m in models:
        out.append(Step(f"capture-{m.name}", f"capture {m.name}'s units",
                        lambda p, m=m: lu.capture(p, _model(root, m.name), domain_files(cfg), cfg),
                        {"train": lmod.settings(m, cfg), **cap}))
    dense = _store(root, lmod.DENSE)
    base = {"train": lmod.settings(models[0], cfg), **cap}
    sae = {**base, "sae": to_dict(cfg.sae), "layer": cfg.scored_layer}
    out.append(Step("sae", "SAE on the dense MLP", lambda p: lu.train_sae(p, dense, cfg), sae))
    out += [fig8_step(cfg, kind, "rules", models) for kind in lu.FIG8_UNITS]
    probe = {**cap, "probe": to_dict(cfg.probe)}
    for m in models:
        out.append(Step(f"probe-{m.name}", f"k-sparse probing of {m.name}",
                        lambda p, m=m: lu.probe(p, _store(root, m.name),
                                                dense if m.is_moe else None, m.name, cfg),
                        {"train": lmod.settings(m, cfg), "dense": base, **probe}))
    experts = expert_settings(cfg, "rules")
    for m in [m for m in models if m.is_moe]:
        own = {"train": lmod.settings(m, cfg), **cap}
        out.append(labels_step(cfg, m, "rules"))
        if cfg.experts.trigger:
            out.append(Step(f"trigger-{m.name}", f"trigger -> target cases of {m.name}",
                            lambda p, m=m: lx.trigger(p, _model(root, m.name),
                                                      root / f"labels-{m.name}", cfg),
                            {**own, "experts": experts}))
        out.append(Step(f"specialize-{m.name}", f"specialization of {m.name}",
                        lambda p, m=m: lx.specialize(p, _model(root, m.name),
                                                     _store(root, m.name), domain_files(cfg),
                                                     cfg),
                        {**own, "ks": cfg.experts.spec_ks}))
        out.append(Step(f"knowledge-{m.name}", f"knowledge control of {m.name}",
                        lambda p, m=m: _knowledge(p, _model(root, m.name), cfg),
                        {**own, "experts": experts, "corpus": "balanced per domain"}))
    out += seed_steps(cfg)
    # SmolLM2 last: the slowest stages, and the ones a short session can leave for later
    if cfg.neurons.smollm2:
        out += [fig8_step(cfg, kind, "hf", models) for kind in lu.FIG8_UNITS]
    if cfg.experts.smollm2:
        out += [labels_step(cfg, m, "hf") for m in models if m.is_moe]
    return out


def _cap(cfg: LanguageExperimentConfig) -> dict[str, Any]:
    c = cfg.corpus
    return {"capture_tokens": c.capture_tokens, "capture_ctx": c.capture_ctx, "seed": cfg.seed}


def fig8_step(cfg: LanguageExperimentConfig, kind: str, explainer: str, models: list[Any]) -> Step:
    """MoE-X Fig. 8 for one unit kind (of the model ``kind`` names; the SAE's is the dense
    model, or that model's extra-seed copy for ``kind`` with a seed suffix)."""
    from moelens.experiments import language_models as lmod
    from moelens.experiments import language_units as lu

    root = Path(cfg.out)
    base, seed = lmod.split_seed(kind)
    owner = lmod.DENSE if base == "sae" else kind
    store = _store(root, owner)
    model = next(m for m in models if m.name == owner)
    settings = {"train": lmod.settings(model, cfg), **_cap(cfg),
                "neurons": neuron_settings(cfg, explainer), "layer": cfg.scored_layer,
                "explainer": explainer}
    if base == "sae":
        settings["sae"] = {"train": lmod.settings(model, cfg), **_cap(cfg),
                           "sae": to_dict(cfg.sae), "layer": cfg.scored_layer}
    tag = "" if explainer == "rules" else "hf-"
    what = lu.FIG8_UNITS[base][2] + ("" if seed is None else f", training seed {seed}")
    return Step(f"neurons-{tag}{kind}", f"Fig. 8 ({explainer}): {what}",
                lambda p: lu.neurons(p, store, base, cfg, explainer), settings)


def labels_step(cfg: LanguageExperimentConfig, m: Any, explainer: str) -> Step:
    """Expert labels of one MoE by ``rules`` or SmolLM2 (``hf``)."""
    from moelens.experiments import language_experts as lx
    from moelens.experiments import language_models as lmod

    root = Path(cfg.out)
    tag = "" if explainer == "rules" else "hf-"
    own = {"train": lmod.settings(m, cfg), **_cap(cfg)}
    return Step(f"labels-{tag}{m.name}", f"expert labels ({explainer}) of {m.name}",
                lambda p: lx.labels(p, _model(root, m.name), _store(root, m.name), cfg,
                                    explainer),
                {**own, "experts": expert_settings(cfg, explainer), "explainer": explainer})


def seed_steps(cfg: LanguageExperimentConfig) -> list[Step]:
    """The extra training seeds of the three main models, seed by seed: train, capture, Fig. 8
    (rules) and probing, each an own stage; an MoE's dense baselines come from the dense model
    of its own seed."""
    from moelens.experiments import language_models as lmod
    from moelens.experiments import language_units as lu

    root = Path(cfg.out)
    seeded = lmod.seeded(cfg)
    out: list[Step] = []
    for seed in dict.fromkeys(m.seed for m in seeded):
        group = [m for m in seeded if m.seed == seed]
        dense = next(m for m in group if not m.is_moe)
        for m in group:
            out.append(Step(f"train-{m.name}", f"train {m.name}",
                            lambda p, m=m: lmod.train(m, p, root / "data" / "data", cfg),
                            lmod.settings(m, cfg)))
        for m in group:
            out.append(Step(f"capture-{m.name}", f"capture {m.name}'s units",
                            lambda p, m=m: lu.capture(p, _model(root, m.name), domain_files(cfg),
                                                      cfg),
                            {"train": lmod.settings(m, cfg), **_cap(cfg)}))
        out += [fig8_step(cfg, m.name, "rules", group) for m in group]
        base = {"train": lmod.settings(dense, cfg), **_cap(cfg)}
        for m in group:
            out.append(Step(f"probe-{m.name}", f"k-sparse probing of {m.name}",
                            lambda p, m=m, d=dense.name: lu.probe(
                                p, _store(root, m.name), _store(root, d) if m.is_moe else None,
                                m.name, cfg),
                            {"train": lmod.settings(m, cfg), "dense": base, **_cap(cfg),
                             "probe": to_dict(cfg.probe)}))
    return out


def neuron_settings(cfg: LanguageExperimentConfig, explainer: str) -> dict[str, Any]:
    """What determines a Fig. 8 stage: the rules stages do not depend on the SmolLM2 fields."""
    return _without_smollm2(to_dict(cfg.neurons), explainer)


def expert_settings(cfg: LanguageExperimentConfig, explainer: str) -> dict[str, Any]:
    """What determines an expert stage (labels, trigger cases, knowledge control): only the
    SmolLM2 labels depend on the SmolLM2 switch, so adding ``--experts.smollm2`` to a finished
    run adds its stages without making the others stale."""
    return _without_smollm2(to_dict(cfg.experts), explainer)


def _without_smollm2(settings: dict[str, Any], explainer: str) -> dict[str, Any]:
    if explainer == "hf":
        return settings
    return {k: v for k, v in settings.items() if not k.startswith("smollm2")}


def _knowledge(stage: Path, model: Path, cfg: LanguageExperimentConfig) -> dict[str, Any]:
    from moelens.experiments import language_experts as lx

    files = domain_files(cfg)
    if len(files) < 2:
        return {"note": f"one domain only ({', '.join(f.stem for f in files)}): no knowledge "
                        "control"}
    return lx.knowledge(stage, model, files, cfg)


def run(cfg: LanguageExperimentConfig) -> int:
    """Run (or resume) the experiment, then rebuild its report."""
    from moelens.experiments import language_report

    root = Path(cfg.out)
    if cfg.lm.cpu_threads:
        import torch

        # every analysis runs in this process; a busy machine punishes spare OpenMP threads
        torch.set_num_threads(cfg.lm.cpu_threads)
    summary = run_pipeline(root, steps(cfg), overwrite=cfg.overwrite, quiet=cfg.quiet)
    rep = language_report.write(cfg, summary)
    print(f"experiment language: {len(summary['stages'])} stages in "
          f"{summary['total_wall_seconds'] / 60:.1f} min of stage time; tables in "
          f"{rep / 'tables.md'}")
    return 0
