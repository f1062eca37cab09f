"""Executable explanations: predicates over a window's tokens, with a readable description.

A predicate is a JSON-able dict (so it is saved with the explanation and a judge can run it
later) and evaluates to one bool per token of a window. Kinds:

- ``tokens``: the token (stripped of surrounding spaces, unless it is all space) is in a set;
- ``prev_tokens``: the previous token is in a set; ``bigrams``: (previous, token) pairs;
- ``regex``: the token matches a pattern of :data:`REGEXES` (token shapes);
- ``concept``: a concept of the registry (:mod:`moelens.data.concepts`) labels the token, on
  the window's text;
- ``context``: a feature of where the token is (:data:`CONTEXTS`: inside brackets, quotes,
  LaTeX math, at the start of a line, ...);
- ``and``: all of ``parts``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from moelens.analysis.autointerp.corpus import Window

REGEXES: dict[str, tuple[str, str]] = {
    "number": (r"[0-9]+(?:[.,][0-9]+)?", "numbers"),
    "capitalized": (r"[A-Z][a-z]+", "capitalized words"),
    "all_caps": (r"[A-Z]{2,}", "words in capitals"),
    "lowercase": (r"[a-z]+", "lowercase words"),
    "single_letter": (r"[A-Za-z]", "single letters"),
    "punctuation": (r"[^\w\s]+", "punctuation"),
    "open_bracket": (r"[(\[{]", "opening brackets"),
    "close_bracket": (r"[)\]}]", "closing brackets"),
    "operator": (r"[-+*/=<>^|&%]+", "operators"),
    "latex_command": (r"\\[A-Za-z]+", "LaTeX commands"),
    "space": (r"\s+", "whitespace tokens"),
}
"""name -> (full-match pattern on the token, description)."""

CONTEXTS: dict[str, str] = {
    "in_parens": "inside parentheses",
    "in_brackets": "inside square brackets",
    "in_braces": "inside curly braces",
    "in_quotes": "inside double quotes",
    "in_math": "inside LaTeX math",
    "line_start": "at the start of a line",
    "line_end": "at the end of a line",
}


def token_key(piece: str) -> str:
    """What token sets compare: the token without surrounding spaces (kept if all space)."""
    stripped = piece.strip()
    return stripped if stripped else piece


def show(key: str) -> str:
    """A token as a reader sees it in an explanation."""
    names = {" ": "space", "\n": "newline", "\t": "tab"}
    return names.get(key, repr(key) if key.strip() != key or not key else f'"{key}"')


def _region_mask(text: str, opens: str, closes: str) -> np.ndarray:
    """Per character: inside a bracket pair. A closer with no opener in the window closes a pair
    opened before the window began, so everything before it (back to the previous such closer)
    counts as inside."""
    mask = np.zeros(len(text), dtype=bool)
    depth, unmatched_from = 0, 0
    for i, ch in enumerate(text):
        if ch in closes:
            if depth:
                depth -= 1
            else:
                mask[unmatched_from:i] = True
                unmatched_from = i + 1
        mask[i] = mask[i] or depth > 0
        if ch in opens:
            depth += 1
            unmatched_from = i + 1
    return mask


def _toggle_mask(text: str, quote: str) -> np.ndarray:
    mask = np.zeros(len(text), dtype=bool)
    inside = False
    for i, ch in enumerate(text):
        if ch == quote:
            inside = not inside
            continue
        mask[i] = inside
    return mask


def _math_mask(text: str) -> np.ndarray:
    mask = np.zeros(len(text), dtype=bool)
    for m in re.finditer(r"\$\$.+?\$\$|\$[^$]+\$|\\\(.+?\\\)|\\\[.+?\\\]", text, re.S):
        mask[m.start():m.end()] = True
    return mask


@dataclass
class View:
    """A window prepared for evaluating predicates: text, token character spans, token keys."""

    window: Window

    @cached_property
    def text(self) -> str:
        return "".join(self.window.tokens)

    @cached_property
    def offsets(self) -> np.ndarray:
        ends = np.cumsum([len(t) for t in self.window.tokens]) if self.window.tokens else np.zeros(0)
        starts = np.concatenate([[0], ends[:-1]]) if len(ends) else np.zeros(0)
        return np.stack([starts, ends], axis=1).astype(np.int64).reshape(-1, 2)

    @cached_property
    def spans(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self.offsets]

    @cached_property
    def keys(self) -> list[str]:
        return [token_key(t) for t in self.window.tokens]

    @cached_property
    def prev_keys(self) -> list[str | None]:
        return [None] + self.keys[:-1]

    @cached_property
    def anchor(self) -> np.ndarray:
        """Index of each token's first visible character (its last character if all space)."""
        out = []
        for (s, e), piece in zip(self.offsets, self.window.tokens):
            lead = len(piece) - len(piece.lstrip())
            out.append(min(s + lead, max(s, e - 1)))
        return np.array(out, dtype=np.int64)

    def context(self, name: str) -> np.ndarray:
        if name not in self._contexts:
            self._contexts[name] = self._context(name)
        return self._contexts[name]

    @cached_property
    def _contexts(self) -> dict[str, np.ndarray]:
        return {}

    def _context(self, name: str) -> np.ndarray:
        n = len(self.window.tokens)
        if n == 0:
            return np.zeros(0, bool)
        if name == "line_start":
            out = np.zeros(n, dtype=bool)
            for i, piece in enumerate(self.window.tokens):  # the first visible token of a line
                lead = piece[: len(piece) - len(piece.lstrip())]
                out[i] = bool(piece.strip()) and ("\n" in lead or (i > 0 and self.window.tokens[i - 1].endswith("\n")))
            return out
        if name == "line_end":  # the last visible token of a line: a newline follows it
            toks = self.window.tokens
            out = np.zeros(n, dtype=bool)
            for i, piece in enumerate(toks[:-1]):
                nxt = toks[i + 1]
                gap = piece[len(piece.rstrip()):] + nxt[: len(nxt) - len(nxt.lstrip())]
                out[i] = bool(piece.strip()) and "\n" in gap
            return out
        text = self.text
        mask = {"in_parens": lambda: _region_mask(text, "(", ")"),
                "in_brackets": lambda: _region_mask(text, "[", "]"),
                "in_braces": lambda: _region_mask(text, "{", "}"),
                "in_quotes": lambda: _toggle_mask(text, '"'),
                "in_math": lambda: _math_mask(text)}[name]()
        return mask[np.clip(self.anchor, 0, max(len(text) - 1, 0))] if len(text) else np.zeros(n, bool)


