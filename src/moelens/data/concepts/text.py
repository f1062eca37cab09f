"""The paper's 10 general-text concepts (character classes of words and tokens).

Fixed and paper variants use the same character patterns; the paper only looked at the first
300 characters of each document (``Window("first", 300)``). ``digits`` (runs of digits) and
``contains_digit`` (any digit) label exactly the same tokens under the any-character rule, so
``digits`` is marked ``duplicate_of="contains_digit"`` and counted once in averages.
"""

from __future__ import annotations

from moelens.data.concepts.labelling import regex_labeller
from moelens.data.concepts.registry import Window, define

GROUP = "text"
PAPER_WINDOW = Window("first", 300)
_NOT_AFTER_LETTER = r"(?<![^\W\d_])"  # not preceded by a letter: the start of a word

# (name, description, pattern); ASCII capitals and digits, Unicode letters for word starts.
PATTERNS: list[tuple[str, str, str]] = [
    ("word_initial_capital", "a capital letter starting a word", _NOT_AFTER_LETTER + r"[A-Z]"),
    ("word_initial_lowercase", "a lowercase letter starting a word", _NOT_AFTER_LETTER + r"[a-z]"),
    ("digits", "runs of digits", r"[0-9]+"),
    ("non_ascii", "characters outside ASCII", r"[^\x00-\x7f]+"),
    ("whitespace_run", "runs of two or more whitespace characters, or any whitespace other than "
                       "a space (newline, tab)", r"\s{2,}|[^\S ]"),
    ("all_caps_word", "words of two or more capitals", r"(?<![A-Za-z])[A-Z]{2,}(?![A-Za-z])"),
    ("non_alphanumeric", "characters that are neither letters, digits nor whitespace",
     r"[^\w\s]|_"),
    ("contains_whitespace", "any whitespace character", r"\s"),
    ("contains_capital", "any capital letter", r"[A-Z]"),
    ("contains_digit", "any digit", r"[0-9]"),
]

DUPLICATES = {"digits": "contains_digit"}

def _same_tokens_as(name: str) -> tuple[str, ...]:
    """The other members of ``name``'s duplicate pair, whichever side it is on."""
    return tuple(b if a == name else a for a, b in DUPLICATES.items() if name in (a, b))


for _name, _desc, _pattern in PATTERNS:
    define(GROUP, _name, _desc, regex_labeller(_pattern), paper_window=PAPER_WINDOW,
           duplicate_of=DUPLICATES.get(_name), merged_with=_same_tokens_as(_name))
