"""The concept registry: named token-level binary concepts and how to look them up.

A :class:`Concept` labels a document with character spans; a token is positive when any of its
characters lies inside a span (see :mod:`moelens.data.concepts.labelling`). Concepts come in two
variants, both registered under the same name:

- ``"fixed"`` (default): the paper's 58 concepts with its defects repaired (capture groups,
  balanced-brace parsing, every sentence tagged, no windowing), plus chess and user concepts;
- ``"paper"``: the concepts exactly as "The Expert Strikes Back" built them, including their
  windowing choices (``Concept.window``), so its numbers can be reproduced.

Concepts that label identical tokens carry ``duplicate_of`` (the canonical concept's name) so
that averages over concepts count them once (:func:`canonical_concepts`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from moelens.errors import ConfigError, DataError

Span = tuple[int, int]
Variant = Literal["fixed", "paper"]
VARIANTS: tuple[str, ...] = ("fixed", "paper")


class ConceptUnavailableError(DataError):
    """A concept needs an optional dependency or corpus that is not present."""


@dataclass(frozen=True)
class Window:
    """Which part of a document a paper-variant concept looks at.

    ``kind`` is ``"first"`` (the first ``chars`` characters), ``"last"`` (the last ``chars``) or
    ``"first_sentence"`` (resolved by the concept's own sentence splitter).
    """

    kind: Literal["first", "last", "first_sentence"]
    chars: int | None = None

    def span(self, doc: str) -> Span:
        """The character range ``[start, end)`` of ``doc`` inside the window."""
        if self.kind == "first":
            return (0, min(len(doc), int(self.chars or 0)))
        if self.kind == "last":
            return (max(0, len(doc) - int(self.chars or 0)), len(doc))
        raise ValueError("first_sentence windows are resolved by the concept's sentence splitter")


@dataclass(frozen=True)
class Concept:
    """One token-level binary concept.

    ``labeller(doc)`` returns the character spans of the concept in the whole document;
    :meth:`label` applies the variant's window on top. ``requires`` names an optional
    dependency; ``check()`` (returns ``None`` when usable, else the reason) is consulted before
    labelling so a missing dependency is an error, never an empty label set.
    """

    group: str
    name: str
    description: str
    labeller: Callable[[str], list[Span]] = field(repr=False, compare=False)
    variant: str = "fixed"
    paper_faithful: bool = True
    """True when this concept labels exactly what the paper's concept labels."""
    window: Window | None = None
    """Paper windowing (first/last N characters, first sentence); None = whole document."""
    duplicate_of: str | None = None
    """Name of the canonical concept labelling the same tokens; averages skip this one."""
    merged_with: tuple[str, ...] = ()
    """Other concepts known to label identical tokens to this one (either direction)."""
    sentence_splitter: Callable[[str], Span] | None = field(default=None, repr=False, compare=False)
    """For ``Window("first_sentence")``: text -> span of its first sentence."""
    check: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)
    """Availability check (optional dependency): None when usable, else the reason."""

    @property
    def qualified_name(self) -> str:
        return f"{self.group}.{self.name}"

    def unavailable_reason(self) -> str | None:
        """None when the concept can label text, else why not (e.g. spaCy missing)."""
        return self.check() if self.check is not None else None

    def window_span(self, doc: str) -> Span:
        """The part of ``doc`` this concept labels; the whole document without a window."""
        if self.window is None:
            return (0, len(doc))
        if self.window.kind == "first_sentence":
            if self.sentence_splitter is None:
                raise ValueError(f"concept {self.name} has a sentence window but no splitter")
            return self.sentence_splitter(doc)
        return self.window.span(doc)

    def label(self, doc: str) -> list[Span]:
        """Sorted, non-empty character spans of the concept in ``doc`` (inside the window)."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise ConceptUnavailableError(f"concept {self.qualified_name} is unavailable: {reason}")
        spans = self.labeller(doc)
        lo, hi = self.window_span(doc)
        out = []
        for s, e in spans:
            s, e = max(int(s), lo), min(int(e), hi)
            if e > s:
                out.append((s, e))
        return sorted(out)


_REGISTRY: dict[tuple[str, str], Concept] = {}
_GROUP_ORDER: list[str] = []
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def register(concept: Concept, replace: bool = False) -> Concept:
    """Add ``concept`` under ``(variant, name)``; names are unique across groups."""
    if concept.variant not in VARIANTS:
        raise ConfigError(f"concept variant {concept.variant!r} is not one of {', '.join(VARIANTS)}")
    if not _NAME_RE.match(concept.group) or not _NAME_RE.match(concept.name):
        raise ConfigError(f"concept {concept.group}.{concept.name}: group and name must be identifiers")
    key = (concept.variant, concept.name)
    old = _REGISTRY.get(key)
    if old is not None and not replace and old.group != concept.group:
        raise ConfigError(f"concept name {concept.name!r} is already used by group {old.group!r}")
    if old is not None and not replace and old is not concept:
        raise ConfigError(f"concept {concept.qualified_name} is already registered; pass replace=True")
    _REGISTRY[key] = concept
    if concept.group not in _GROUP_ORDER:
        _GROUP_ORDER.append(concept.group)
    return concept


def groups() -> list[str]:
    """Registered groups in registration order (pos, latex, code, text, chess, ...)."""
    return list(_GROUP_ORDER)


def list_concepts(group: str | None = None, variant: str = "fixed") -> list[Concept]:
    """Registered concepts of one variant (optionally one group), in registration order."""
    if variant not in VARIANTS:
        raise ConfigError(f"concept variant {variant!r} is not one of {', '.join(VARIANTS)}")
    if group is not None and group not in _GROUP_ORDER:
        raise ConfigError(f"unknown concept group {group!r}; groups are: {', '.join(_GROUP_ORDER)}")
    return [c for (v, _), c in _REGISTRY.items()
            if v == variant and (group is None or c.group == group)]


def registered(variant: str, name: str) -> Concept | None:
    """The concept registered under a bare ``name`` for ``variant``, or None."""
    return _REGISTRY.get((variant, name))


def canonical_concepts(concepts: list[Concept]) -> list[Concept]:
    """Drop concepts whose ``duplicate_of`` target is also in the list (count each once)."""
    names = {c.name for c in concepts}
    return [c for c in concepts if c.duplicate_of is None or c.duplicate_of not in names]


def define(group: str, name: str, description: str, fixed: Callable[[str], list[Span]],
           paper: Callable[[str], list[Span]] | None = None, paper_window: Window | None = None,
           duplicate_of: str | None = None, merged_with: tuple[str, ...] = (),
           paper_duplicate_of: str | None = None, **extra) -> tuple[Concept, Concept]:
    """Register the fixed and the paper variant of one concept.

    ``paper`` defaults to ``fixed`` (the paper's labeller had no defect); the paper variant is
    marked ``paper_faithful`` and gets ``paper_window``; the fixed one is faithful only when it
    shares the labeller and the paper used no window.
    """
    fixed_faithful = paper is None and paper_window is None
    f = register(Concept(group, name, description, fixed, "fixed", fixed_faithful, None,
                         duplicate_of, merged_with, **extra))
    p = register(Concept(group, name, description, paper or fixed, "paper", True, paper_window,
                         paper_duplicate_of or duplicate_of, merged_with, **extra))
    return f, p
