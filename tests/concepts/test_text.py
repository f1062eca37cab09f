"""General-text concepts, hand-checked spans; digits duplicates contains_digit."""

from __future__ import annotations

from moelens.data.concepts import get_concept, list_concepts

TEXT = "Hello  World, café 2024!\tALL caps McDonald x_y"

EXPECTED = {
    "word_initial_capital": ["H", "W", "A", "M"],
    "word_initial_lowercase": ["c", "c", "x", "y"],
    "digits": ["2024"],
    "non_ascii": ["é"],
    "whitespace_run": ["  ", "\t"],
    "all_caps_word": ["ALL"],
    "non_alphanumeric": [",", "!", "_"],
    "contains_whitespace": [" ", " ", " ", " ", "\t", " ", " ", " "],
    "contains_capital": ["H", "W", "A", "L", "L", "M", "D"],
    "contains_digit": ["2", "0", "2", "4"],
}


def test_text_concepts_hand_checked():
    assert set(EXPECTED) == {c.name for c in list_concepts("text")}
    for name, want in EXPECTED.items():
        got = [TEXT[s:e] for s, e in get_concept(name).label(TEXT)]
        assert got == want, name


def test_paper_window_first_300_characters():
    text = "a" * 299 + " 12 Z"
    assert get_concept("contains_digit").label(text) == [(300, 301), (301, 302)]
    assert get_concept("contains_digit", "paper").label(text) == []
    assert get_concept("contains_capital", "paper").label("Ab") == [(0, 1)]
