"""The scorer base class, its result, and the bookkeeping the classification scorers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moelens.analysis.autointerp.corpus import Window
from moelens.analysis.autointerp.examples import UnitExamples
from moelens.analysis.autointerp.explainers.base import Explanation
from moelens.analysis.autointerp.scorers import metrics
from moelens.analysis.autointerp.scorers.judges import Judge, Judgement


@dataclass
class ScoreResult:
    scorer: str
    metrics: dict[str, Any]
    records: list[dict] = field(default_factory=list)
    """one per judged item: which window, its label, the prediction (None = failure)"""
    calls: list[dict] = field(default_factory=list)
    """prompts and raw responses"""
    deciles: list[dict] | None = None

    def to_json(self) -> dict:
        out = {"metrics": self.metrics, "records": self.records, "calls": self.calls}
        if self.deciles is not None:
            out["deciles"] = self.deciles
        return out


class Scorer:
    name = "base"
    main = "balanced_accuracy"
    """the metric the summary table leads with"""
    baseline = "all-yes"
    needs_explanation = True

    async def score(self, examples: UnitExamples, explanation: Explanation, judge: Judge,
                    rng: np.random.Generator) -> ScoreResult:
        raise NotImplementedError


@dataclass
class Item:
    window: Window
    label: int
    set: str
    index: int
    marks: list[int] | None = None


def items_of(examples: UnitExamples, positives: str, negatives: str) -> list[Item]:
    return ([Item(w, 1, positives, i) for i, w in enumerate(getattr(examples, positives))]
            + [Item(w, 0, negatives, i) for i, w in enumerate(getattr(examples, negatives))])


def random_marks(window: Window, count: int, rng: np.random.Generator) -> list[int]:
    n = len(window.tokens)
    k = max(1, min(count, n))
    return sorted(int(i) for i in rng.choice(n, k, replace=False)) if n else []


def classification_result(name: str, items: list[Item], judged: list[Judgement], calls: list[dict],
                          deciles: bool = True) -> ScoreResult:
    records = []
    for it, j in zip(items, judged):
        rec = {"set": it.set, "index": it.index, "kind": it.window.kind, "decile": it.window.decile,
               "label": it.label, "prediction": j.prediction}
        if j.probability is not None:
            rec["probability"] = round(float(j.probability), 6)
        if it.marks is not None:
            rec["marks"] = it.marks
        if j.failure:
            rec["failure"] = j.failure
        records.append(rec)
    probs = [j.probability for j in judged]
    m = metrics.classification([r["label"] for r in records], [r["prediction"] for r in records],
                               probs if any(p is not None for p in probs) else None)
    return ScoreResult(name, m, records, calls, metrics.by_decile(records) if deciles else None)
