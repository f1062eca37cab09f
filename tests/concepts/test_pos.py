"""POS concepts from spaCy (skipped without it) and the unavailable path (always tested)."""

from __future__ import annotations

import numpy as np
import pytest

from moelens.data.concepts import (
    ConceptUnavailableError,
    get_concept,
    list_concepts,
    pos,
    token_labels,
)


def test_pos_tags_every_sentence_fixed_first_sentence_paper():
    reason = pos.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    text = "The cat sat on the mat. It ran away quickly!"
    words = lambda name, v="fixed": [text[s:e] for s, e in get_concept(name, v).label(text)]
    assert words("NOUN") == ["cat", "mat"]
    assert words("DET") == ["The", "the"]
    assert words("PRON") == ["It"]
    assert words("ADV") == ["away", "quickly"]
    assert words("PUNCT") == [".", "!"]
    assert words("PUNCT", "paper") == ["."]
    assert words("PRON", "paper") == []
    assert get_concept("NOUN", "paper").window_span(text) == (0, 23)
    offsets = np.array([[0, 3], [3, 7], [7, 11], [23, 26]])
    assert token_labels(get_concept("NOUN"), text, offsets).tolist() == [False, True, False, False]
    assert pos.tagger_info()["licence"] == "MIT"


def test_unavailable_tagger_is_an_error_not_empty(monkeypatch):
    monkeypatch.setattr(pos, "_load", lambda: (None, "spaCy is not installed; install it"))
    concept = get_concept("NOUN")
    assert "spaCy" in concept.unavailable_reason()
    with pytest.raises(ConceptUnavailableError, match="pos.NOUN is unavailable: spaCy"):
        concept.label("The cat sat.")
    assert len(list_concepts("pos")) == 16  # still listed, so it can be reported
