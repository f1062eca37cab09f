"""A small activation store with known contents, written through the real writer and finaliser.

No model is involved: routing and expert rows are drawn from a seeded generator, so a test knows
exactly which token went to which expert with which weight and activation. (A plain module, not
a conftest, so tests import it by a name no other folder uses.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moelens.capture import store_job
from moelens.capture.windows import ShardPlan, Window
from moelens.store import format as fmt
from moelens.store.writer import LayerPlan, ShardWriter

N_TOKENS, SHARD_TOKENS, CTX = 48, 16, 8
NUM_EXPERTS, TOP_K, WIDTH, HIDDEN = 4, 2, 6, 5


@dataclass
class Truth:
    """What was written: routing ids/weights [n, k], expert rows hidden[n, E, D], resid [n, H]."""

    ids: np.ndarray
    weights: np.ndarray
    hidden: np.ndarray
    resid: np.ndarray


def build(root: Path, seed: int = 0, coo: bool = False) -> Truth:
    """Write a complete fp32 store of one MoE layer (expert, expert_gate, resid) under ``root``;
    ``coo`` stores the expert rows as nonzeros (the layout of sparse activations)."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.choice(NUM_EXPERTS, TOP_K, replace=False) for _ in range(N_TOKENS)])
    weights = rng.uniform(0.1, 1.0, (N_TOKENS, TOP_K)).astype(np.float32)
    hidden = rng.normal(size=(N_TOKENS, NUM_EXPERTS, WIDTH)).astype(np.float32)
    if coo:
        hidden = np.maximum(hidden, 0)
    resid = rng.normal(size=(N_TOKENS, HIDDEN)).astype(np.float32)
    plan = LayerPlan(layer=0, kind="moe", spaces=["expert", "expert_gate", "resid"],
                     widths={"expert": WIDTH, "expert_gate": NUM_EXPERTS, "resid": HIDDEN},
                     num_experts=NUM_EXPERTS, top_k=TOP_K, sparse_experts=coo)
    doc_text = "abcdefgh"
    windows = [Window(doc=t // CTX, ids=np.arange(CTX, dtype=np.int64) + 3,
                      offsets=np.stack([np.arange(CTX), np.arange(CTX) + 1], axis=1))
               for t in range(0, N_TOKENS, CTX)]
    per_shard = SHARD_TOKENS // CTX
    shards = [ShardPlan(i, i * SHARD_TOKENS, (i + 1) * SHARD_TOKENS, windows[i * per_shard:(i + 1) * per_shard])
              for i in range(N_TOKENS // SHARD_TOKENS)]
    settings = {"dtype": "fp32", "synthetic": seed, "coo": coo, "layers": [plan.to_json()]}
    assert store_job.prepare(root, settings, overwrite=False) == "fresh"
    for shard in shards:
        w = ShardWriter(root, shard.index, shard.start, shard.stop, [plan], "fp32")
        tok = np.arange(shard.start, shard.stop)
        table = np.stack([tok % 7 + 3, tok // CTX, tok % CTX, tok % CTX, tok % CTX + 1], axis=1)
        w.add_tokens(tok, table)
        w.add_routing(0, tok, ids[tok], weights[tok])
        rows_tok = np.repeat(tok, TOP_K)
        rows_exp = ids[tok].reshape(-1)
        w.add_expert_rows(0, rows_tok, rows_exp, fmt.to_storage(hidden[rows_tok, rows_exp], "fp32"), None)
        w.add_dense(0, "resid", tok, resid[tok])
        w.finish()
    documents = store_job.DocumentLog()
    documents.open(root)
    for d in range(N_TOKENS // CTX):
        documents.add(d, doc_text, used=True)
    spans = [(s.index, s.start, s.stop) for s in shards]
    store_job.finalize(root, spans, documents, [plan], settings, {"model": {"id": "synthetic"}})
    return Truth(ids, weights, hidden, resid)
