"""The rules judge as a scorer: run a rules explanation's predicate on the test windows directly.

Token level: positives are the highlighted tokens of activating test windows (above 0.3 × the
window's max), negatives the tokens where the unit does not fire; precision, recall, F1. Window
level: the predicate holding anywhere calls a window activating (detection without a model).
"""

from __future__ import annotations

import numpy as np

from moelens.analysis.autointerp.explainers.predicates import View, evaluate
from moelens.analysis.autointerp.scorers import metrics
from moelens.analysis.autointerp.scorers.base import ScoreResult, Scorer, items_of

HIGHLIGHT = 0.3


class RulesScore(Scorer):
    name = "rules"
    main = "token_f1"

    def __init__(self, threshold: float = 0.0):
        self.threshold = threshold

    async def score(self, examples, explanation, judge, rng):
        items = items_of(examples, "test", "negatives")
        if explanation.predicate is None:
            return ScoreResult(self.name, {"n": len(items), "answered": 0, "failures": len(items),
                                           "token_f1": None, "balanced_accuracy": None,
                                           "failure": "the rules scorer needs a rules explanation"})
        tp = fp = fn = 0
        preds, records = [], []
        for it in items:
            mask = evaluate(explanation.predicate, View(it.window))
            acts = np.asarray(it.window.acts)
            pos = np.zeros(len(acts), dtype=bool)
            if it.label:
                pos[it.window.highlighted(HIGHLIGHT)] = True
            neg = acts <= self.threshold
            tp += int((mask & pos).sum())
            fp += int((mask & neg).sum())
            fn += int((~mask & pos).sum())
            preds.append(int(mask.any()))
            records.append({"set": it.set, "index": it.index, "kind": it.window.kind, "decile": it.window.decile,
                            "label": it.label, "prediction": preds[-1]})
        m = metrics.classification([it.label for it in items], preds)
        m.update({"token_precision": round(tp / (tp + fp), 6) if tp + fp else None,
                  "token_recall": round(tp / (tp + fn), 6) if tp + fn else None,
                  "token_f1": round(2 * tp / (2 * tp + fp + fn), 6) if tp + fn else None})
        return ScoreResult(self.name, m, records, [], metrics.by_decile(records))
