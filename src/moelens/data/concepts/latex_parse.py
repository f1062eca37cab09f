"""Small LaTeX scanners: math regions, balanced brace groups, macro arguments.

Regular expressions cannot match nested braces, which is how the paper's ``\\frac`` regex ended
up labelling the whole fraction for its numerator and denominator concepts. These helpers do a
single left-to-right scan instead, honouring backslash escapes (``\\{``, ``\\$``).
"""

from __future__ import annotations

import re
from functools import lru_cache

Span = tuple[int, int]

_DISPLAY_ENVS = r"equation|align|gather|multline|eqnarray|displaymath|flalign|alignat"
_DISPLAY_ENV_RE = re.compile(r"\\begin\{(" + _DISPLAY_ENVS + r")(\*?)\}.*?\\end\{\1\2\}", re.S)
_BRACKET_DISPLAY_RE = re.compile(r"\\\[.*?\\\]", re.S)
_PAREN_INLINE_RE = re.compile(r"\\\(.*?\\\)|\\begin\{math\}.*?\\end\{math\}", re.S)
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
_CONTROL_RE = re.compile(r"\\(?:[A-Za-z@]+|.)", re.S)


def _find_unescaped(text: str, needle: str, start: int, stop: int) -> int:
    """Index of ``needle`` in ``text[start:stop]`` not preceded by a backslash escape, or -1."""
    i = start
    while i < stop:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if text.startswith(needle, i) and i + len(needle) <= stop:
            return i
        i += 1
    return -1


def _dollar_math(text: str) -> tuple[list[Span], list[Span]]:
    """``$…$`` (inline, never across a blank line) and ``$$…$$`` (display) regions."""
    inline: list[Span] = []
    display: list[Span] = []
    n, i = len(text), 0
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c != "$":
            i += 1
            continue
        if text.startswith("$$", i):
            j = _find_unescaped(text, "$$", i + 2, n)
            if j < 0:
                break
            display.append((i, j + 2))
            i = j + 2
            continue
        blank = _BLANK_LINE_RE.search(text, i + 1)
        j = _find_unescaped(text, "$", i + 1, blank.start() if blank else n)
        if j < 0 or j == i + 1:
            i += 1
            continue
        inline.append((i, j + 1))
        i = j + 1
    return inline, display


@lru_cache(maxsize=64)
def math_regions(text: str) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    """(inline, display) math regions, delimiters included, sorted by start."""
    inline, display = _dollar_math(text)
    display += [m.span() for m in _DISPLAY_ENV_RE.finditer(text)]
    display += [m.span() for m in _BRACKET_DISPLAY_RE.finditer(text)]
    inline += [m.span() for m in _PAREN_INLINE_RE.finditer(text)]
    return tuple(sorted(inline)), tuple(sorted(display))


def brace_group(text: str, i: int) -> int:
    """Given ``text[i] == '{'``, the index just past its matching ``}`` (or -1 if unbalanced)."""
    depth, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def macro_argument(text: str, i: int) -> tuple[Span, int] | None:
    """The argument of a macro starting at or after ``i`` (spaces skipped).

    Returns ``((start, end) of the argument's content, index after the argument)``: the inside
    of a brace group, a control word (``\\alpha``), or one character (``\\frac12``). None when
    the text ends or a brace group is unbalanced.
    """
    n = len(text)
    while i < n and text[i] in " \t\n":
        i += 1
    if i >= n:
        return None
    if text[i] == "{":
        end = brace_group(text, i)
        return None if end < 0 else ((i + 1, end - 1), end)
    if text[i] == "\\":
        m = _CONTROL_RE.match(text, i)
        assert m is not None
        return (m.start(), m.end()), m.end()
    if text[i] in "}":
        return None
    return (i, i + 1), i + 1


def optional_argument_end(text: str, i: int) -> int:
    """Skip one ``[...]`` optional argument at ``i`` (after spaces); returns the new index."""
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "[":
        k = text.find("]", j)
        return i if k < 0 else k + 1
    return i


_FRAC_RE = re.compile(r"\\[dtc]?frac(?![A-Za-z])")


@lru_cache(maxsize=64)
def fractions(text: str) -> tuple[tuple[Span, Span, Span], ...]:
    """Every ``\\frac`` (``\\dfrac``, ``\\tfrac``, ``\\cfrac``): (whole, numerator, denominator).

    Numerator and denominator are the *contents* of their argument groups; nested fractions
    are found too (the scan restarts inside each argument).
    """
    out = []
    for m in _FRAC_RE.finditer(text):
        num = macro_argument(text, m.end())
        if num is None:
            continue
        den = macro_argument(text, num[1])
        if den is None:
            continue
        out.append(((m.start(), den[1]), num[0], den[0]))
    return tuple(out)


def command_argument(text: str, name: str) -> list[Span]:
    """Contents of the (first mandatory) argument of every ``\\name[opt]{...}``."""
    out = []
    for m in re.finditer(r"\\" + re.escape(name) + r"(?![A-Za-z])\*?", text):
        j = optional_argument_end(text, m.end())
        while j < len(text) and text[j] in " \t\n":
            j += 1
        if j < len(text) and text[j] == "{":
            end = brace_group(text, j)
            if end > j + 2:
                out.append((j + 1, end - 1))
    return out
