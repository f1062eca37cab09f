"""A store whose units fire by known rules, written through the real store writer.

Documents are word sequences (one token per word, spaces attached to the following token):
filler words (made-up and English), the animals ``cat dog bird``, numbers, ``the``, and parenthetical groups of filler
words ``( w w )``. Layer 0 is an MoE layer (6 experts, top-2): expert 0 is routed exactly the
animals, expert 1 the numbers, expert 2 the words inside parentheses (as its first slot, with a
larger weight); every token's other slot(s) go to the filler experts 3-5. Layer 1 is a dense
layer whose ``ffn`` neurons fire (0.5..1) by rule and are 0 elsewhere: 0 animals, 1 numbers,
2 inside parentheses, 3 the token after ``the``, 4 never (a dead unit); 5 and up are distractors (``the``, brackets, six
marker words) whose top windows make the negatives of the others diverse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moelens.capture import store_job
from moelens.capture.windows import ShardPlan, Window
from moelens.store import format as fmt
from moelens.store.writer import LayerPlan, ShardWriter

ANIMALS = ("cat", "dog", "bird")
RULES = {0: "animals", 1: "numbers", 2: "in_parens"}
MARKERS = ("kalon", "minez", "rusit", "tavos", "pedun", "gazor")
REAL = ("house", "tree", "river", "blue", "walk", "green", "stone", "light", "small", "road", "water",
        "north", "open", "field", "glass", "old", "window", "song", "bright", "city")
NEURON_RULES = {0: "animals", 1: "numbers", 2: "in_parens", 3: "after_the", 4: "dead", 5: "the",
                6: "brackets", **{7 + i: m for i, m in enumerate(MARKERS)}}
E, K, D, FFN = 6, 2, 8, 7 + len(MARKERS)


def _filler(rng: np.random.Generator, n: int) -> list[str]:
    sy = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "si", "pe", "du", "ga", "zo"]
    return ["".join(rng.choice(sy, 2)) + rng.choice(["", "n", "s", "r"]) for _ in range(n)]


def documents(n_docs: int, ctx: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    fillers = _filler(rng, 80) + list(REAL) + list(MARKERS)
    docs = []
    for _ in range(n_docs):
        words: list[str] = []
        while len(words) < ctx:
            r = rng.random()
            if r < 0.02:
                words.append(str(rng.choice(ANIMALS)))
            elif r < 0.04:
                words.append(str(int(rng.integers(1, 2000))))
            elif r < 0.06:
                words.append("the")
            elif r < 0.075:
                words += ["("] + list(rng.choice(fillers, int(rng.integers(1, 4)))) + [")"]
            else:
                words.append(str(rng.choice(fillers)))
        docs.append(words[:ctx])
    return docs


def rules_of(words: list[str]) -> dict[str, np.ndarray]:
    n = len(words)
    animals = np.array([w in ANIMALS for w in words])
    numbers = np.array([w.isdigit() for w in words])
    inside = np.zeros(n, dtype=bool)
    depth = 0
    for i, w in enumerate(words):
        if w == ")":
            depth = max(depth - 1, 0)
        inside[i] = depth > 0 and w not in "()"
        if w == "(":
            depth += 1
    after_the = np.array([i > 0 and words[i - 1] == "the" for i in range(n)])
    word = lambda x: np.array([w == x for w in words])  # noqa: E731
    return {**{m: word(m) for m in MARKERS},"animals": animals, "numbers": numbers, "in_parens": inside, "after_the": after_the,
            "dead": np.zeros(n, bool), "the": np.array([w == "the" for w in words]),
            "brackets": np.array([w in "()" for w in words])}


def build(root: Path, n_docs: int = 240, ctx: int = 64, seed: int = 0) -> dict:
    """Write the store; returns the per-token rule masks (concatenated over documents)."""
    rng = np.random.default_rng(seed + 1)
    docs = documents(n_docs, ctx, seed)
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    masks = {k: np.concatenate([rules_of(d)[k] for d in docs]) for k in NEURON_RULES.values()}
    n = n_docs * ctx
    ids = np.zeros((n, K), dtype=np.int64)
    weights = np.zeros((n, K), dtype=np.float32)
    for t in range(n):
        rule = next((e for e, name in RULES.items() if masks[name][t]), None)
        fill = rng.choice([3, 4, 5], 2, replace=False)
        first = rule if rule is not None else fill[1]
        ids[t] = [first, fill[0]]
        w = rng.uniform(0.6, 0.9)
        weights[t] = [w, 1 - w]
    ffn = np.zeros((n, FFN), dtype=np.float32)
    for j, name in NEURON_RULES.items():
        ffn[:, j] = masks[name] * rng.uniform(0.5, 1.0, n)
    plans = [LayerPlan(0, "moe", ["expert", "expert_gate", "expert_out"], {"expert": D, "expert_gate": E, "expert_out": E},
                       num_experts=E, top_k=K),
             LayerPlan(1, "dense", ["ffn"], {"ffn": FFN})]
    texts, offsets = [], []
    for d in docs:
        pos, offs = 0, []
        for w in d:
            offs.append((pos, pos + len(w)))
            pos += len(w) + 1
        texts.append(" ".join(d))
        offsets.append(offs)
    windows = [Window(doc=i, ids=np.array([vocab[w] for w in d], dtype=np.int64), offsets=np.array(offsets[i]))
               for i, d in enumerate(docs)]
    per_shard = n_docs // 2
    shards = [ShardPlan(s, s * per_shard * ctx, (s + 1) * per_shard * ctx, windows[s * per_shard:(s + 1) * per_shard])
              for s in range(2)]
    settings = {"dtype": "fp32", "planted": seed, "layers": [p.to_json() for p in plans]}
    assert store_job.prepare(root, settings, overwrite=False) == "fresh"
    for shard in shards:
        w = ShardWriter(root, shard.index, shard.start, shard.stop, plans, "fp32")
        tok = np.arange(shard.start, shard.stop)
        flat_off = np.concatenate([win.offsets for win in shard.windows])
        table = np.stack([np.concatenate([win.ids for win in shard.windows]), tok // ctx, tok % ctx,
                          flat_off[:, 0], flat_off[:, 1]], axis=1)
        w.add_tokens(tok, table)
        w.add_routing(0, tok, ids[tok], weights[tok])
        rows_tok = np.repeat(tok, K)
        rows_exp = ids[tok].reshape(-1)
        hidden = rng.uniform(0.1, 1.0, (rows_tok.size, D)).astype(np.float32)
        norm = rng.uniform(1.0, 2.0, rows_tok.size).astype(np.float32)
        w.add_expert_rows(0, rows_tok, rows_exp, fmt.to_storage(hidden, "fp32"), norm)
        w.add_dense(1, "ffn", tok, ffn[tok])
        w.finish()
    log = store_job.DocumentLog()
    log.open(root)
    for i, text in enumerate(texts):
        log.add(i, text, used=True)
    store_job.finalize(root, [(s.index, s.start, s.stop) for s in shards], log, plans, settings,
                       {"model": {"id": "planted"}})
    return masks
