"""Finding concepts that label identical tokens on a corpus.

Two concepts that label the same tokens are one concept counted twice; the paper's 58 hold
three such pairs (numerator, denominator and frac; digits and contains_digit). Known pairs are
declared with ``duplicate_of``; :func:`find_duplicates` checks any set of concepts on real
tokens, so a new concept that silently repeats another is caught.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from moelens.data.concepts.labelling import token_labels
from moelens.data.concepts.registry import Concept

Tokenize = Callable[[str], np.ndarray]
"""text -> [n, 2] character offsets of its tokens."""


def label_matrix(concepts: list[Concept], docs: Iterable[str], tokenize: Tokenize) -> np.ndarray:
    """Bool [n_concepts, n_tokens]: every concept's labels over all tokens of ``docs``."""
    columns = []
    for doc in docs:
        offsets = tokenize(doc)
        columns.append(np.stack([token_labels(c, doc, offsets) for c in concepts]))
    if not columns:
        return np.zeros((len(concepts), 0), dtype=bool)
    return np.concatenate(columns, axis=1)


def find_duplicates(concepts: list[Concept], docs: Iterable[str], tokenize: Tokenize,
                    min_positives: int = 1) -> list[list[str]]:
    """Groups (two or more names) of concepts with identical token labels on ``docs``.

    Concepts with fewer than ``min_positives`` positive tokens are left out: two concepts that
    never fire are trivially identical and say nothing.
    """
    matrix = label_matrix(concepts, docs, tokenize)
    groups: dict[bytes, list[str]] = {}
    for concept, row in zip(concepts, matrix):
        if int(row.sum()) >= min_positives:
            groups.setdefault(np.packbits(row).tobytes() + bytes([len(row) % 8]), []).append(
                concept.name)
    return [names for names in groups.values() if len(names) > 1]
