"""Glue to the concept registry: concept names -> sampled positive/negative tokens of a store.

Uses only the registry's documented functions (``groups``, ``get_concept``, ``list_concepts``,
``canonical_concepts``, ``corpus_token_labels``, ``sample_examples``); unknown names raise the registry's ConfigError.
Concept selectors accepted in ``--concepts``: ``all`` (every concept of the chosen variant),
``group:NAME`` or a bare group name (one group, e.g. ``latex``), or anything ``get_concept``
parses (a concept name or a user concept such as ``regex:...``), always in the chosen variant.

Sampling honours the concept's eligibility mask (``corpus_token_labels``): paper-variant
concepts look only at part of each document (first 300 characters, first sentence...), so
their negatives must come from that part too, and tokens with an empty character span (BOS and
other special tokens the tokenizer adds) are never sampled, not even as negatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moelens.analysis.probing.dataset import ConceptSample


def _registry():
    from moelens.data import concepts

    return concepts


def resolve(selectors: list[str], variant: str = "fixed") -> list[Any]:
    """Concept objects for the selectors, in order, without duplicates."""
    reg = _registry()
    found: list[Any] = []
    group_names = set(reg.groups())
    for sel in selectors:
        if sel == "all":
            items = reg.list_concepts(variant=variant)
        elif sel.startswith("group:"):
            items = reg.list_concepts(group=sel.split(":", 1)[1], variant=variant)
        elif sel in group_names:
            items = reg.list_concepts(group=sel, variant=variant)
        else:
            items = [reg.get_concept(sel, variant=variant)]
        for c in items:
            c = reg.get_concept(c, variant=variant) if isinstance(c, str) else c
            if all(name_of(c) != name_of(o) for o in found):
                found.append(c)
    return found


def duplicates(concepts: list[Any]) -> dict[str, str]:
    """{name: canonical name} of the concepts that label the same tokens as another concept of
    the list (the registry's ``canonical_concepts`` drops them): their rows stay in the table,
    but averages and counts over concepts skip them, so each concept is counted once."""
    kept = {name_of(c) for c in _registry().canonical_concepts(list(concepts))}
    return {name_of(c): str(getattr(c, "duplicate_of", "") or "") for c in concepts
            if name_of(c) not in kept}


def name_of(concept: Any) -> str:
    return str(getattr(concept, "name", concept))


def group_of(concept: Any) -> str:
    return str(getattr(concept, "group", "user") or "user")


class StoreText:
    """A store's documents, token doc ids and character offsets, read once for every concept and
    seed (about 24 bytes a token plus the text; the store's reader keeps nothing itself)."""

    def __init__(self, store: Any):
        self.documents = store.documents()
        self.doc_ids = store.doc_ids()
        self.offsets = store.offsets()


def token_label_array(store: Any, concept: Any, text: StoreText | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, eligible), bool [n_tokens] each: the concept's label of every recorded token and
    whether the token may be sampled at all (inside the concept's window, non-empty span)."""
    reg = _registry()
    text = text if text is not None else StoreText(store)
    labels, eligible = reg.corpus_token_labels(concept, text.documents, text.doc_ids, text.offsets)
    return np.asarray(labels, dtype=bool), np.asarray(eligible, dtype=bool)


class Labels:
    """Each concept's token labels on a store, computed once and reused for every seed (labelling
    does not depend on the seed, sampling does); kept bit-packed, 2 bits a token a concept."""

    def __init__(self, store: Any):
        self.store = store
        self.text = StoreText(store)
        self._packed: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, concept: Any) -> tuple[np.ndarray, np.ndarray]:
        key = name_of(concept)
        if key not in self._packed:
            labels, eligible = token_label_array(self.store, concept, self.text)
            self._packed[key] = (np.packbits(labels), np.packbits(eligible))
        n = self.text.doc_ids.size
        lab, eli = self._packed[key]
        return np.unpackbits(lab, count=n).astype(bool), np.unpackbits(eli, count=n).astype(bool)


def sample(store: Any, concept: Any, budget: int, seed: int, text: StoreText | None = None,
           labels: Labels | None = None) -> ConceptSample:
    """Positives and same-document negatives of one concept, both drawn from eligible tokens
    (the registry's sampler); ``labels`` reuses labels computed for another seed."""
    reg = _registry()
    if labels is not None:
        text = labels.text
        lab, eligible = labels(concept)
    else:
        text = text if text is not None else StoreText(store)
        lab, eligible = token_label_array(store, concept, text)
    pos, neg = reg.sample_examples(lab, eligible, budget, seed, doc_ids=text.doc_ids)
    return ConceptSample(name_of(concept), group_of(concept),
                         np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64))
