"""User concepts from strings: regex (with a label group), token lists, callables."""

from __future__ import annotations

import pytest

from moelens.data.concepts import get_concept, parse_user_concept, resolve_concepts
from moelens.errors import ConfigError, DataError

TEXT = "Mail bob@example.org or ann@test.net; call 555-1234 now."


def spans(spec, text=TEXT):
    return [text[s:e] for s, e in get_concept(spec).label(text)]


def test_regex_whole_match_and_label_group():
    assert spans(r"regex:\d+") == ["555", "1234"]
    assert spans(r"regex:(?P<label>\w+)@\w+") == ["bob", "ann"]


def test_named_spec_and_token_lists(tmp_path):
    concept = get_concept("contact=tokens:call,Mail,;")
    assert concept.name == "contact" and concept.group == "user"
    assert spans("tokens:call,Mail,;") == ["Mail", ";", "call"]
    assert spans("tokens:all") == []  # whole words only
    words = tmp_path / "words.txt"
    words.write_text("now\nbob\n\n")
    assert spans(f"tokens:@{words}") == ["bob", "now"]


def first_word(text):
    return [(0, text.index(" "))]


def bad_output(text):
    return [(0, len(text) + 5)]


def test_callable_by_import_path():
    assert spans(f"callable:{__name__}:first_word") == ["Mail"]
    with pytest.raises(DataError):
        get_concept(f"callable:{__name__}:bad_output").label(TEXT)


@pytest.mark.parametrize("spec", ["regex:(", "tokens:", "tokens:@/no/such/file",
                                  "callable:no.such.module:fn", "callable:nocolon"])
def test_bad_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        parse_user_concept(spec)


def test_user_specs_mix_with_builtins():
    got = resolve_concepts(["digits", r"regex:[A-Z]"])
    assert [c.group for c in got] == ["text", "user"]
