"""``moelens interpret`` as a library call: check the input, then explain and score every unit.

Units are read one at a time (:func:`.units.read_activations`), turned into examples at once
(only the windows are kept), and explained and scored as asyncio tasks, at most ``in_flight``
at a time, so a remote LLM sees many requests in parallel while memory stays bounded by one
unit's activation plus the windows of the units in flight. Each finished unit is written to
``units/<unit>.json`` atomically; a rerun of an unfinished run skips the units already written
with the same settings, so an interrupted run resumes unit by unit. When every unit is done the
summary, tables and figure are written and the stage is marked done.

Peak memory: the store's token table (40 bytes a token) and document texts, one float32 per
token for the unit being read (plus ``units.DENSE_BATCH`` of them for dense spaces), the
routing of the layer being read (the reader caches it), and for the ``others`` negatives the
top-window pools (``pool_size`` ints per unit).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moelens.analysis.autointerp import summary as summ_mod
from moelens.analysis.autointerp.clients.base import ResponseCache, Usage
from moelens.analysis.autointerp.corpus import Corpus
from moelens.analysis.autointerp.examples import ExampleSettings, Sampler, pools
from moelens.analysis.autointerp.scorers import judges
from moelens.analysis.autointerp.units import EXPERT_SCORES, Unit, read_activations, resolve_units
from moelens.config import to_dict
from moelens.errors import ConfigError, StoreError

VOLATILE = ("out", "overwrite", "quiet", "cache_dir", "figures", "bootstrap")
"""Settings that do not change any unit's result (left out of the settings key)."""


@dataclass
class InterpretResult:
    path: Path
    skipped: bool
    n_units: int = 0
    n_skipped: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


def settings_key(cfg: Any) -> str:
    d = to_dict(cfg)
    for k in VOLATILE:
        d.pop(k, None)
    for k in ("concurrency", "timeout", "max_retries", "backoff", "max_backoff", "price_in", "price_out"):
        d["llm"].pop(k, None)
    d["hf"].pop("threads", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _layers(store, cfg) -> list[int]:
    layers = list(cfg.layer) or list(store.layers)
    missing = [l for l in layers if l not in store.layers]
    if missing:
        raise ConfigError(f"layers {missing} are not in the store (it has {list(store.layers)})")
    if not cfg.layer:  # default: the layers that have what the level needs
        need = ("expert", "expert_gate", "expert_out") if cfg.level == "expert" else (cfg.space,)
        layers = [l for l in layers if any(s in store.spaces(l) for s in need)]
        if not layers:
            raise StoreError(f"no layer of the store holds {' or '.join(need)}; capture it first")
    return layers


@dataclass
class Parts:
    """The explainer, judge, scorers and clients a run uses."""

    explainer: Any
    judge: Any
    scorers: list
    clients: list = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


def build_parts(cfg, cache: ResponseCache) -> Parts:
    from moelens.analysis.autointerp.explainers.llm import LLMExplainer
    from moelens.analysis.autointerp.explainers.rules import RulesExplainer
    from moelens.analysis.autointerp.scorers import binary, detection, embedding, fuzzing, intruder, rules, simulation

    usage = Usage()
    clients: dict[str, Any] = {}
    kinds = {cfg.explainer, cfg.judge_kind}
    if "llm" in kinds:
        from moelens.analysis.autointerp.clients.openai_compat import OpenAIClient, OpenAISettings

        s = cfg.llm
        clients["llm"] = OpenAIClient(OpenAISettings(s.base_url, s.model, s.api_key_env, s.timeout, s.max_retries,
                                                     s.backoff, s.max_backoff, s.concurrency, s.temperature,
                                                     s.max_tokens, s.price_in, s.price_out), cache, usage)
    if "hf" in kinds:
        from moelens.analysis.autointerp.clients.hf import HFClient

        clients["hf"] = HFClient(cfg.hf.model, cache, usage, cfg.hf.device, cfg.hf.max_new_tokens, cfg.hf.threads)
    expert_level = cfg.level == "expert"
    if cfg.explainer == "rules":
        explainer = RulesExplainer(tuple(cfg.rules_concepts), threshold=cfg.threshold)
    else:
        explainer = LLMExplainer(clients[cfg.explainer], expert_level, prefill=cfg.explainer == "hf")
    judge = {"rules": lambda: judges.RulesJudge(),
             "llm": lambda: judges.ChatJudge(clients["llm"], cfg.llm.batch),
             "hf": lambda: judges.ProbJudge(clients["hf"], cfg.hf.min_mass)}[cfg.judge_kind]()
    if "embedding" in cfg.scorers:
        embedding.check_available()
    make = {"detection": detection.Detection, "fuzzing": fuzzing.Fuzzing, "binary": binary.Binary,
            "intruder": lambda: intruder.Intruder(cfg.intruder_questions, cfg.intruder_size),
            "embedding": lambda: embedding.Embedding(cfg.embedding_device),
            "simulation": simulation.Simulation, "rules": lambda: rules.RulesScore(cfg.threshold)}
    return Parts(explainer, judge, [make[s]() for s in cfg.scorers], list(clients.values()), usage)


def _pool_units(store, cfg, layers: list[int], units: list[Unit]) -> list[Unit]:
    """Units whose top windows feed the 'others' negatives: every expert of the layer at expert
    level, the chosen units at neuron level."""
    if cfg.level == "neuron":
        return units
    space = EXPERT_SCORES[cfg.expert_score]
    return [Unit(l, space, e) for l in layers for e in range(store.num_experts(l))]


def _scorer_rng(seed: int, unit: Unit, scorer: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(unit.name.encode()), zlib.crc32(scorer.encode())])


