"""User concepts parsed from a string, so a command line can name them next to built-ins.

Forms (an optional ``NAME=`` prefix names the concept; otherwise the spec is the name):

- ``regex:PATTERN`` — every match; if the pattern has a group named ``label``
  (``(?P<label>…)``) only that group is labelled;
- ``tokens:a,b,c`` or ``tokens:@FILE`` (one item per line) — occurrences of the items; items
  made of word characters match whole words only;
- ``callable:pkg.mod:fn`` — ``fn(text)`` returns ``[(start, end), ...]`` character spans.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from moelens.data.concepts.labelling import regex_spans
from moelens.data.concepts.registry import Concept, Span
from moelens.errors import ConfigError, DataError

GROUP = "user"
_SPEC_RE = re.compile(r"^(?:([A-Za-z_][\w]*)=)?(regex|tokens|callable):(.*)$", re.S)


def is_user_spec(spec: str) -> bool:
    return bool(_SPEC_RE.match(spec))


def _regex(body: str):
    try:
        compiled = re.compile(body)
    except re.error as exc:
        raise ConfigError(f"regex concept {body!r} is not a valid regular expression ({exc}); "
                          "fix the pattern") from None
    group = "label" if "label" in compiled.groupindex else 0
    return lambda text: regex_spans(compiled, text, group)


def _tokens(body: str):
    if body.startswith("@"):
        path = Path(body[1:])
        if not path.is_file():
            raise ConfigError(f"token list file {path} does not exist; give an existing file "
                              "with one item per line")
        items = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        items = [item.strip() for item in body.split(",")]
    items = sorted({i for i in items if i}, key=len, reverse=True)
    if not items:
        raise ConfigError("tokens: concept has no items; use tokens:a,b,c or tokens:@FILE")
    parts = [(r"(?<!\w)" + re.escape(i) + r"(?!\w)") if re.fullmatch(r"\w+", i) else re.escape(i)
             for i in items]
    compiled = re.compile("|".join(parts))
    return lambda text: regex_spans(compiled, text)


def _callable(body: str):
    module_name, _, fn_name = body.partition(":")
    if not module_name or not fn_name:
        raise ConfigError(f"callable concept {body!r} must look like callable:pkg.module:function")
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {body!r} ({exc}); check the module path and name") from None
    if not callable(fn):
        raise ConfigError(f"{body!r} is not callable; point at a function text -> spans")

    def label(text: str) -> list[Span]:
        spans = fn(text)
        try:
            out = [(int(s), int(e)) for s, e in spans]
        except (TypeError, ValueError):
            raise DataError(f"callable concept {body} must return (start, end) pairs, "
                            f"got {type(spans).__name__}") from None
        if any(s < 0 or e > len(text) or e < s for s, e in out):
            raise DataError(f"callable concept {body} returned spans outside the text")
        return out

    return label


def parse_user_concept(spec: str, variant: str = "fixed") -> Concept:
    """A :class:`Concept` from a ``regex:``/``tokens:``/``callable:`` spec (not registered)."""
    m = _SPEC_RE.match(spec)
    if m is None:
        raise ConfigError(f"{spec!r} is not a user concept; use regex:PATTERN, tokens:a,b,c, "
                          "tokens:@FILE or callable:pkg.mod:fn")
    name, kind, body = m.groups()
    if not body:
        raise ConfigError(f"user concept {spec!r} is empty after '{kind}:'; give a value")
    labeller = {"regex": _regex, "tokens": _tokens, "callable": _callable}[kind](body)
    return Concept(GROUP, name or spec, f"user concept {kind}:{body}", labeller, variant=variant,
                   paper_faithful=False)
