"""``moelens specialize`` as a library call: routing statistics of a store, and (with the model)
input/output specialization of every expert at every K.

Layer by layer, each finished layer saved as a part under ``parts/<settings hash>/`` so a killed
run resumes; then the tables (``specialization.csv``, ``routing_layers.csv``,
``routing_experts.csv``), the matrices (``matrices/*.npy``), figures and ``summary.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moelens.analysis.specialization import figures, jsd, kmeans, routing_stats, views
from moelens.errors import ConfigError, StoreError

EXPERT_SPACES = ("expert", "expert_gate", "expert_out")


@dataclass
class SpecializeResult:
    path: Path
    skipped: bool = False
    summary: dict[str, Any] | None = None


def moe_layers(store: Any) -> list[int]:
    return [l for l in store.layers if any(s in store.spaces(l) for s in EXPERT_SPACES)]


def token_domains(store: Any, paths: list[Path], text_field: str) -> tuple[np.ndarray, list[str]]:
    """Domain index of every stored token (documents matched by text; unmatched: 'unlabelled')."""
    from moelens.data.domains import read_labelled

    label = {d.text: d.domain for d in read_labelled(paths, text_field)}
    docs = [label.get(t, "unlabelled") for t in store.documents()]
    names = sorted(set(docs))
    index = np.array([names.index(d) for d in docs], dtype=np.int64)
    return index[store.doc_ids()], names


def _check(cfg: Any, store: Any, adapter: Any | None, layers: list[int]) -> list[int]:
    """The Ks to use, after checking the model fits the store."""
    if adapter is None:
        return []
    vocab = int(adapter.unembedding().shape[0])
    if store.n_tokens and int(store.tokens().max()) >= vocab:
        raise ConfigError(f"the store holds token ids up to {int(store.tokens().max())} but {cfg.model} has "
                          f"{vocab} tokens: give the model the store was captured from")
    for l in layers:
        if "expert" in store.spaces(l) and adapter.expert_width(l) != store.width(l, "expert"):
            raise ConfigError(f"layer {l}: the store's experts are {store.width(l, 'expert')} wide, "
                              f"{cfg.model}'s {adapter.expert_width(l)}: give the model the store was captured from")
    ks = sorted(set(cfg.ks)) if cfg.ks else kmeans.default_ks(vocab)
    too_big = [k for k in ks if k > vocab]
    if too_big:
        raise ConfigError(f"K={too_big[0]} is larger than the vocabulary ({vocab} tokens); choose --ks of "
                          f"at most {vocab}")
    if not ks:
        raise ConfigError(f"the vocabulary ({vocab} tokens) is smaller than every default K; give --ks")
    return ks


def specialize(cfg: Any) -> SpecializeResult:
    from moelens.analysis.causal import common
    from moelens.rundir import Stage, atomic_write_json
    from moelens.store import ActivationStore

    stage = Stage(Path(cfg.out))
    if stage.done and not cfg.overwrite:
        common.check_done(stage.path, cfg, "specialize")
        return SpecializeResult(stage.path, skipped=True)
    store = ActivationStore.open(cfg.store)
    have = moe_layers(store)
    if not have:
        raise StoreError(f"the store {cfg.store} holds no routing (no expert space was captured); "
                         "capture a MoE model's expert or expert_gate space")
    layers = list(cfg.layers) or have
    if [l for l in layers if l not in have]:
        raise ConfigError(f"layers {[l for l in layers if l not in have]} have no routing in the store "
                          f"(it has routing at {have})")
    adapter = common.load(cfg.model, cfg.model_dtype, cfg.threads)[2] if cfg.model else None
    ks = _check(cfg, store, adapter, layers)
    domains = token_domains(store, list(cfg.domains), cfg.text_field) if cfg.domains else None
    stage.begin(cfg, overwrite=cfg.overwrite, seed=cfg.seed)
    parts = stage.path / "parts" / common.settings_key(cfg)
    labels = kmeans.cluster_vocabulary(adapter.unembedding(), ks, cfg.seed) if adapter is not None else {}
    tokens = store.tokens()
    results = []
    with common.progress(len(layers), "specialize", cfg.quiet) as bar:
        for layer in layers:
            part = parts / f"L{layer}.json"
            if not part.exists():
                got = _layer(cfg, store, adapter, layer, tokens, labels, domains, stage.path / "matrices")
                atomic_write_json(part, got)
            results.append(json.loads(part.read_text()))
            bar.update(1)
    probs = {}
    for a, b in zip(layers, layers[1:]):  # two layers' routing at a time
        counts = routing_stats.transitions(store.routing(a)[0], store.routing(b)[0], store.num_experts(a),
                                           store.num_experts(b))
        np.save(_npy(stage.path / "matrices" / f"transitions_L{a}_L{b}.npy"), counts)
        probs[(a, b)] = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    summary = _write(cfg, stage.path, results, layers, ks, probs, domains)
    shutil.rmtree(stage.path / "parts", ignore_errors=True)
    stage.finish({"layers": len(layers)})
    return SpecializeResult(stage.path, summary=summary)


def _npy(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _layer(cfg: Any, store: Any, adapter: Any, layer: int, tokens: np.ndarray, labels: dict[int, np.ndarray],
           domains: tuple[np.ndarray, list[str]] | None, matrices: Path) -> dict[str, Any]:
    ids, weights = store.routing(layer)
    n_exp = store.num_experts(layer)
    layer_row, expert_rows = routing_stats.layer_stats(ids, weights, tokens, n_exp, cfg.always_on, cfg.min_count)
    coact = routing_stats.coactivation(ids, n_exp)
    np.save(_npy(matrices / f"coactivation_L{layer}.npy"), coact)
    spec_rows = []
    counts_by_view = {"input": views.input_counts(tokens, ids, labels, n_exp)} if labels else {}
    if labels and "expert" in store.spaces(layer):
        counts_by_view["output"] = views.output_counts(store, adapter, layer, labels, cfg.top, cfg.lens)
    for view, by_k in counts_by_view.items():
        for k, counts in by_k.items():
            rng = np.random.default_rng([cfg.seed, layer, k, 0 if view == "input" else 1])
            layer_counts = counts.sum(0)
            for e in range(n_exp):
                raw, null, spec = jsd.specialization(counts[e], layer_counts, rng, cfg.draws)
                spec_rows.append({"layer": layer, "expert": e, "view": view, "k": k, "n": int(counts[e].sum()),
                                  "jsd": raw, "null": null, "specialization": spec,
                                  "status": "tested" if counts[e].sum() else "untested"})
    if domains is not None:
        index, names = domains
        dom_counts = np.zeros((n_exp, len(names)), dtype=np.int64)
        np.add.at(dom_counts, (ids.reshape(-1), np.repeat(index, ids.shape[1])), 1)
        rng = np.random.default_rng([cfg.seed, layer, 2])
        for e, row in enumerate(expert_rows):
            raw, null, spec = jsd.specialization(dom_counts[e], dom_counts.sum(0), rng, cfg.draws)
            row["domain_specialization"] = spec
            for i, name in enumerate(names):
                row[f"share_{name}"] = float(dom_counts[e, i] / max(dom_counts[e].sum(), 1))
    return {"layer": {"layer": layer, **layer_row}, "experts": [{"layer": layer, **r} for r in expert_rows],
            "specialization": spec_rows}


def _write(cfg: Any, out: Path, results: list[dict[str, Any]], layers: list[int], ks: list[int],
           probs: dict[tuple[int, int], np.ndarray], domains: Any) -> dict[str, Any]:
    from moelens.analysis.causal.common import write_csv
    from moelens.rundir import atomic_write_json

    layer_rows = [r["layer"] for r in results]
    expert_rows = [e for r in results for e in r["experts"]]
    spec_rows = [s for r in results for s in r["specialization"]]
    write_csv(layer_rows, out / "routing_layers.csv")
    write_csv(expert_rows, out / "routing_experts.csv")
    if spec_rows:
        write_csv(spec_rows, out / "specialization.csv")
    means = {}
    for view in ("input", "output"):
        for k in ks:
            vals = [s["specialization"] for s in spec_rows if s["view"] == view and s["k"] == k
                    and s["status"] == "tested"]
            if vals:
                means[f"{view}_K{k}"] = float(np.mean(vals))
    summary = {"store": str(cfg.store), "model": cfg.model or None, "layers": layers, "ks": ks, "lens": cfg.lens,
               "mean_specialization": means, "domains": domains[1] if domains else None,
               "routing": layer_rows}
    atomic_write_json(out / "summary.json", summary)
    if cfg.figures:
        fig = out / "figures"
        if spec_rows:
            figures.specialization_vs_layer(spec_rows, fig / "specialization_vs_layer.png")
        n_exp = max(r["num_experts"] for r in layer_rows)
        load = np.full((len(layers), n_exp), np.nan)
        for e in expert_rows:
            load[layers.index(e["layer"]), e["expert"]] = e["load"]
        figures.heatmap(load, fig / "load.png", "load per expert (share of routed slots)", "expert", "layer", layers)
        for layer in layers:
            coact = np.load(out / "matrices" / f"coactivation_L{layer}.npy")
            cond = coact / np.maximum(np.diag(coact)[:, None], 1)
            figures.heatmap(cond, fig / f"coactivation_L{layer}.png",
                            f"layer {layer}: P(expert j also chosen | expert i chosen)", "expert j", "expert i")
        if len(layers) > 1:
            figures.pathways(layers, probs, fig / "pathways.png")
    return summary
