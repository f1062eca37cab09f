"""``moelens probe``: k-sparse probing of a store's units against token concepts.

Thin: validate the config, open the store, sample each concept's tokens, let
:mod:`moelens.analysis.probing` fit every (concept, layer, unit, k) and write the table, the
summary and figures into a run stage. ``--compare A B ...`` instead draws comparison figures from
finished probe runs (no store needed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moelens.errors import ConfigError, StoreError

VALID_KS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class ProbeConfig:
    store: Path | None = None
    """activation store directory to probe (not needed with --compare)"""
    concepts: list[str] = field(default_factory=lambda: ["all"])
    """concepts: 'all', 'group:NAME' or a group name, concept names, or user concepts such as 'regex:...'"""
    concept_variant: Literal["fixed", "paper"] = "fixed"
    """concept definitions: 'fixed' (defects corrected) or 'paper' (exactly as published)"""
    out: Path = Path("runs/probe")
    """output directory (a run stage: config.json, probe.parquet/csv, summary.json, figures/)"""
    model: str = ""
    """model name for the table (default: the store manifest's model id)"""
    layers: list[int] = field(default_factory=list)
    """layers to probe (default: every layer in the store)"""
    spaces: list[str] = field(default_factory=lambda: ["expert", "shared", "ffn"])
    """unit spaces to probe where the store has them (expert, shared, ffn)"""
    semantics: Literal["routed", "gated", "zero_filled"] = "routed"
    """routing semantics of expert neurons: routed = only the tokens routed to the expert"""
    ks: list[int] = field(default_factory=lambda: list(VALID_KS))
    """numbers of neurons per probe: powers of two from 1 to 64"""
    fitter: Literal["fast", "reference"] = "fast"
    """fast: batched exact Newton in torch (default); reference: the paper's sklearn saga, 500 iterations"""
    device: str = "cpu"
    """torch device of the fast fitter (cpu, cuda, cuda:1, ...)"""
    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    """seeds: each one resamples the concept tokens, the splits and the controls"""
    budget: int = 5000
    """concept sampling budget passed to the registry's sample_examples"""
    min_samples: int = 50
    """minimum positives and minimum negatives for a unit to be probed"""
    baselines: bool = True
    """dense baselines beside each expert: same tokens, and size-matched random tokens"""
    baseline_space: Literal["auto", "ffn", "resid", "none"] = "auto"
    """dense space for the baselines (auto: ffn, else resid, where the store has it)"""
    null: bool = True
    """shuffled-label null: each expert probed again with its labels permuted"""
    bootstrap: int = 1000
    """bootstrap resamples (over concepts) for the 95 percent intervals"""
    figures: bool = True
    """draw figures (PNG and SVG) into OUT/figures"""
    dense_store: Path | None = None
    """a dense model's store: its ffn units probed on random token subsets the size of each expert dataset (same concepts and seeds; layers matched by relative depth)"""
    compare: list[Path] = field(default_factory=list)
    """finished probe runs to compare in figures (instead of probing a store)"""
    overwrite: bool = False
    """redo a finished run in OUT"""
    quiet: bool = False
    """no progress output"""

    def __post_init__(self) -> None:
        bad = [k for k in self.ks if k not in VALID_KS]
        if bad or not self.ks:
            raise ConfigError(f"ks must be powers of two from 1 to 64 (1 2 4 8 16 32 64); got {bad or 'none'}")
        self.ks = sorted(set(self.ks))
        if not self.seeds:
            raise ConfigError("give at least one seed with --seeds")
        if self.store is None and not self.compare:
            raise ConfigError("give --store DIR to probe, or --compare RUN_DIR ... to draw figures")
        unknown = [s for s in self.spaces if s not in ("expert", "shared", "ffn")]
        if unknown or not self.spaces:
            raise ConfigError(f"spaces must be among expert, shared, ffn; got {unknown or 'none'}")
        if self.min_samples < 4:
            raise ConfigError(f"min_samples must be at least 4, got {self.min_samples}")
        if self.budget < 1 or self.bootstrap < 0:
            raise ConfigError("budget must be positive and bootstrap non-negative")
        if not self.concepts:
            raise ConfigError("give at least one concept with --concepts (or 'all')")


def _open_store(path: Path):
    from moelens.store import ActivationStore

    return ActivationStore.open(path)


def _check_store(store, cfg: ProbeConfig) -> list[int]:
    layers = list(cfg.layers) or list(store.layers)
    missing = [l for l in layers if l not in store.layers]
    if missing:
        raise ConfigError(f"layers {missing} are not in the store (it has {list(store.layers)})")
    if not any(s in store.spaces(l) for l in layers for s in cfg.spaces):
        raise StoreError(f"the store has none of the spaces {', '.join(cfg.spaces)} at layers "
                         f"{layers}; capture one of them or choose other --spaces")
    if cfg.baselines and cfg.baseline_space in ("ffn", "resid"):
        if not any(cfg.baseline_space in store.spaces(l) for l in layers):
            raise StoreError(f"baseline space {cfg.baseline_space!r} is not in the store; capture "
                             "it, use --baseline_space auto, or --no-baselines")
    return layers


def run(cfg: ProbeConfig) -> int:
    from moelens.analysis.probing import figures

    if cfg.compare:
        paths = figures.compare_runs(cfg.compare, Path(cfg.out))
        print(f"probe: wrote {len(paths)} comparison figures to {cfg.out}")
        return 0
    return _probe(cfg)


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {device!r} is not a torch device; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")


def _open_dense(cfg: ProbeConfig):
    dense = _open_store(Path(cfg.dense_store))
    if not any("ffn" in dense.spaces(l) for l in dense.layers):
        raise StoreError(f"dense store {cfg.dense_store} has no ffn space; capture ffn there or drop --dense_store")
    return dense


def _dense_baseline(cfg: ProbeConfig, dense, store, layers: list[int], layer: int, seed: int,
                    chosen: list, prepared: list, cache: dict) -> list:
    """Prepared size-matched units from the dense store for this MoE layer's expert datasets."""
    from moelens.analysis.probing import concepts as concept_glue
    from moelens.analysis.probing.dataset import dense_store_units, matched_layer

    names = [concept_glue.name_of(c) for c in chosen]
    sizes = [(names.index(p.meta["concept"]), p.meta["expert"], p.n_pos, p.n_neg)
             for p in prepared if p.meta["space"] == "expert" and p.meta["control"] == "none"]
    dense_layers = [l for l in dense.layers if "ffn" in dense.spaces(l)]
    moe_layers = [l for l in layers if "expert" in store.spaces(l)]
    if seed not in cache:
        cache[seed] = [concept_glue.sample(dense, c, cfg.budget, seed) for c in chosen]
    samples = cache[seed]
    return list(dense_store_units(dense, matched_layer(layer, moe_layers, dense_layers), samples,
                                  sizes, layer=layer, seed=seed, kmax=max(cfg.ks),
                                  min_per_class=cfg.min_samples))


def _result_settings(cfg: ProbeConfig) -> dict[str, Any]:
    """The settings that change results, in their JSON form (as saved in ``config.json``)."""
    import json

    from moelens.config import to_dict

    d = {k: v for k, v in to_dict(cfg).items() if k not in ("quiet", "overwrite", "figures", "out")}
    return json.loads(json.dumps(d, sort_keys=True))


def _parts_key(cfg: ProbeConfig) -> str:
    """Hash of the settings that change results: parts of another config are never reused."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(_result_settings(cfg), sort_keys=True).encode()).hexdigest()[:12]


def _check_done_run(out: Path, cfg: ProbeConfig) -> None:
    """A finished run made with other settings is an error, not a silent skip with old results."""
    import json

    try:
        saved = json.loads((out / "config.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return  # no readable config: the DONE marker alone decides, as for any stage
    now = _result_settings(cfg)
    differ = sorted(k for k in set(now) | set(saved) if k not in ("quiet", "overwrite", "figures", "out")
                    and now.get(k) != saved.get(k))
    if differ:
        raise ConfigError(f"{out} holds a finished probe run with other settings "
                          f"({', '.join(differ)}); pass --overwrite to redo it or choose another --out")


def _display_name(model_id: str, store: Path) -> str:
    """A short model name for tables and figure legends when ``--model`` is not given.

    A hub id (``owner/name``) is kept whole; a local path becomes its last part, or the run
    folder's name for moelens's ``<run>/<stage>/model`` layout; no id at all, the store's name.
    """
    if not model_id:
        return store.name
    parts = Path(model_id).parts
    if len(parts) == 2 and not model_id.startswith((".", "/", "~")):
        return model_id
    name = [p for p in parts if p not in ("/", ".", "..")]
    if not name:
        return store.name
    if name[-1] == "model" and len(name) > 1:
        return name[-2]
    return name[-1]


def _starved_concepts(df) -> list[str]:
    """Concepts with no probed row at all: every unit said "not enough samples"."""
    from moelens.analysis.probing.core import NOT_ENOUGH

    if df.empty:
        return []
    status = df.groupby("concept")["status"].agg(lambda s: bool((s == NOT_ENOUGH).all()))
    return sorted(status[status].index)


def _probe(cfg: ProbeConfig) -> int:
    """Probe seed by seed and layer by layer; each (seed, layer) part is saved atomically under
    ``parts/<config hash>/`` so an interrupted run resumes where it stopped, then the table is
    assembled and written whole (parts of a different config are never mixed in)."""
    import shutil

    import pandas as pd
    from tqdm import tqdm

    from moelens.analysis.probing import concepts as concept_glue
    from moelens.analysis.probing import figures, summary, table
    from moelens.analysis.probing.core import probe_units
    from moelens.analysis.probing.dataset import layer_units
    from moelens.rundir import Stage, atomic_path, atomic_write_json

    _check_device(cfg.device)
    store = _open_store(Path(cfg.store))
    layers = _check_store(store, cfg)
    dense = _open_dense(cfg) if cfg.dense_store is not None else None
    chosen = concept_glue.resolve(cfg.concepts, cfg.concept_variant)
    model = cfg.model or _display_name(str((store.manifest.get("model") or {}).get("id") or ""),
                                       Path(cfg.store))
    stage = Stage(Path(cfg.out))
    if stage.done and not cfg.overwrite:
        _check_done_run(stage.path, cfg)
    if not stage.begin(cfg, overwrite=cfg.overwrite, seed=cfg.seeds[0]):
        print(f"probe: {cfg.out} is already done; pass --overwrite to redo it")
        return 0
    fitter = "newton" if cfg.fitter == "fast" else "saga"
    parts_dir = stage.path / "parts" / _parts_key(cfg)
    frames = []
    samples_by_seed: dict[int, list] = {}
    dense_samples: dict[int, list] = {}
    steps = [(s, l) for s in cfg.seeds for l in layers]
    for seed, layer in tqdm(steps, desc="probe", disable=cfg.quiet, file=sys.stderr):
        part = parts_dir / f"seed{seed}_layer{layer}.parquet"
        if part.exists():
            frames.append(pd.read_parquet(part))
            continue
        if seed not in samples_by_seed:
            samples_by_seed[seed] = [concept_glue.sample(store, c, cfg.budget, seed) for c in chosen]
        prepared = list(layer_units(
            store, layer, samples_by_seed[seed], seed=seed, spaces=tuple(cfg.spaces),
            semantics=cfg.semantics, baseline_space=cfg.baseline_space, baselines=cfg.baselines,
            null=cfg.null, kmax=max(cfg.ks), min_per_class=cfg.min_samples))
        if dense is not None and "expert" in store.spaces(layer):
            prepared += _dense_baseline(cfg, dense, store, layers, layer, seed, chosen, prepared,
                                        dense_samples)
        frame = table.to_frame(probe_units(prepared, cfg.ks, fitter=fitter, device=cfg.device,
                                           seed=seed), model, cfg.semantics)
        del prepared
        with atomic_path(part) as tmp:
            frame.to_parquet(tmp, index=False)
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True) if frames else table.to_frame([], model, cfg.semantics)
    table.write_table(df, stage.path)
    facts = summary.model_facts(store, layers, model)
    summ = summary.build(df, facts, cfg.bootstrap, cfg.seeds[0],
                         extra={"fitter": fitter, "semantics": cfg.semantics, "ks": cfg.ks,
                                "seeds": cfg.seeds,
                                "concepts": [concept_glue.name_of(c) for c in chosen]})
    atomic_write_json(stage.path / "summary.json", summ)
    if cfg.figures:
        figures.run_figures(df, summ, stage.path / "figures")
    shutil.rmtree(stage.path / "parts", ignore_errors=True)
    stage.finish({"rows": len(df)})
    head = summ["headline"].get("best_unit_f1", {})
    if not cfg.quiet:
        print(f"probe: {len(df)} rows -> {stage.path}; mean best-unit F1 "
              + " ".join(f"k={k}:{v:.3f}" for k, v in head.items() if v is not None))
        starved = _starved_concepts(df)
        if starved:
            print(f"probe: no unit had {cfg.min_samples} positives and negatives for "
                  f"{len(starved)} concept(s), left out of the averages: {', '.join(starved)}")
    return 0
