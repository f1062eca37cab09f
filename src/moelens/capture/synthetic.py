"""A synthetic capture: a complete store of a chosen MoE shape with planted concept signal, no model.

For benchmarks and tests of what reads stores (scale, memory, distributed probing): any number of
tokens, layers, experts, widths and top-k, written through the same shard writer and finaliser as
a real capture, so the files, checksums and manifest are those of a real store.

The text is words ``w0 .. w{V-1}``, one token each, in documents of ``doc_tokens`` words. Concept
c is the user concept ``c{c}=tokens:...`` of a seeded half of the vocabulary, so each token is
positive for about half the concepts and the probe labels them through the concept registry like
any user concept. Routing is uniform top-k with softmax weights; expert neurons are standard
normal, plus ``signal`` on neuron ``(7 c + 3 e) mod width`` of expert e where concept c holds; the
residual stream (the dense baseline space) carries a weaker ``signal / 4`` on dimension ``c``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moelens.capture import store_job
from moelens.capture.windows import ShardPlan, Window
from moelens.store import format as fmt
from moelens.store.writer import LayerPlan, ShardWriter


@dataclass
class SyntheticStore:
    """What was written: the concept specs to probe, and how long writing took."""

    root: Path
    concepts: list[str]
    """``--concepts`` arguments: ``c00=tokens:w3,w7,...``"""
    write_seconds: float = 0.0
    """time spent in the store writer (sorting rows, converting, hashing, writing files)"""
    bytes: int = 0
    """bytes of the shard files"""
    words: dict[str, Any] = field(default_factory=dict)


def _concept_words(n_concepts: int, vocab: int, seed: int) -> np.ndarray:
    """bool [concepts, vocab]: word w is a positive of concept c (a seeded half of the words)."""
    rng = np.random.default_rng([seed, 1])
    return np.stack([rng.permutation(vocab) < vocab // 2 for _ in range(n_concepts)])


def write(root: Path, *, n_tokens: int, layers: list[int], num_experts: int = 64, top_k: int = 8,
          width: int = 1024, hidden: int = 2048, n_concepts: int = 58, vocab: int = 64,
          doc_tokens: int = 256, shard_tokens: int = 4096, dtype: str = "fp16", signal: float = 2.0,
          seed: int = 0, on_shard: Any = None) -> SyntheticStore:
    """Write a complete synthetic store of ``n_tokens`` tokens at ``root`` (see the module doc)."""
    root = Path(root)
    pos_words = _concept_words(n_concepts, vocab, seed)
    spaces = ["expert", "expert_gate"] + (["resid"] if hidden else [])
    widths = {"expert": width, "expert_gate": num_experts, **({"resid": hidden} if hidden else {})}
    plans = [LayerPlan(l, "moe", list(spaces), dict(widths), num_experts, top_k) for l in layers]
    settings = {"synthetic": {"seed": seed, "signal": signal, "vocab": vocab, "concepts": n_concepts},
                "dtype": dtype, "shard_tokens": shard_tokens, "layers": [p.to_json() for p in plans]}
    if store_job.prepare(root, settings, overwrite=True) != "fresh":
        raise RuntimeError(f"{root} could not be claimed for a synthetic store")
    rng = np.random.default_rng(seed)
    words = rng.integers(0, vocab, n_tokens)
    labels = pos_words[:, words]  # [concepts, n]
    documents = store_job.DocumentLog()
    documents.open(root)
    texts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    written = 0.0
    total_bytes = 0
    for index, start in enumerate(range(0, n_tokens, shard_tokens)):
        stop = min(start + shard_tokens, n_tokens)
        windows = _windows(words, start, stop, doc_tokens, texts, documents)
        shard = ShardPlan(index, start, stop, windows)
        writer = ShardWriter(root, index, start, stop, plans, dtype)
        tok = np.arange(start, stop)
        writer.add_tokens(tok, _token_table(shard))
        for plan in plans:
            _add_layer(writer, plan, tok, labels[:, start:stop], signal, np.random.default_rng([seed, plan.layer, index]))
        t0 = time.perf_counter()
        record = writer.finish()
        written += time.perf_counter() - t0
        total_bytes += sum(e["bytes"] for e in record["files"].values())
        spans.append((index, start, stop))
        if on_shard is not None:
            on_shard(stop - start)
    store_job.finalize(root, spans, documents, plans, settings, {"model": {"id": "synthetic"}, "ctx": doc_tokens})
    specs = [f"c{c:02d}=tokens:" + ",".join(f"w{w}" for w in np.flatnonzero(pos_words[c]))
             for c in range(n_concepts)]
    return SyntheticStore(root, specs, written, total_bytes, {"vocab": vocab})


def _windows(words: np.ndarray, start: int, stop: int, doc_tokens: int, texts: list[str],
             documents: store_job.DocumentLog) -> list[Window]:
    """One window per document part in [start, stop); documents are ``doc_tokens`` words long and
    each is logged when its first token is written."""
    windows = []
    a = start
    while a < stop:
        doc = a // doc_tokens
        b = min((doc + 1) * doc_tokens, stop)
        doc_words = words[doc * doc_tokens: min((doc + 1) * doc_tokens, words.size)]
        names = [f"w{w}" for w in doc_words]
        ends = np.cumsum([len(n) + 1 for n in names]) - 1
        starts = ends - np.array([len(n) for n in names])
        if doc == len(texts):
            texts.append(" ".join(names))
            documents.add(doc, texts[-1], used=True)
        lo, hi = a - doc * doc_tokens, b - doc * doc_tokens
        offsets = np.stack([starts[lo:hi], ends[lo:hi]], axis=1).astype(np.int64)
        windows.append(Window(doc, doc_words[lo:hi].astype(np.int64), offsets))
        a = b
    return windows


def _token_table(shard: ShardPlan) -> np.ndarray:
    parts = []
    for w in shard.windows:
        n = w.ids.size
        parts.append(np.column_stack([w.ids, np.full(n, w.doc), np.arange(n), w.offsets]))
    return np.concatenate(parts).astype(np.int64)


def _add_layer(writer: ShardWriter, plan: LayerPlan, tok: np.ndarray, labels: np.ndarray,
               signal: float, rng: np.random.Generator) -> None:
    """Routing, expert rows and residual stream of one layer on one shard's tokens."""
    n, E, k, D = tok.size, plan.num_experts, plan.top_k, plan.widths["expert"]
    ids = np.argsort(rng.random((n, E)), axis=1)[:, :k]
    logits = rng.standard_normal((n, k)).astype(np.float32)
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    writer.add_routing(plan.layer, tok, ids, weights)
    rows_tok = np.repeat(tok, k)
    rows_exp = ids.reshape(-1)
    values = rng.standard_normal((n * k, D), dtype=np.float32)
    local = np.repeat(np.arange(n), k)
    for c in range(labels.shape[0]):
        hit = labels[c, local]
        values[hit, (7 * c + 3 * rows_exp[hit]) % D] += signal
    writer.add_expert_rows(plan.layer, rows_tok, rows_exp, fmt.to_storage(values, writer.dtype), None)
    del values
    if "resid" in plan.spaces:
        H = plan.widths["resid"]
        resid = rng.standard_normal((n, H), dtype=np.float32)
        for c in range(min(labels.shape[0], H)):
            resid[labels[c], c] += signal / 4
        writer.add_dense(plan.layer, "resid", tok, resid)
