"""Routing statistics of a store: where the tokens go, how experts share them, how routing flows.

Everything here reads the routing table (top-k ids and weights per token) of the store, so it
needs no model. The router's full distribution is not stored, so "entropy" is reported twice,
honestly named: of the load over experts (how evenly the layer spreads its slots) and of each
token's renormalised top-k weights (how evenly a token splits between its chosen experts).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)


def coactivation(ids: np.ndarray, num_experts: int) -> np.ndarray:
    """[E, E] counts of tokens routed to both i and j (diagonal: tokens routed to i)."""
    onehot = np.zeros((ids.shape[0], num_experts), dtype=np.float64)
    np.put_along_axis(onehot, ids, 1.0, axis=1)
    return onehot.T @ onehot


def transitions(ids_a: np.ndarray, ids_b: np.ndarray, e_a: int, e_b: int) -> np.ndarray:
    """[E_a, E_b] counts of (slot at layer a, slot at layer b) pairs of the same token."""
    counts = np.zeros((e_a, e_b), dtype=np.int64)
    k_a, k_b = ids_a.shape[1], ids_b.shape[1]
    np.add.at(counts, (np.repeat(ids_a, k_b, axis=1).reshape(-1), np.tile(ids_b, (1, k_a)).reshape(-1)), 1)
    return counts


def vocabulary_specialization(tokens: np.ndarray, ids: np.ndarray, num_experts: int,
                              min_count: int = 5) -> tuple[float, int]:
    """Mean (weighted by occurrences) over token ids seen ``min_count`` times of the share of the
    id's occurrences routed to its most frequent expert; and how many ids were counted."""
    tok = np.repeat(tokens, ids.shape[1])
    keys, counts = np.unique(tok * num_experts + ids.reshape(-1), return_counts=True)
    ids_of = keys // num_experts
    best = np.zeros(int(tokens.max()) + 1 if tokens.size else 1, dtype=np.int64)
    np.maximum.at(best, ids_of, counts)
    occurrences = np.bincount(tokens, minlength=best.size)
    keep = occurrences >= min_count
    if not keep.any():
        return float("nan"), 0
    share = best[keep] / occurrences[keep]
    return float((share * occurrences[keep]).sum() / occurrences[keep].sum()), int(keep.sum())


def layer_stats(ids: np.ndarray, weights: np.ndarray, tokens: np.ndarray, num_experts: int,
                always_on: float, min_count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the layer's row, one row per expert) of load, entropy, weight mass, dead/always-on."""
    n, k = ids.shape
    routed = np.bincount(ids.reshape(-1), minlength=num_experts)
    load = routed / max(n * k, 1)
    token_share = routed / max(n, 1)  # each token routes to an expert at most once
    w = np.abs(weights.astype(np.float64))
    mass = w.sum(-1)
    per_token = _entropy_bits(w / np.where(mass > 0, mass, 1.0)[:, None])
    vocab, vocab_ids = vocabulary_specialization(tokens, ids, num_experts, min_count)
    dead = routed == 0
    on = token_share >= always_on
    layer = {"tokens": n, "top_k": k, "num_experts": num_experts,
             "load_entropy_bits": float(_entropy_bits(load)), "max_load_entropy_bits": float(np.log2(num_experts)),
             "topk_weight_entropy_bits": float(per_token.mean()) if n else float("nan"),
             "topk_weight_mass": float(mass.mean()) if n else float("nan"),
             "vocabulary_specialization": vocab, "vocabulary_chance": k / num_experts,
             "vocabulary_ids": vocab_ids, "dead": int(dead.sum()), "always_on": int(on.sum())}
    experts = [{"expert": e, "routed_tokens": int(routed[e]), "load": float(load[e]),
                "token_share": float(token_share[e]), "dead": bool(dead[e]), "always_on": bool(on[e])}
               for e in range(num_experts)]
    return layer, experts
