"""Unit activations of an activation store at the scored positions of the games it was captured on.

A chess store holds one document per game (capture of a ``;1.e4 …`` transcript file). The board
labels come from a games file (:func:`moelens.data.chess.labels.labels_for_file`, cached, so
several models' stores share them). :func:`match_positions` ties the two together: each store
document is found among the games by its text, and each scored position (a "." of the game) by
the token whose character span holds it. Only tokens in the *first* context window of their game
count: a later window starts without the moves before it, so the model cannot know the board
there (such positions are dropped and counted). The games are split into fitting and test games
(a seeded permutation), as the reference fits labels on 1,000 games and tests on 1,000 others.

:func:`unit_blocks` then reads one unit space at those tokens, one block of units at a time: a
dense space (``ffn``, ``resid``, ``shared``, ``sae``, ``expert_gate``, ``expert_out``, any space
``store.dense`` serves) in one block, the expert neurons one expert at a time, in the wide-view
order (unit e·D + i is neuron i of expert e). Expert neurons are read ``gated`` (router weight ×
activation, 0 where not routed: MoE-X's z) or ``zero_filled`` (the ungated activation, 0 where
not routed); a store holds expert activations only where the expert was routed, so the ungated
activations of unrouted experts are not available and count as "not firing".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from moelens.data.chess.labels import BoardLabels
from moelens.errors import DataError, StoreError

EXPERT_SEMANTICS = ("gated", "zero_filled")
"""Readings of expert neurons that are defined at every position (see the module docstring)."""


@dataclass
class MatchedPositions:
    """The scored positions of a store, split into fitting and test games."""

    fit_tokens: np.ndarray
    """int64 [n_fit]: store token index of each fitting position."""
    test_tokens: np.ndarray
    """int64 [n_test]: store token index of each test position."""
    fit_rows: np.ndarray
    """int64 [n_fit]: row of each fitting position in the games file's labels."""
    test_rows: np.ndarray
    """int64 [n_test]: row of each test position in the labels."""
    n_games_fit: int
    """Games with at least one fitting position."""
    n_games_test: int
    """Games with at least one test position."""
    n_unmatched_documents: int
    """Store documents that are not a game of the games file (ignored)."""
    n_dropped_positions: int
    """Positions of matched games not scored: beyond the captured tokens or outside the game's
    first context window."""


def _token_of_chars(doc_ids: np.ndarray, offsets: np.ndarray, positions: np.ndarray,
                    doc: np.ndarray, char: np.ndarray) -> np.ndarray:
    """Store token index holding character ``char`` of document ``doc`` in the document's first
    context window, or −1 (vectorised; tokens are stored in document order)."""
    n = doc_ids.size
    if n == 0:
        return np.full(doc.size, -1, dtype=np.int64)
    span = int(max(offsets[:, 1].max(), char.max() if char.size else 0)) + 2
    key = doc_ids * span + offsets[:, 0]
    if np.any(np.diff(key) < 0):
        raise StoreError("the store's tokens are not in document order; recapture the store")
    want = doc * span + char
    idx = np.searchsorted(key, want, side="right") - 1
    ok = idx >= 0
    idx_c = np.maximum(idx, 0)
    ok &= (doc_ids[idx_c] == doc) & (offsets[idx_c, 0] <= char) & (char < offsets[idx_c, 1])
    # first window: a token's position in the window equals its ordinal in the document
    first = np.searchsorted(doc_ids, doc_ids, side="left")
    ordinal = np.arange(n) - first
    ok &= positions[idx_c] == ordinal[idx_c]
    return np.where(ok, idx, -1)


def match_positions(store, games: list[str], labels: BoardLabels, fit_fraction: float = 0.5,
                    seed: int = 0) -> MatchedPositions:
    """Tie the labels' positions to the store's tokens (see the module docstring)."""
    check_chess_store(store)
    where = {}
    for i, g in enumerate(games):
        where.setdefault(g, i)
    docs = store.documents()
    game_of_doc = np.array([where.get(d.strip(), -1) for d in docs], dtype=np.int64)
    if not (game_of_doc >= 0).any():
        raise DataError("none of the store's games is in the games file; pass the games file "
                        "the store was captured on (--games)")
    doc_of_game = np.full(len(games), -1, dtype=np.int64)
    matched = np.flatnonzero(game_of_doc >= 0)
    doc_of_game[game_of_doc[matched[::-1]]] = matched[::-1]  # first document of each game
    rows = np.flatnonzero(doc_of_game[labels.game_index] >= 0)
    doc = doc_of_game[labels.game_index[rows]]
    tok = _token_of_chars(store.doc_ids(), store.offsets(), store.positions(), doc,
                          labels.char_index[rows])
    keep = tok >= 0
    rows, tok = rows[keep], tok[keep]
    if rows.size == 0:
        raise DataError("no scored position of the games lies in the store's captured tokens; "
                        "capture the games with --ctx of at least 256")
    game = labels.game_index[rows]
    order = np.random.default_rng(seed).permutation(np.unique(game))
    n_fit_games = int(round(fit_fraction * order.size))
    if n_fit_games < 1 or n_fit_games >= order.size:
        raise DataError(f"{order.size} scored game(s) cannot be split into fitting and test games "
                        f"at fit_fraction={fit_fraction}; capture more games")
    is_fit = np.isin(game, order[:n_fit_games])
    return MatchedPositions(
        fit_tokens=tok[is_fit], test_tokens=tok[~is_fit], fit_rows=rows[is_fit],
        test_rows=rows[~is_fit], n_games_fit=n_fit_games, n_games_test=order.size - n_fit_games,
        n_unmatched_documents=int((game_of_doc < 0).sum()),
        n_dropped_positions=int((~keep).sum()))


def check_chess_store(store) -> None:
    """Raise StoreError unless the store was captured on chess games."""
    kind = (store.manifest.get("corpus") or {}).get("kind")
    if kind != "chess":
        raise StoreError(f"{store.root} was captured on a {kind or 'non-chess'} corpus, not on "
                         "chess games; capture the model on a games file (one ';1.e4 ...' game "
                         "per line)")


def available_spaces(store, layer: int) -> list[str]:
    """The unit spaces of a layer that board metrics can read (all but routing-only ones)."""
    return list(store.spaces(layer))


def unit_blocks(store, layer: int, space: str, semantics: str, fit_tokens: np.ndarray,
                test_tokens: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks ``(a_fit, a_test)`` of one unit space at the given tokens (see the module
    docstring); ``semantics`` applies to the ``expert`` space only."""
    if space == "expert":
        if semantics not in EXPERT_SEMANTICS:
            raise StoreError(f"expert neurons are scored as {' or '.join(EXPERT_SEMANTICS)}, "
                             f"not {semantics!r}")
        for e in range(store.num_experts(layer)):
            yield (store.expert(layer, e, semantics, tokens=fit_tokens)[1],
                   store.expert(layer, e, semantics, tokens=test_tokens)[1])
        return
    yield (store.dense(layer, space, tokens=fit_tokens),
           store.dense(layer, space, tokens=test_tokens))