_CONCEPTS: dict[str, object] = {}


def concept(name: str):
    """A registry concept by qualified name (cached)."""
    if name not in _CONCEPTS:
        from moelens.data.concepts import get_concept

        _CONCEPTS[name] = get_concept(name)
    return _CONCEPTS[name]


def concept_mask(name: str, view: View) -> np.ndarray:
    """The registry's token rule (a token is positive when any of its characters lies inside a
    span of the concept), computed in plain Python: a window has a few dozen tokens and spans,
    where numpy's per-call overhead would dominate a search over thousands of them."""
    spans = concept(name).label(view.text)  # sorted by start
    out = np.zeros(len(view.window.tokens), dtype=bool)
    if not spans:
        return out
    merged = [list(spans[0])]
    for a, b in spans[1:]:  # union of the spans: disjoint and sorted, so ends increase too
        if a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    j = 0
    for i, (s, e) in enumerate(view.spans):  # tokens in order: one pass over both lists
        while j < len(merged) and merged[j][1] <= s:
            j += 1
        if j == len(merged):
            break
        out[i] = e > s and merged[j][0] < e
    return out


def evaluate(spec: dict, view: View) -> np.ndarray:
    """One bool per token of the window: does the predicate hold there."""
    kind = spec["kind"]
    n = len(view.window.tokens)
    if kind == "tokens":
        values = set(spec["values"])
        return np.array([k in values for k in view.keys], dtype=bool)
    if kind == "prev_tokens":
        values = set(spec["values"])
        return np.array([p is not None and p in values for p in view.prev_keys], dtype=bool)
    if kind == "bigrams":
        values = {tuple(v) for v in spec["values"]}
        return np.array([(p, k) in values for p, k in zip(view.prev_keys, view.keys)], dtype=bool)
    if kind == "regex":
        pattern = re.compile(REGEXES[spec["name"]][0])
        pieces = view.keys if spec["name"] != "space" else view.window.tokens
        return np.array([bool(pattern.fullmatch(k)) for k in pieces], dtype=bool)
    if kind == "concept":
        return concept_mask(spec["name"], view)
    if kind == "context":
        return view.context(spec["name"])
    if kind == "and":
        out = np.ones(n, dtype=bool)
        for part in spec["parts"]:
            out &= evaluate(part, view)
        return out
    raise ValueError(f"unknown predicate kind {kind!r}")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def describe(spec: dict) -> str:
    """A short, readable explanation of the predicate."""
    kind = spec["kind"]
    if kind == "tokens":
        return f"the token {_join([show(v) for v in spec['values']])}"
    if kind == "prev_tokens":
        return f"tokens right after {_join([show(v) for v in spec['values']])}"
    if kind == "bigrams":
        return "the token " + _join([f"{show(b)} after {show(a)}" for a, b in spec["values"]])
    if kind == "regex":
        return REGEXES[spec["name"]][1]
    if kind == "concept":
        return concept(spec["name"]).description
    if kind == "context":
        return f"tokens {CONTEXTS[spec['name']]}"
    if kind == "and":
        head, *rest = spec["parts"]
        tail = [CONTEXTS[p["name"]] if p["kind"] == "context" else "that are " + describe(p) for p in rest]
        return describe(head) + " " + " and ".join(tail)
    raise ValueError(f"unknown predicate kind {kind!r}")
