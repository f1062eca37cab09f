"""Glue to the concept registry: concept names -> sampled positive/negative tokens of a store.

Uses only the registry's documented functions (``get_concept``, ``list_concepts``,
``token_labels``, ``sample_examples``); unknown names raise the registry's ConfigError.
Concept selectors accepted in ``--concepts``: ``all`` (every concept of the chosen variant),
``group:NAME`` (one group, e.g. ``group:latex``), or anything ``get_concept`` parses (a concept
name or a user concept such as ``regex:...``).
"""

from __future__ import annotations

import inspect
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
    for sel in selectors:
        if sel == "all":
            items = reg.list_concepts(variant=variant)
        elif sel.startswith("group:"):
            items = reg.list_concepts(group=sel.split(":", 1)[1], variant=variant)
        else:
            items = [reg.get_concept(sel)]
        for c in items:
            c = reg.get_concept(c) if isinstance(c, str) else c
            if all(name_of(c) != name_of(o) for o in found):
                found.append(c)
    return found


def name_of(concept: Any) -> str:
    return str(getattr(concept, "name", concept))


def group_of(concept: Any) -> str:
    return str(getattr(concept, "group", "user") or "user")


def token_label_array(store: Any, concept: Any) -> np.ndarray:
    """bool [n_tokens]: the concept's label of every recorded token, document by document."""
    reg = _registry()
    doc_ids, offsets, docs = store.doc_ids(), store.offsets(), store.documents()
    labels = np.zeros(int(store.n_tokens), dtype=bool)
    order = np.argsort(doc_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(doc_ids[order])) + 1
    for rows in np.split(order, bounds):
        if rows.size:
            d = int(doc_ids[rows[0]])
            labels[rows] = np.asarray(reg.token_labels(concept, docs[d], offsets[rows]), dtype=bool)
    return labels


def sample(store: Any, concept: Any, budget: int, seed: int) -> ConceptSample:
    """Positives and same-document negatives of one concept (the registry's sampler)."""
    reg = _registry()
    labels = token_label_array(store, concept)
    eligible = np.ones_like(labels)
    kwargs: dict[str, Any] = {}
    params = inspect.signature(reg.sample_examples).parameters
    if "doc_ids" in params:  # the sampler needs documents to keep negatives in the same ones
        kwargs["doc_ids"] = store.doc_ids()
    pos, neg = reg.sample_examples(labels, eligible, budget, seed, **kwargs)
    return ConceptSample(name_of(concept), group_of(concept),
                         np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64))
