"""What every explainer returns, and the small base class explainers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moelens.analysis.autointerp.examples import UnitExamples


@dataclass
class Explanation:
    """One unit's explanation; ``text`` is None when the explainer failed (``failure`` says why)."""

    text: str | None
    predicate: dict | None = None
    """rules explanations: the executable predicate (see :mod:`.predicates`)"""
    prompt: list[dict] | None = None
    raw: str | None = None
    failure: str | None = None
    fit: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.text is not None

    def to_json(self) -> dict:
        return {"text": self.text, "predicate": self.predicate, "failure": self.failure,
                "fit": self.fit, "prompt": self.prompt, "raw": self.raw}

    @classmethod
    def from_json(cls, d: dict) -> Explanation:
        return cls(d.get("text"), d.get("predicate"), d.get("prompt"), d.get("raw"), d.get("failure"),
                   d.get("fit") or {})


class Explainer:
    """Turns a unit's explainer windows into an :class:`Explanation`."""

    name = "base"

    async def explain(self, examples: UnitExamples, promoted: list[str] | None = None) -> Explanation:
        raise NotImplementedError
