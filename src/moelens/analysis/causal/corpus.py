"""A labelled corpus as padded batches of token windows, for the causal runs.

Documents are tokenized once, cut into windows of at most ``ctx`` tokens that never cross
documents (windows of one token predict nothing and are dropped) and grouped in order into
right-padded batches, so position t of every row is token t of its window and a pad never
precedes a real token. Each window keeps its document's domain and, when concepts are asked
for, each token's label of every concept (from the registry's character spans mapped through
the tokenizer's character offsets, so a fast tokenizer is needed then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from moelens.data.domains import LabelledDocument
from moelens.errors import DataError


@dataclass
class Batch:
    """Right-padded windows."""

    ids: torch.Tensor
    """[B, T] long token ids (pads past each window's end)"""
    mask: torch.Tensor
    """[B, T] long, 1 on real tokens"""
    domain: torch.Tensor
    """[B] long, index into :attr:`Windows.domains`"""
    concepts: torch.Tensor | None = None
    """[B, T, C] bool, True where token t (aligned with ``ids``, never on a pad) carries concept
    c of :attr:`Windows.concepts`; None when no concept was asked for"""


@dataclass
class Windows:
    """All batches of a corpus and its domain names."""

    batches: list[Batch]
    domains: list[str]
    n_tokens: int
    """real tokens in all windows"""
    concepts: list[str] = field(default_factory=list)
    """names of the concepts labelled in :attr:`Batch.concepts` (empty: none)"""

    def concept_tokens(self) -> list[int]:
        """Per concept, the scored positions whose next token carries it (the tokens whose
        loss a concept row averages; see :mod:`~moelens.analysis.causal.sweep`)."""
        out = torch.zeros(len(self.concepts), dtype=torch.long)
        for b in self.batches:
            if b.concepts is not None:
                out += (b.concepts[:, 1:] & b.mask[:, 1:, None].bool()).sum((0, 1))
        return out.tolist()


def pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def make_windows(docs: Sequence[LabelledDocument], tokenizer: Any, ctx: int, batch_size: int,
                 max_tokens: int | None = None, concepts: Sequence[Any] = ()) -> Windows:
    """Windows of ``docs`` in batches of ``batch_size``, with up to ``max_tokens`` real tokens in
    all, split equally between the domains (in document order within each): a budget spent in
    document order would leave the domains listed last with no tokens at all, and a per-domain
    comparison with nothing to compare. ``concepts`` (registry :class:`Concept` objects) are
    labelled on each document's text and carried per token in :attr:`Batch.concepts`."""
    if ctx < 2:
        raise DataError(f"windows of {ctx} token(s) predict nothing; use a context of at least 2")
    domains = sorted({d.domain for d in docs})
    index = {name: i for i, name in enumerate(domains)}
    shares = _shares(max_tokens, len(domains))
    taken = dict.fromkeys(domains, 0)
    if concepts and not getattr(tokenizer, "is_fast", False):
        raise DataError("concept labels need a fast tokenizer (character offsets); save the model with "
                        "its tokenizer.json, or drop --concepts")
    pieces: list[tuple[list[int], int, torch.Tensor | None]] = []
    for doc in docs:
        share = shares[index[doc.domain]]
        if share is not None and share - taken[doc.domain] < 2:
            continue  # this domain's share is spent; later documents may be other domains'
        ids, labels = _tokenize(doc.text, tokenizer, concepts)
        for a in range(0, len(ids), ctx):
            piece = ids[a:a + ctx]
            if share is not None:
                piece = piece[:share - taken[doc.domain]]
            if len(piece) >= 2:
                pieces.append((piece, index[doc.domain], None if labels is None else labels[a:a + len(piece)]))
                taken[doc.domain] += len(piece)
            if share is not None and share - taken[doc.domain] < 2:
                break  # no window of two tokens fits in what is left
    total = sum(taken.values())
    if not pieces:
        raise DataError("the corpus gives no window of two or more tokens; give longer documents")
    pad = pad_id(tokenizer)
    batches = []
    for s in range(0, len(pieces), batch_size):
        chunk = pieces[s:s + batch_size]
        width = max(len(p) for p, _, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.zeros((len(chunk), width, len(concepts)), dtype=torch.bool) if concepts else None
        for r, (p, _, lab) in enumerate(chunk):
            ids[r, :len(p)] = torch.tensor(p)
            mask[r, :len(p)] = 1
            if labels is not None:
                labels[r, :len(p)] = lab
        batches.append(Batch(ids, mask, torch.tensor([d for _, d, _ in chunk], dtype=torch.long), labels))
    return Windows(batches, domains, total, [c.name for c in concepts])


def _tokenize(text: str, tokenizer: Any, concepts: Sequence[Any]) -> tuple[list[int], torch.Tensor | None]:
    """Token ids of ``text`` and, with ``concepts``, their labels [n, C] (a token carries a concept
    when one of its characters lies in one of the concept's spans; special tokens never do)."""
    if not concepts:
        return list(tokenizer(text)["input_ids"]), None
    from moelens.data.concepts import token_labels

    enc = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    labels = torch.zeros((len(ids), len(concepts)), dtype=torch.bool)
    for c, concept in enumerate(concepts):
        labels[:, c] = torch.from_numpy(token_labels(concept, text, offsets).astype(bool))
    return ids, labels


def _shares(max_tokens: int | None, n_domains: int) -> list[int | None]:
    """Each domain's part of the token budget (the remainder to the first ones); None: no limit."""
    if max_tokens is None:
        return [None] * n_domains
    base, extra = divmod(max_tokens, n_domains)
    return [base + (i < extra) for i in range(n_domains)]