async def unit_record(unit: Unit, ex, parts: Parts, cfg, promoted: list[str] | None, key: str) -> dict:
    rec: dict[str, Any] = {"unit": {"name": unit.name, "layer": unit.layer, "space": unit.space,
                                    "expert": unit.expert, "index": unit.index},
                           "status": ex.status, "settings": key, "explainer": cfg.explainer,
                           "judge": cfg.judge_kind, "promoted": promoted, "examples": ex.to_json(),
                           "explanation": None, "scores": {}}
    if not ex.ok:
        return rec
    expl = await parts.explainer.explain(ex, promoted)
    rec["explanation"] = expl.to_json()

    async def one(scorer):
        if scorer.needs_explanation and not expl.ok:
            return scorer.name, {"metrics": {"failures": 1, "failure": "no explanation"}}
        res = await scorer.score(ex, expl, parts.judge, _scorer_rng(cfg.seed, unit, scorer.name))
        return scorer.name, res.to_json()

    for name, res in await asyncio.gather(*(one(s) for s in parts.scorers)):
        rec["scores"][name] = res
    return rec


def _done_units(units_dir: Path, key: str) -> dict[str, dict]:
    out = {}
    for path in sorted(units_dir.glob("*.json")) if units_dir.exists() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("settings") == key:
            out[rec["unit"]["name"]] = rec
    return out


