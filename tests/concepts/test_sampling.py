"""Sampling: determinism, one negative per positive, budget, eligibility, same documents."""

from __future__ import annotations

import numpy as np
import pytest

from moelens.data.concepts import sample_examples
from moelens.errors import ConfigError


def make(n=2000, rate=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n) < rate


def test_deterministic_and_balanced():
    labels = make()
    a = sample_examples(labels, None, budget=100, seed=3)
    b = sample_examples(labels, None, budget=100, seed=3)
    c = sample_examples(labels, None, budget=100, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    pos, neg = a
    assert len(pos) == len(neg) == 50
    assert labels[pos].all() and not labels[neg].any()
    assert len(np.unique(pos)) == 50 and len(np.unique(neg)) == 50


def test_capped_by_positives_and_budget():
    labels = make(rate=0.01)
    pos, neg = sample_examples(labels, None, budget=10_000, seed=0)
    assert len(pos) == len(neg) == labels.sum()
    with pytest.raises(ConfigError):
        sample_examples(labels, None, budget=1, seed=0)


def test_eligible_mask_respected():
    labels = make()
    eligible = np.zeros_like(labels)
    eligible[:500] = True
    pos, neg = sample_examples(labels, eligible, budget=1000, seed=1)
    assert pos.max() < 500 and neg.max() < 500
    assert len(pos) == min(labels[:500].sum(), (~labels[:500]).sum())


def test_negatives_from_the_positives_documents():
    doc_ids = np.repeat(np.arange(20), 100)
    labels = np.zeros(2000, dtype=bool)
    labels[doc_ids < 5] = np.random.default_rng(0).random(500) < 0.2  # positives in docs 0-4
    pos, neg = sample_examples(labels, None, budget=10_000, seed=0, doc_ids=doc_ids)
    assert len(pos) == len(neg) == labels.sum()
    assert set(doc_ids[neg]) <= set(doc_ids[pos])
    # each document gives as many negatives as positives while it has them
    assert np.array_equal(np.bincount(doc_ids[pos], minlength=20),
                          np.bincount(doc_ids[neg], minlength=20))


def test_same_document_shortfall_filled_from_other_positive_documents():
    doc_ids = np.array([0] * 10 + [1] * 10)
    labels = np.zeros(20, dtype=bool)
    labels[:8] = True  # doc 0: 8 positives, 2 negatives; doc 1: 10 negatives
    labels[10] = True
    pos, neg = sample_examples(labels, None, budget=100, seed=5, doc_ids=doc_ids)
    assert len(pos) == len(neg) == 9
    assert not labels[neg].any()
    assert (doc_ids[neg] == 0).sum() == 2


def test_no_positives_gives_empty():
    pos, neg = sample_examples(np.zeros(10, bool), None, budget=10, seed=0)
    assert pos.size == 0 and neg.size == 0
