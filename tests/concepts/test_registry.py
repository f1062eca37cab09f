"""The registry: the paper's 58 concepts, variants, duplicates, lookup errors."""

from __future__ import annotations

import pytest

from moelens.data.concepts import (
    Concept,
    canonical_concepts,
    get_concept,
    groups,
    list_concepts,
    register,
    resolve_concepts,
)
from moelens.errors import ConfigError


def test_paper_has_58_concepts_in_four_groups():
    counts = {g: len(list_concepts(g, "paper")) for g in ("pos", "latex", "code", "text")}
    assert counts == {"pos": 16, "latex": 12, "code": 20, "text": 10}
    assert len(list_concepts(variant="paper")) == 58
    assert all(c.paper_faithful for c in list_concepts(variant="paper"))
    assert [c.name for c in list_concepts("pos")] == (
        "ADJ ADP ADV AUX CCONJ DET NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split())


def test_fixed_variant_adds_chess_and_keeps_names():
    fixed = {c.name for c in list_concepts(variant="fixed")}
    paper = {c.name for c in list_concepts(variant="paper")}
    assert paper <= fixed
    assert {c.name for c in list_concepts("chess")} <= fixed - paper
    assert groups()[:5] == ["pos", "latex", "code", "text", "chess"]


def test_paper_windows():
    assert get_concept("loop", "paper").window.kind == "last"
    assert get_concept("loop", "paper").window.chars == 300
    assert get_concept("contains_digit", "paper").window.kind == "first"
    assert get_concept("NOUN", "paper").window.kind == "first_sentence"
    assert get_concept("loop").window is None and get_concept("NOUN").window is None


def test_declared_duplicates_and_canonical_set():
    assert get_concept("digits").duplicate_of == "contains_digit"
    assert get_concept("numerator", "paper").duplicate_of == "frac"
    assert get_concept("denominator", "paper").duplicate_of == "frac"
    assert get_concept("numerator").duplicate_of is None
    fixed = [c for c in list_concepts(variant="fixed") if c.group != "chess"]
    assert len(canonical_concepts(fixed)) == 57
    assert len(canonical_concepts(list_concepts(variant="paper"))) == 55  # the paper's "55 distinct"


def test_lookup_by_plain_and_qualified_name():
    assert get_concept("numerator").group == "latex"
    assert get_concept("latex.numerator") is get_concept("numerator")
    with pytest.raises(ConfigError):
        get_concept("code.numerator")


def test_unknown_concept_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as exc:
        get_concept("no_such_concept")
    msg = str(exc.value)
    assert "\n" not in msg and "no_such_concept" in msg
    for g in ("pos", "latex", "code", "text", "chess"):
        assert g in msg
    assert "list_concepts" in msg
    with pytest.raises(ConfigError):
        list_concepts("nogroup")
    with pytest.raises(ConfigError):
        list_concepts(variant="weird")


def test_resolve_expands_groups_and_user_specs():
    got = resolve_concepts(["text", "numerator", r"regex:\d+", "text.digits"])
    names = [c.name for c in got]
    assert names[:10] == [c.name for c in list_concepts("text")]
    assert names[10:] == ["numerator", r"regex:\d+"]


def test_register_rejects_name_clash_across_groups():
    clash = Concept("mygroup", "numerator", "x", lambda t: [])
    with pytest.raises(ConfigError):
        register(clash)
    with pytest.raises(ConfigError):
        register(Concept("bad group", "x", "x", lambda t: []))
