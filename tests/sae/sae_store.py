"""Stores made of known sparse directions, for the SAE tests (no model involved).

``sparse_data`` draws a dictionary of random unit directions and samples that are sparse
nonnegative combinations of them (plus a little noise): the ground truth an SAE should recover.
``build`` writes such samples through the real store writer and finaliser as the dense spaces of
layer 1, beside an MoE layer 0 (expert, expert_gate), so the store looks like a capture. (A plain
module with a name no other test folder uses; ``from conftest import`` would find another
folder's conftest.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moelens.capture import store_job
from moelens.capture.windows import ShardPlan, Window
from moelens.store import format as fmt
from moelens.store.writer import LayerPlan, ShardWriter

CTX = 16
NUM_EXPERTS, TOP_K, EXPERT_WIDTH = 4, 2, 3
N_TOKENS, D_RESID, N_DIRS, ACTIVE = 4096, 32, 64, 3
D_FFN = 16
"""The shared test store: 4096 tokens; resid from 64 directions in 32-d, 3 active per token."""


def sparse_data(n: int, d: int, n_dirs: int, active: int, seed: int, noise: float = 0.01
                ) -> tuple[np.ndarray, np.ndarray]:
    """(samples float32 [n, d], dictionary float32 [n_dirs, d] of unit rows): each sample is a
    combination of ``active`` distinct directions with coefficients uniform in [1, 2]."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_dirs, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    coef = np.zeros((n, n_dirs))
    for i in range(n):
        coef[i, rng.choice(n_dirs, active, replace=False)] = rng.uniform(1.0, 2.0, active)
    x = coef @ dirs + noise * rng.normal(size=(n, d))
    return x.astype(np.float32), dirs.astype(np.float32)


def build(root: Path, resid: np.ndarray, ffn: np.ndarray, shard_tokens: int = 256, seed: int = 0) -> None:
    """A complete fp32 store: layer 0 an MoE layer (expert, expert_gate), layer 1 a dense layer
    whose ``resid`` and ``ffn`` are the given arrays (same number of rows, a multiple of CTX)."""
    n = resid.shape[0]
    assert ffn.shape[0] == n and n % CTX == 0 and shard_tokens % CTX == 0
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.choice(NUM_EXPERTS, TOP_K, replace=False) for _ in range(n)])
    weights = rng.uniform(0.1, 1.0, (n, TOP_K)).astype(np.float32)
    hidden = rng.normal(size=(n, NUM_EXPERTS, EXPERT_WIDTH)).astype(np.float32)
    moe = LayerPlan(layer=0, kind="moe", spaces=["expert", "expert_gate"],
                    widths={"expert": EXPERT_WIDTH, "expert_gate": NUM_EXPERTS},
                    num_experts=NUM_EXPERTS, top_k=TOP_K)
    dense = LayerPlan(layer=1, kind="dense", spaces=["ffn", "resid"],
                      widths={"ffn": ffn.shape[1], "resid": resid.shape[1]})
    windows = [Window(doc=t // CTX, ids=np.arange(CTX, dtype=np.int64) + 3,
                      offsets=np.stack([np.arange(CTX), np.arange(CTX) + 1], axis=1))
               for t in range(0, n, CTX)]
    per = shard_tokens // CTX
    shards = [ShardPlan(i, a, min(a + shard_tokens, n), windows[i * per:(i + 1) * per])
              for i, a in enumerate(range(0, n, shard_tokens))]
    settings = {"dtype": "fp32", "synthetic-sae": seed, "layers": [moe.to_json(), dense.to_json()]}
    assert store_job.prepare(root, settings, overwrite=False) == "fresh"
    for shard in shards:
        w = ShardWriter(root, shard.index, shard.start, shard.stop, [moe, dense], "fp32")
        tok = np.arange(shard.start, shard.stop)
        w.add_tokens(tok, np.stack([tok % 7 + 3, tok // CTX, tok % CTX, tok % CTX, tok % CTX + 1], axis=1))
        w.add_routing(0, tok, ids[tok], weights[tok])
        rows_tok = np.repeat(tok, TOP_K)
        rows_exp = ids[tok].reshape(-1)
        w.add_expert_rows(0, rows_tok, rows_exp, fmt.to_storage(hidden[rows_tok, rows_exp], "fp32"), None)
        w.add_dense(1, "resid", tok, resid[tok])
        w.add_dense(1, "ffn", tok, ffn[tok])
        w.finish()
    documents = store_job.DocumentLog()
    documents.open(root)
    for d in range(n // CTX):
        documents.add(d, "abcdefghijklmnop", used=True)
    spans = [(s.index, s.start, s.stop) for s in shards]
    store_job.finalize(root, spans, documents, [moe, dense], settings, {"model": {"id": "synthetic-sae"}})


def topk_config(root: Path, **over):
    from moelens.analysis.sae import SaeTrainConfig

    base = dict(store=root, layer=1, space="resid", kind="topk", latents=128, k=ACTIVE, steps=200,
                batch_size=256, lr=0.01, lr_warmup=20, log_every=20, ckpt_every=50, quiet=True)
    return SaeTrainConfig(**{**base, **over})
