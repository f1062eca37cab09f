"""From character spans to token labels.

Labels are computed on characters, then mapped onto whatever tokenizer the model uses through
its character offsets (``[n, 2]`` spans, as from a fast tokenizer's ``offset_mapping`` or the
one-character-per-token chess vocabulary). A token is positive when any of its characters lies
inside a match span; tokens with an empty span (special tokens, padding) are never positive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from moelens.data.concepts.registry import Concept, Span


def _char_prefix(spans: Iterable[Span], n_chars: int) -> np.ndarray:
    """Prefix sums of a 0/1 character mask built from ``spans`` (length ``n_chars + 1``)."""
    delta = np.zeros(n_chars + 1, dtype=np.int64)
    for s, e in spans:
        s, e = max(0, min(int(s), n_chars)), max(0, min(int(e), n_chars))
        if e > s:
            delta[s] += 1
            delta[e] -= 1
    covered = (np.cumsum(delta)[:n_chars] > 0).astype(np.int64)
    prefix = np.zeros(n_chars + 1, dtype=np.int64)
    np.cumsum(covered, out=prefix[1:])
    return prefix


def _clip_offsets(offsets, n_chars: int) -> np.ndarray:
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return np.clip(off, 0, n_chars)


def spans_to_token_labels(spans: Iterable[Span], n_chars: int, offsets) -> np.ndarray:
    """Boolean [n_tokens]: does any character of each token fall inside one of ``spans``."""
    prefix = _char_prefix(spans, n_chars)
    off = _clip_offsets(offsets, n_chars)
    start, end = off[:, 0], off[:, 1]
    return (end > start) & (prefix[end] - prefix[start] > 0)


def token_labels(concept: Concept, text: str, offsets) -> np.ndarray:
    """Token labels of ``concept`` on ``text`` tokenized with character ``offsets`` [n, 2]."""
    return spans_to_token_labels(concept.label(text), len(text), offsets)


def token_eligible(concept: Concept, text: str, offsets) -> np.ndarray:
    """Tokens inside the concept's window (all non-empty tokens without one).

    Paper-variant concepts only look at part of a document (first 300 characters, first
    sentence, ...); negatives must come from the same part, so samplers take this mask.
    """
    n = len(text)
    lo, hi = concept.window_span(text)
    off = _clip_offsets(offsets, n)
    start, end = off[:, 0], off[:, 1]
    return (end > start) & (end > lo) & (start < hi)


def regex_spans(pattern: re.Pattern, text: str, group: int | str = 0) -> list[Span]:
    """Spans of ``group`` of every match (empty matches and unmatched groups are dropped)."""
    out = []
    for m in pattern.finditer(text):
        s, e = m.span(group)
        if s >= 0 and e > s:
            out.append((s, e))
    return out


def regex_labeller(pattern: str, group: int | str = 0, flags: int = 0):
    """A labeller returning the spans of ``group`` of ``pattern`` (compiled once)."""
    compiled = re.compile(pattern, flags)

    def label(text: str) -> list[Span]:
        return regex_spans(compiled, text, group)

    label.pattern = pattern  # type: ignore[attr-defined]
    return label


def union(*labellers):
    """A labeller returning the spans of all ``labellers`` together."""

    def label(text: str) -> list[Span]:
        out: list[Span] = []
        for fn in labellers:
            out.extend(fn(text))
        return sorted(out)

    return label


def inside(spans: list[Span], regions: list[Span]) -> list[Span]:
    """The spans whose every character lies inside the union of ``regions``."""
    if not regions or not spans:
        return []
    prefix = _char_prefix(regions, max(max(e for _, e in regions), max(e for _, e in spans)))
    return [(s, e) for s, e in spans if prefix[e] - prefix[s] == e - s]


def outside(spans: list[Span], regions: list[Span]) -> list[Span]:
    """The spans that do not overlap any of ``regions``."""
    if not regions:
        return list(spans)
    prefix = _char_prefix(regions, max(max(e for _, e in regions), max((e for _, e in spans), default=0)))
    return [(s, e) for s, e in spans if prefix[e] - prefix[s] == 0]


def corpus_token_labels(concept: Concept, documents: list[str], doc_ids, offsets
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and window eligibility for every token of a capture (e.g. an activation store).

    ``documents[d]`` is the text of document ``d``; ``doc_ids`` [n] and ``offsets`` [n, 2] give
    each token's document and character span in it (tokens need not be grouped by document).
    Returns (labels, eligible), both bool [n]; each document is labelled once.
    """
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    labels = np.zeros(len(doc_ids), dtype=bool)
    eligible = np.zeros(len(doc_ids), dtype=bool)
    order = np.argsort(doc_ids, kind="stable")
    docs, starts = np.unique(doc_ids[order], return_index=True)
    bounds = list(starts[1:]) + [len(order)]
    for d, lo, hi in zip(docs, starts, bounds):
        rows = order[lo:hi]
        text = documents[int(d)]
        labels[rows] = token_labels(concept, text, off[rows])
        eligible[rows] = token_eligible(concept, text, off[rows])
    return labels, eligible
