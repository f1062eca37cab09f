"""``moelens probe`` as a library call: check the input, probe a store start to finish, write the
run stage (``probe.parquet``/``.csv``, ``summary.json``, ``figures/``).

Probing goes item by item (seed, layer, block of units: :mod:`.work`); each item's part is saved
atomically under ``parts/<config hash>/`` so an interrupted run resumes where it stopped, then
the table is assembled from the parts and written whole (parts of a different config are never
mixed in). Under ``torchrun`` the items are dealt out to the ranks (:mod:`.ranks`) and rank 0
merges the parts once every rank is done: the same table as one process. ``cfg`` is a
:class:`moelens.analysis.probing.command.ProbeConfig` (taken as is, not imported, so that the
command module stays the only one that knows about the command line).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.analysis.probing import concepts as concept_glue
from moelens.analysis.probing import core, figures, runs, summary, table, work
from moelens.analysis.probing.baselines import DenseBaseline
from moelens.analysis.probing.ranks import Ranks, rank_device, setup
from moelens.errors import ConfigError, StoreError


@dataclass
class ProbeResult:
    """What a probe call produced, for the command to report."""

    path: Path
    skipped: bool
    """the run in ``path`` was already done with the same settings: nothing was redone"""
    rows: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    starved: list[str] = field(default_factory=list)
    """concepts for which no unit had enough positives and negatives"""
    rank: int = 0
    """this process's rank under torchrun (only rank 0 writes and reports results)"""


def open_store(path: Path):
    """The activation store at ``path`` (a StoreError when there is none)."""
    from moelens.store import ActivationStore

    return ActivationStore.open(path)


def check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {device!r} is not a torch device; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")


def check_store(store: Any, cfg: Any) -> list[int]:
    """The layers to probe, after checking that the store can answer the config: it holds
    tokens, the layers and spaces asked for, and units wide enough for at least one k."""
    if int(store.n_tokens) == 0:
        raise StoreError(f"the store {cfg.store} holds no tokens; capture a non-empty corpus "
                         "into it (moelens capture) and probe that")
    layers = list(cfg.layers) or list(store.layers)
    missing = [l for l in layers if l not in store.layers]
    if missing:
        raise ConfigError(f"layers {missing} are not in the store (it has {list(store.layers)})")
    if not any(s in store.spaces(l) for l in layers for s in cfg.spaces):
        raise StoreError(f"the store has none of the spaces {', '.join(cfg.spaces)} at layers "
                         f"{layers}; capture one of them or choose other --spaces")
    widest = max(int(store.width(l, s)) for l in layers for s in cfg.spaces if s in store.spaces(l))
    if min(cfg.ks) > widest:
        raise ConfigError(f"every k in --ks ({' '.join(map(str, cfg.ks))}) exceeds the widest "
                          f"probed unit ({widest} neurons); choose ks of at most {widest}")
    if cfg.baselines and cfg.baseline_space in ("ffn", "resid"):
        if not any(cfg.baseline_space in store.spaces(l) for l in layers):
            raise StoreError(f"baseline space {cfg.baseline_space!r} is not in the store; capture "
                             "it, use --baseline_space auto, or --no-baselines")
    return layers


def starved_concepts(df) -> list[str]:
    """Concepts with no probed row at all: every unit said "not enough samples"."""
    if df.empty:
        return []
    status = df.groupby("concept")["status"].agg(lambda s: bool((s == core.NOT_ENOUGH).all()))
    return sorted(status[status].index)


def probe(cfg: Any) -> ProbeResult:
    """Probe ``cfg.store`` into the run stage ``cfg.out`` (resuming a killed run); under
    ``torchrun`` every rank takes its share of the work items and rank 0 writes the results.

    numpy's BLAS runs on one thread here: the products of probing are small (hundreds of rows
    by at most a few thousand columns), where extra BLAS threads cost more than they give, and
    on a busy machine far more (measured 40x slower neuron ranking with OpenBLAS's default
    threads on a loaded 2-core machine). To use more cores, run more processes (torchrun)."""
    from threadpoolctl import threadpool_limits

    ranks = setup()
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return _probe(cfg, ranks)
    finally:
        ranks.close()


