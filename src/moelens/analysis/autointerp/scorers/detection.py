"""Detection: given the explanation, does each test window (activating or not) contain the feature?

The judge sees the windows without highlights, shuffled. Metrics: balanced accuracy, precision,
recall, F1 (AUROC with a probability judge), per activation decile and on the non-activating
windows (MoE-X Fig. 8).
"""

from __future__ import annotations

from moelens.analysis.autointerp.scorers.base import Scorer, classification_result, items_of
from moelens.analysis.autointerp.scorers.judges import Shown


class Detection(Scorer):
    name = "detection"

    async def score(self, examples, explanation, judge, rng):
        items = items_of(examples, "test", "negatives")
        items = [items[i] for i in rng.permutation(len(items))]
        judged, calls = await judge.classify("detection", explanation, [Shown(it.window) for it in items])
        return classification_result(self.name, items, judged, calls)
