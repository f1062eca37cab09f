"""The concept glue of probing on a real store and the real registry (regressions of bugs the
fake registry of tests/probing could not show)."""

from __future__ import annotations

import numpy as np

from moelens.analysis.probing import concepts as concept_glue
from moelens.data.concepts import list_concepts
from moelens.store import ActivationStore


def test_variant_is_honoured_for_named_concepts():
    (fixed,) = concept_glue.resolve(["contains_digit"])
    (paper,) = concept_glue.resolve(["contains_digit"], "paper")
    assert fixed.variant == "fixed" and paper.variant == "paper" and paper.window is not None
    (user,) = concept_glue.resolve(["regex:[0-9]"], "paper")
    assert user.variant == "paper"


def test_bare_group_names_select_the_group():
    names = [c.name for c in concept_glue.resolve(["text"])]
    assert names == [c.name for c in list_concepts("text")]
    assert names == [c.name for c in concept_glue.resolve(["group:text"])]


def test_paper_window_bounds_positives_and_negatives(e2e_stores):
    """Paper text concepts look at the first 300 characters: negatives must come from there too."""
    store = ActivationStore.open(e2e_stores["store_moe"])
    (paper,) = concept_glue.resolve(["contains_digit"], "paper")
    off = store.offsets()
    assert (off[:, 0] >= 300).sum() > 1000  # plenty of tokens lie outside the window
    s = concept_glue.sample(store, paper, 5000, 42)
    assert s.pos.size >= 20 and s.neg.size == s.pos.size
    assert (off[s.pos, 0] < 300).all() and (off[s.neg, 0] < 300).all()


def test_special_tokens_are_never_sampled(e2e_stores):
    """BOS tokens (empty character span) are neither positives nor negatives of any concept."""
    store = ActivationStore.open(e2e_stores["store_moe"])
    off = store.offsets()
    empty = np.flatnonzero(off[:, 1] == off[:, 0])
    assert empty.size == len(store.documents())  # one BOS per document
    for name in ("contains_digit", "word_initial_lowercase"):
        (c,) = concept_glue.resolve([name])
        s = concept_glue.sample(store, c, 5000, 0)
        assert s.pos.size > 0 and not np.isin(np.concatenate([s.pos, s.neg]), empty).any()
