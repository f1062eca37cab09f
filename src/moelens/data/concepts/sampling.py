"""Choosing the labelled tokens a probe trains on: one negative per positive, same documents.

Following the paper, negatives are drawn from the documents that hold the positives, so a
probe separates the concept from its surroundings rather than one domain from another. The
number of labelled tokens per concept is capped (``budget``, positives + negatives; the paper
used about 5,000).
"""

from __future__ import annotations

import numpy as np

from moelens.errors import ConfigError

DEFAULT_BUDGET = 5000


def sample_examples(labels: np.ndarray, eligible: np.ndarray | None, budget: int, seed: int,
                    doc_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of sampled positive and negative tokens, sorted, equally many of each.

    ``labels`` [n] bool: the concept's token labels. ``eligible`` [n] bool or None: tokens that
    may be sampled at all (inside the concept's window, not padding, routed to the unit...).
    ``budget``: at most this many tokens in total (so ``budget // 2`` positives). ``doc_ids``
    [n] (optional): the document of each token; when given, negatives come only from
    documents holding a sampled positive, one from the same document as each positive where
    that document has one left, the rest from the other positive-bearing documents.
    Without ``doc_ids`` the caller's ``eligible`` mask is the only domain restriction.
    """
    labels = np.asarray(labels, dtype=bool)
    if budget < 2:
        raise ConfigError(f"token budget per concept must be at least 2, got {budget}")
    ok = np.ones_like(labels) if eligible is None else np.asarray(eligible, dtype=bool)
    if ok.shape != labels.shape:
        raise ValueError(f"eligible has shape {ok.shape}, labels {labels.shape}")
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(labels & ok)
    neg = np.flatnonzero(~labels & ok)
    if doc_ids is not None:
        doc_ids = np.asarray(doc_ids)
        neg = neg[np.isin(doc_ids[neg], np.unique(doc_ids[pos]))]
    n = min(len(pos), len(neg), budget // 2)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos_pick = rng.choice(pos, size=n, replace=False)
    if doc_ids is None:
        neg_pick = rng.choice(neg, size=n, replace=False)
    else:
        neg_pick = _same_document_negatives(pos_pick, neg, doc_ids, rng)
    return np.sort(pos_pick).astype(np.int64), np.sort(neg_pick).astype(np.int64)


def _same_document_negatives(pos_pick: np.ndarray, neg: np.ndarray, doc_ids: np.ndarray,
                             rng: np.random.Generator) -> np.ndarray:
    """One negative per positive, from the positive's document while it has unused ones."""
    shuffled = rng.permutation(neg)
    order = np.argsort(doc_ids[shuffled], kind="stable")
    shuffled = shuffled[order]  # grouped by document, random within each document
    docs, starts, counts = np.unique(doc_ids[shuffled], return_index=True, return_counts=True)
    where = {int(d): [int(s), int(s + c)] for d, s, c in zip(docs, starts, counts)}
    chosen: list[int] = []
    short = 0
    for d in doc_ids[pos_pick]:
        cursor = where.get(int(d))
        if cursor is not None and cursor[0] < cursor[1]:
            chosen.append(int(shuffled[cursor[0]]))
            cursor[0] += 1
        else:
            short += 1
    if short:
        rest = np.concatenate([shuffled[c[0]:c[1]] for c in where.values()])
        chosen += rng.choice(rest, size=short, replace=False).tolist()
    return np.asarray(chosen, dtype=np.int64)
