"""Intruder: is the unit coherent? No explanation is used.

Each question shows ``size - 1`` activating test windows of one decile (their highlighted tokens
marked) and one non-activating window with random tokens marked, in random order; the judge
names the odd one out. Metric: accuracy with a Wilson interval; chance is 1 / ``size``.
"""

from __future__ import annotations

import asyncio

import numpy as np

from moelens.analysis.autointerp.scorers import metrics
from moelens.analysis.autointerp.scorers.base import ScoreResult, Scorer, random_marks
from moelens.analysis.autointerp.scorers.judges import Shown

HIGHLIGHT = 0.3


class Intruder(Scorer):
    name = "intruder"
    main = "accuracy"
    baseline = "chance"
    needs_explanation = False

    def __init__(self, questions: int = 10, size: int = 5):
        self.questions = questions
        self.size = size

    async def score(self, examples, explanation, judge, rng):
        by_decile: dict[int, list[int]] = {}
        for i, w in enumerate(examples.test):
            by_decile.setdefault(w.decile or 0, []).append(i)
        usable = sorted(d for d, idx in by_decile.items() if len(idx) >= self.size - 1)
        if not usable:  # too few per decile: draw from all test windows
            by_decile, usable = {0: list(range(len(examples.test)))}, [0]
        questions = []
        for q in range(self.questions):
            pool = by_decile[usable[q % len(usable)]]
            if len(pool) < self.size - 1 or not examples.negatives:
                break
            picks = [int(i) for i in rng.choice(pool, self.size - 1, replace=False)]
            neg = int(rng.integers(len(examples.negatives)))
            shown = [Shown(examples.test[i], examples.test[i].highlighted(HIGHLIGHT)) for i in picks]
            typical = int(round(float(np.mean([len(s.marks) for s in shown]))))
            intruder = Shown(examples.negatives[neg], random_marks(examples.negatives[neg], typical, rng))
            at = int(rng.integers(self.size))
            shown.insert(at, intruder)
            questions.append(({"question": q, "windows": picks, "negative": neg, "intruder": at,
                               "decile": examples.test[picks[0]].decile}, shown))
        answers = await asyncio.gather(*(judge.intruder(shown) for _, shown in questions))
        records, calls = [], []
        for (rec, _), (judged, call) in zip(questions, answers):
            rec["prediction"] = judged.prediction
            if judged.failure:
                rec["failure"] = judged.failure
            records.append(rec)
            if call:
                calls.append(call)
        answered = [r for r in records if r["prediction"] is not None]
        k = sum(r["prediction"] == r["intruder"] for r in answered)
        lo, hi = metrics.wilson(k, len(answered))
        m = {"n": len(records), "answered": len(answered), "failures": len(records) - len(answered),
             "accuracy": round(k / len(answered), 6) if answered else None,
             "ci_low": lo, "ci_high": hi, "chance": round(1 / self.size, 6)}
        return ScoreResult(self.name, m, records, calls)
