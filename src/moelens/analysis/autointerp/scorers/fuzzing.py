"""Fuzzing: are the marked tokens what the explanation describes?

Activating test windows are shown with their own highlighted tokens (above 0.3 × the window's
max); non-activating ones with as many random tokens marked (the mean count over the activating
windows). The judge answers 1 when every marked token matches the explanation.
"""

from __future__ import annotations

import numpy as np

from moelens.analysis.autointerp.scorers.base import Scorer, classification_result, items_of, random_marks
from moelens.analysis.autointerp.scorers.judges import Shown

HIGHLIGHT = 0.3


class Fuzzing(Scorer):
    name = "fuzzing"

    async def score(self, examples, explanation, judge, rng):
        items = items_of(examples, "test", "negatives")
        counts = [len(w.highlighted(HIGHLIGHT)) for w in examples.test]
        typical = int(round(float(np.mean(counts)))) if counts else 1
        for it in items:
            it.marks = it.window.highlighted(HIGHLIGHT) if it.label else random_marks(it.window, typical, rng)
        items = [items[i] for i in rng.permutation(len(items))]
        judged, calls = await judge.classify("fuzzing", explanation, [Shown(it.window, it.marks) for it in items])
        return classification_result(self.name, items, judged, calls)
