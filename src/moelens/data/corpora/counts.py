"""How many positives each concept has on a built corpus (to see which ones are too scarce).

Token counts use a word-level proxy tokenizer (a word or one punctuation character, with its
leading whitespace, like GPT-2's pre-tokenization); a model's BPE gives somewhat more tokens
but the same picture of which concepts are scarce.
"""

from __future__ import annotations

import re

import numpy as np

from moelens.data.concepts import (
    ConceptUnavailableError,
    list_concepts,
    pos,
    token_labels,
)
from moelens.data.concepts.labelling import token_eligible

KIND_GROUPS = {"prose": ("text",), "code": ("code",), "latex": ("latex",), "pos": ("pos",)}
_PROXY = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")


def proxy_offsets(text: str) -> np.ndarray:
    """Character offsets [n, 2] of the proxy tokens of ``text``."""
    spans = [m.span() for m in _PROXY.finditer(text)]
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def count_positives(kind: str, docs: list[dict], min_positives: int) -> dict:
    """Per variant and concept: positive tokens, eligible tokens, documents with a positive."""
    result: dict = {"tokenizer": "word-level proxy", "min_positives": min_positives,
                    "n_docs": len(docs)}
    for variant in ("fixed", "paper"):
        concepts = [c for g in KIND_GROUPS[kind] for c in list_concepts(g, variant)]
        table: dict[str, dict] = {}
        for c in concepts:
            reason = c.unavailable_reason()
            table[c.name] = ({"unavailable": reason} if reason else
                             {"positive_tokens": 0, "eligible_tokens": 0, "docs_with_positive": 0})
        for doc in docs:
            text = doc["text"]
            if "pos_tags" in doc and "first_sentence" in doc:
                pos.prime(text, doc["pos_tags"], doc["first_sentence"])
            offsets = proxy_offsets(text)
            for c in concepts:
                row = table[c.name]
                if "unavailable" in row:
                    continue
                try:
                    labels = token_labels(c, text, offsets)
                except ConceptUnavailableError as exc:
                    table[c.name] = {"unavailable": str(exc)}
                    continue
                n_pos = int(labels.sum())
                row["positive_tokens"] += n_pos
                row["eligible_tokens"] += int(token_eligible(c, text, offsets).sum())
                row["docs_with_positive"] += int(n_pos > 0)
        scarce = [n for n, row in table.items()
                  if "unavailable" not in row and row["positive_tokens"] < min_positives]
        result[variant] = {"concepts": table, "scarce": scarce}
    return result
