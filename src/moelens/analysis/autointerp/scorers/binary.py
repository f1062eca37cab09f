"""The expert-level paper's scorer: 10 held-out positives and 10 negatives, 0/1 per snippet.

Positives are the strongest held-out windows (with ``--sampling top --n_explain 20``, exactly the
paper's ranks 21-30); negatives are other units' top windows, drawn per unit with its own seed
and preferring windows where this unit does not fire (the fix), or once per layer for every unit
(``--binary_shared``, the paper's scripts, which gave nearly every expert the same negatives).
A positive marks the tokens where this unit fires most (above 0.3 × the window's max); a
negative marks its source unit's highlighted tokens, as that unit's pool shows it (without a
source: random tokens, as many as a positive has on average). The judge answers whether the marked tokens fit the
hypothesis. Metrics: F1 (answering 1 everywhere gives 2/3 at a 0.5 base rate), precision,
recall, accuracy.
"""

from __future__ import annotations

import numpy as np

from moelens.analysis.autointerp.scorers.base import Item, Scorer, classification_result, random_marks
from moelens.analysis.autointerp.scorers.judges import Shown

HIGHLIGHT = 0.3


class Binary(Scorer):
    name = "binary"
    main = "f1"

    async def score(self, examples, explanation, judge, rng):
        pos = examples.binary_positives
        neg_set = "binary_negatives" if examples.binary_negatives else "negatives"
        neg = getattr(examples, neg_set)[: max(len(examples.binary_negatives), len(pos))]
        items = [Item(w, 1, "binary_positives", i) for i, w in enumerate(pos)]
        items += [Item(w, 0, neg_set, i) for i, w in enumerate(neg)]
        counts = [len(w.highlighted(HIGHLIGHT)) for w in pos]
        typical = int(round(float(np.mean(counts)))) if counts else 1
        for it in items:
            marks = it.window.marks if it.label == 0 and it.window.marks is not None else it.window.highlighted(HIGHLIGHT)
            it.marks = marks if marks else random_marks(it.window, typical, rng)
        items = [items[i] for i in rng.permutation(len(items))]
        judged, calls = await judge.classify("binary", explanation, [Shown(it.window, it.marks) for it in items])
        return classification_result(self.name, items, judged, calls, deciles=False)