def _begin(stage: Any, cfg: Any) -> str:
    if stage.done and not cfg.overwrite:
        runs.check_done_run(stage.path, cfg)
    return "go" if stage.begin(cfg, overwrite=cfg.overwrite, seed=cfg.seeds[0]) else "skip"


def _probe(cfg: Any, ranks: Ranks) -> ProbeResult:
    from tqdm import tqdm

    from moelens.rundir import Stage, atomic_path, atomic_write_json

    device = rank_device(cfg.device, ranks)
    check_device(device)
    store = open_store(Path(cfg.store))
    layers = check_store(store, cfg)
    chosen = concept_glue.resolve(cfg.concepts, cfg.concept_variant)
    moe_layers = [l for l in layers if "expert" in store.spaces(l)]
    dense = None
    if cfg.dense_store is not None:
        dense = DenseBaseline(open_store(Path(cfg.dense_store)), Path(cfg.dense_store), chosen,
                              cfg.budget, max(cfg.ks), cfg.min_samples)
    model = cfg.model or runs.display_name(
        str((store.manifest.get("model") or {}).get("id") or ""), Path(cfg.store))
    stage = Stage(Path(cfg.out))
    if ranks.decide(lambda: _begin(stage, cfg)) == "skip":
        return ProbeResult(stage.path, skipped=True, rank=ranks.rank)
    fitter = "newton" if cfg.fitter == "fast" else "saga"
    parts_dir = stage.path / "parts" / runs.parts_key(cfg)
    items = work.plan(store, layers, cfg.seeds, tuple(cfg.spaces))
    labels: list[Any] = []

    def sample(seed: int) -> list:
        if not labels:
            labels.append(concept_glue.Labels(store))
        return [concept_glue.sample(store, c, cfg.budget, seed, labels=labels[0]) for c in chosen]

    prober = work.Prober(store, cfg, sample, model, fitter, device, dense, moe_layers)
    mine = items[ranks.rank::ranks.world]
    bar = tqdm(mine, desc="probe", disable=cfg.quiet or ranks.rank != 0, file=sys.stderr)
    for item in bar:
        part = parts_dir / f"{item.name}.parquet"
        if part.exists():
            continue
        frame = prober.probe(item)
        with atomic_path(part) as tmp:
            frame.to_parquet(tmp, index=False)
    ranks.barrier()
    if ranks.rank != 0:
        return ProbeResult(stage.path, skipped=False, rank=ranks.rank)
    df = _merge(items, parts_dir, model, cfg.semantics)
    table.write_table(df, stage.path)
    facts = summary.model_facts(store, layers, model)
    summ = summary.build(df, facts, cfg.bootstrap, cfg.seeds[0],
                         extra={"fitter": fitter, "semantics": cfg.semantics, "ks": cfg.ks,
                                "seeds": cfg.seeds,
                                "concepts": [concept_glue.name_of(c) for c in chosen]},
                         duplicates=concept_glue.duplicates(chosen))
    atomic_write_json(stage.path / "summary.json", summ)
    if cfg.figures:
        figures.run_figures(df, summ, stage.path / "figures")
    shutil.rmtree(stage.path / "parts", ignore_errors=True)
    stage.finish({"rows": len(df)})
    return ProbeResult(stage.path, skipped=False, rows=len(df), summary=summ,
                       starved=starved_concepts(df))


def _merge(items: list[Any], parts_dir: Path, model: str, semantics: str):
    """The table of every item's part, in item order (the same whoever wrote each part)."""
    import pandas as pd

    missing = [i.name for i in items if not (parts_dir / f"{i.name}.parquet").exists()]
    if missing:
        raise StoreError(f"probe part {missing[0]} is missing from {parts_dir}: under torchrun on "
                         "several nodes --out must be on a filesystem every node shares; rerun to "
                         "redo the missing parts")
    frames = [pd.read_parquet(parts_dir / f"{i.name}.parquet") for i in items]
    return pd.concat(frames, ignore_index=True) if frames else table.to_frame([], model, semantics)