async def _run(store, corpus, sampler, todo, parts, cfg, lens, key, units_dir, in_flight) -> None:
    from tqdm import tqdm

    from moelens.rundir import atomic_write_text

    gate = asyncio.Semaphore(in_flight)
    tasks: list[asyncio.Task] = []
    bars: list = []  # drawn once the first unit is done, so an unusable endpoint stays one line

    async def process(unit: Unit, ex) -> None:
        try:
            promoted = lens.get((unit.layer, unit.expert)) if lens and unit.is_expert else None
            rec = await unit_record(unit, ex, parts, cfg, promoted, key)
            blob = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
            await asyncio.to_thread(atomic_write_text, units_dir / f"{unit.name}.json", blob)
            if not bars:
                bars.append(tqdm(total=len(todo), desc="interpret", unit="unit", disable=cfg.quiet,
                                 file=sys.stderr))
            bars[0].update()
        finally:
            gate.release()

    try:
        for unit, act in read_activations(store, todo, cfg.semantics):
            ex = sampler.examples(unit, act)
            del act
            await gate.acquire()
            for t in tasks:  # stop at the first error (an unusable endpoint, say)
                if t.done() and t.exception() is not None:
                    raise t.exception()
            tasks.append(asyncio.create_task(process(unit, ex)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in parts.clients:
            await c.close()
        for bar in bars:
            bar.close()


def interpret(cfg: Any) -> InterpretResult:
    """Interpret ``cfg.store``'s units into the run stage ``cfg.out`` (resuming a killed run)."""
    from moelens.analysis.autointerp.lens import load_lens
    from moelens.rundir import Stage, atomic_write_json
    from moelens.store import ActivationStore

    store = ActivationStore.open(Path(cfg.store))
    if int(store.n_tokens) == 0:
        raise StoreError(f"the store {cfg.store} holds no tokens; capture a non-empty corpus first")
    layers = _layers(store, cfg)
    units = resolve_units(store, layers, cfg.level, cfg.units, cfg.expert_score, cfg.space, cfg.semantics)
    lens = None
    lens_path = cfg.lens or (Path(cfg.store) / "lens.json")
    if cfg.level == "expert" and (cfg.lens is not None or lens_path.exists()):
        lens = load_lens(lens_path, store, cfg.lens_variant)
    out = Path(cfg.out)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir is not None else out / "cache"
    parts = build_parts(cfg, ResponseCache(cache_dir))
    stage = Stage(out)
    if cfg.overwrite and out.exists():  # redo everything but keep the response cache
        for child in out.iterdir():
            if child.resolve() != cache_dir.resolve():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    if not stage.begin(cfg, overwrite=False, seed=cfg.seed):
        return InterpretResult(out, skipped=True)
    key = settings_key(cfg)
    units_dir = out / "units"
    done = _done_units(units_dir, key)
    todo = [u for u in units if u.name not in done]
    corpus = Corpus.from_store(store, cfg.window)
    settings = ExampleSettings(cfg.window, cfg.sampling, cfg.n_explain, cfg.n_test, cfg.n_negative,
                               cfg.min_examples, cfg.threshold, tuple(cfg.negatives), cfg.pool_size,
                               seed=cfg.seed, binary_shared=cfg.binary_shared)
    others = None
    if todo and ("others" in cfg.negatives or "binary" in cfg.scorers):
        pool_units = _pool_units(store, cfg, layers, units)
        others = pools(corpus, read_activations(store, pool_units, cfg.semantics), cfg.pool_size, cfg.threshold)
    sampler = Sampler(corpus, settings, others)
    in_flight = max(1, cfg.llm.concurrency) if "llm" in (cfg.explainer, cfg.judge_kind) else 2
    if todo:
        asyncio.run(_run(store, corpus, sampler, todo, parts, cfg, lens, key, units_dir, in_flight))
    records = list(_done_units(units_dir, key).values())
    records = [r for r in records if r["unit"]["name"] in {u.name for u in units}]
    summ = summ_mod.build(records, cfg.scorers, cfg.bootstrap, cfg.seed)
    usage = parts.usage.to_json()
    summ["usage"] = usage
    summ["settings"] = {"explainer": cfg.explainer, "judge": cfg.judge_kind, "level": cfg.level,
                        "sampling": cfg.sampling, "layers": layers, "key": key}
    atomic_write_json(out / "summary.json", summ)
    atomic_write_json(out / "usage.json", usage)
    summ_mod.write_tables(summ, out)
    if cfg.figures:
        summ_mod.decile_figure(summ, out / "figures")
    n_skipped = sum(r["status"] != "ok" for r in records)
    stage.finish({"units": len(records)})
    return InterpretResult(out, False, len(records), n_skipped, summ)
