"""A tiny lexer for code documents: where the string literals and comments are.

Code concepts such as "loop" or "function call" should not fire on the word ``for`` inside a
comment or a string, so the fixed code labellers drop matches that overlap these regions. The
lexer knows Python-like (``#`` comments, triple-quoted strings, ``//`` is an operator) and C-like
(``//`` and ``/* */`` comments, ``#include`` is a directive) code, chosen per document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

Span = tuple[int, int]

_DIRECTIVE = r"(?:include|define|if|ifdef|ifndef|endif|else|elif|pragma|undef|error|warning|line)\b"
_PREFIX = r"(?:(?<![\w])[rRbBuUfF]{1,2})?"
_STRING = _PREFIX + r"""(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
_PY_LEX = re.compile(r"(?P<str>" + _STRING + r")|(?P<hash>#(?!\s*" + _DIRECTIVE + r")[^\n]*)")
_C_LEX = re.compile(r"(?P<str>" + _STRING + r")|(?P<block>/\*[\s\S]*?\*/)|(?P<line>//[^\n]*)"
                    r"|(?P<hdr>(?<=include)[ \t]*<[^>\n]*>)")
_PY_HINT = re.compile(r"^[ \t]*(?:def \w+\(|class \w+[:(]|import \w|from [\w.]+ import |elif |@\w)",
                      re.M)
_C_HINT = re.compile(r"[;{][ \t]*$|^[ \t]*#[ \t]*" + _DIRECTIVE, re.M)


@dataclass(frozen=True)
class Lexed:
    """String literals (quotes included), comments (marker included), comment markers, and
    ``#include <header>`` names (neither code nor a string)."""

    strings: tuple[Span, ...]
    comments: tuple[Span, ...]
    markers: tuple[Span, ...]
    headers: tuple[Span, ...] = ()

    @property
    def literals(self) -> list[Span]:
        return sorted(self.strings + self.comments + self.headers)


def is_pythonish(text: str) -> bool:
    """Python-like when Python statement shapes outnumber C-like line endings and directives."""
    return len(_PY_HINT.findall(text)) >= len(_C_HINT.findall(text))


@lru_cache(maxsize=64)
def lex(text: str) -> Lexed:
    strings: list[Span] = []
    comments: list[Span] = []
    markers: list[Span] = []
    headers: list[Span] = []
    python = is_pythonish(text)
    for m in (_PY_LEX if python else _C_LEX).finditer(text):
        kind = m.lastgroup
        s, e = m.span()
        if kind == "hdr":
            headers.append((s, e))
        elif kind == "str":
            strings.append((s, e))
        elif kind == "hash":
            comments.append((s, e))
            markers.append((s, s + 1))
        elif kind == "line":
            comments.append((s, e))
            markers.append((s, s + 2))
        elif kind == "block":
            comments.append((s, e))
            markers.append((s, s + 2))
            if e - s >= 4:
                markers.append((e - 2, e))
    return Lexed(tuple(strings), tuple(comments), tuple(markers), tuple(headers))
